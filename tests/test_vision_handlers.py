"""image-classification equals transformers.pipeline; undecodable images are row errors."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw
from transformers import pipeline

from pipefleet.errors import RowError
from tests.oracle import assert_matches


def drawn_images() -> list[Image.Image]:
    """A few images drawn with PIL: shapes on plain backgrounds, of different sizes."""
    images = []
    for index, (size, colour) in enumerate([((64, 48), "red"), ((32, 32), "navy"), ((120, 80), "green")]):
        image = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse([4 + index, 4, size[0] - 4, size[1] - 4 - index], fill=colour)
        images.append(image)
    return images


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_image_classification_equals_pipeline(tiny_model, make_handler, batch_size):
    model = tiny_model("image-classification")
    images = drawn_images()
    handler = make_handler("image-classification", model, batch_size=batch_size, params={"top_k": 3})
    oracle = pipeline("image-classification", model=model, top_k=3)
    expected = oracle(images, batch_size=batch_size)
    assert_matches(handler.predict([png_bytes(i) for i in images]), expected)
    assert_matches(handler.predict(images, params={"top_k": 1}), oracle(images, top_k=1, batch_size=batch_size))


def test_bad_images_are_row_errors(tiny_model, make_handler):
    handler = make_handler("image-classification", tiny_model("image-classification"))
    good = png_bytes(drawn_images()[0])
    outcomes = handler.predict([good, good[:40], b"not an image at all", b"", None, good])
    messages = [o.message if isinstance(o, RowError) else None for o in outcomes]
    assert messages[0] is None and messages[5] is None
    assert "not a decodable image" in messages[1] and "not a decodable image" in messages[2]
    assert "zero bytes" in messages[3] and "missing" in messages[4]
