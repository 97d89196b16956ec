"""image-classification equals transformers.pipeline; undecodable images are row errors."""

from __future__ import annotations

import copy
import io

import numpy as np
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
    tiny = png_bytes(Image.new("RGB", (1, 1), "red"))
    claims = [png_claiming(9_000, 9_000), png_claiming(20_000, 20_000)]
    outcomes = handler.predict([good, good[:40], b"not an image at all", b"", None, tiny, *claims, good])
    messages = [o.message if isinstance(o, RowError) else None for o in outcomes]
    assert messages[0] is None and messages[-1] is None
    assert "not a decodable image" in messages[1] and "not a decodable image" in messages[2]
    assert "zero bytes" in messages[3] and "missing" in messages[4]
    assert "1 x 1 pixels is too small" in messages[5]
    assert "9000 x 9000 pixels is over the limit" in messages[6]
    assert "decompression bomb" in messages[7]  # Pillow's own guard, at twice its warning size


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height``: what a decompression bomb looks like at first."""
    import struct
    import zlib

    data = bytearray(png_bytes(Image.new("L", (8, 8))))
    header = struct.pack(">II", width, height) + bytes(data[24:29])  # IHDR: size, then depth, colour, ...
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def _decoded(png: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize(
    ("task", "params"),
    [
        ("image-feature-extraction", {}),
        ("image-feature-extraction", {"pool": True}),
        ("object-detection", {"threshold": 0.0}),
        ("zero-shot-image-classification", {"candidate_labels": ["a cat", "a dog", "a red ball"]}),
        ("zero-shot-object-detection", {"candidate_labels": ["cat", "ball"], "threshold": 0.0}),
    ],
)
def test_vision_task_equals_pipeline(tiny_model, make_handler, task, params):
    model = tiny_model(task)
    images = drawn_images()
    handler = make_handler(task, model, batch_size=2)
    oracle = pipeline(task, model=model)
    assert_matches(
        handler.predict([png_bytes(i) for i in images], params=params), [oracle(i, **params) for i in images]
    )


def test_zero_shot_image_labels_per_row(tiny_model, make_handler):
    task = "zero-shot-image-classification"
    model = tiny_model(task)
    images = drawn_images()[:2]
    handler = make_handler(task, model, params={"candidate_labels": ["a cat", "a dog"]})
    rows = [png_bytes(images[0]), {"image": png_bytes(images[1]), "candidate_labels": "a bird, a fish, a car"}]
    oracle = pipeline(task, model=model)
    expected = [
        oracle(images[0], candidate_labels=["a cat", "a dog"]),
        oracle(images[1], candidate_labels=["a bird", "a fish", "a car"]),
    ]
    assert_matches(handler.predict(rows), expected)
    outcome = handler.predict([{"image": png_bytes(images[0]), "candidate_labels": []}])[0]
    assert isinstance(outcome, RowError) and "candidate_labels" in outcome.message


def test_segmentation_masks_are_the_pipelines_as_png(tiny_model, make_handler):
    model = tiny_model("image-segmentation")
    images = drawn_images()
    handler = make_handler("image-segmentation", model, batch_size=2)
    expected = [pipeline("image-segmentation", model=model)(i) for i in images]
    for got, want in zip(handler.predict(images), expected):
        assert [(s["label"], s["score"]) for s in got] == [(s["label"], s["score"]) for s in want]
        for segment, reference in zip(got, want):
            np.testing.assert_array_equal(_decoded(segment["mask"]), np.array(reference["mask"]))


def test_depth_map_is_the_pipelines_as_array_and_png(tiny_model, make_handler):
    model = tiny_model("depth-estimation")
    images = drawn_images()
    handler = make_handler("depth-estimation", model, batch_size=3)
    expected = [pipeline("depth-estimation", model=model)(i) for i in images]
    for got, want in zip(handler.predict(images), expected):
        np.testing.assert_allclose(got["predicted_depth"], want["predicted_depth"].numpy(), atol=1e-4)
        # The PNG is drawn from these floats by the pipeline's own postprocess; floats that agree within
        # 1e-4 (a batch of 3 against one image at a time) may round to the next grey level, no further.
        grey, want_grey = _decoded(got["depth"]).astype(int), np.array(want["depth"]).astype(int)
        assert grey.shape == want_grey.shape and np.abs(grey - want_grey).max() <= 1


def test_mask_generation_masks_are_the_pipelines_as_png(tiny_model, make_handler):
    model = tiny_model("mask-generation")
    images = drawn_images()[:2]
    params = {"points_per_batch": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "output_bboxes_mask": True}
    handler = make_handler("mask-generation", model, batch_size=4, params=params)
    oracle = pipeline("mask-generation", model=model)
    for got, image in zip(handler.predict(images), images):
        want = oracle(image, **params)
        assert len(got["masks"]) == len(want["masks"]) > 0
        np.testing.assert_allclose(got["scores"], want["scores"].numpy(), atol=1e-4)
        assert got["bounding_boxes"] == [[int(x) for x in box] for box in want["bounding_boxes"]]
        for mask, reference in zip(got["masks"], want["masks"]):
            np.testing.assert_array_equal(_decoded(mask) > 0, np.asarray(reference))


def test_image_text_to_text_equals_pipeline(tiny_model, make_handler):
    task = "image-text-to-text"
    model = tiny_model(task)
    images = drawn_images()
    params = {"max_new_tokens": 6, "generate_kwargs": {"do_sample": False}}
    handler = make_handler(task, model, batch_size=3, params={**params, "prompt": "<image> describe it"})
    oracle = pipeline(task, model=model)
    rows = [png_bytes(images[0]), {"image": png_bytes(images[1]), "text": "<image> describe it"}, images[2]]
    # The pipeline writes max_new_tokens into the generate_kwargs it is given: a fresh copy for each call.
    expected = [oracle(images=i, text="<image> describe it", **copy.deepcopy(params)) for i in images]
    assert_matches(handler.predict(rows), expected)
    assert_matches(handler.predict(rows[:1]), expected[:1])  # the spec's parameters still work on a second call


def test_image_text_to_text_chat_with_a_base64_image(tiny_model, make_handler):
    import base64

    task = "image-text-to-text"
    model = tiny_model(task)
    image = drawn_images()[0]
    params = {"max_new_tokens": 5, "generate_kwargs": {"do_sample": False}}
    handler = make_handler(task, model, params=params)
    chat = [{"role": "user", "content": [{"type": "image", "image": None}, {"type": "text", "text": "what is it?"}]}]
    chat[0]["content"][0]["image"] = base64.b64encode(png_bytes(image)).decode()
    got = handler.predict([chat])[0]
    chat[0]["content"][0]["image"] = image
    want = pipeline(task, model=model)(text=chat, **copy.deepcopy(params))
    assert got[0]["generated_text"][-1] == want[0]["generated_text"][-1]  # the assistant's reply
    assert got[0]["input_text"][0]["content"][0] == {"type": "image"}  # the image is not sent back
    refused = handler.predict([[{"role": "user", "content": [{"type": "image", "image": "/etc/passwd"}]}]])[0]
    assert isinstance(refused, RowError) and "base64 or bytes" in refused.message


def test_top_5_labels_for_a_jpeg_equal_pipeline(tiny_model, make_handler):
    """The pipeline docs' first example: image-classification, top 5, on a JPEG file."""
    model = tiny_model("image-classification")
    buffer = io.BytesIO()
    drawn_images()[2].save(buffer, format="JPEG", quality=85)
    handler = make_handler("image-classification", model, params={"top_k": 5})
    got = handler.predict([buffer.getvalue()])[0]
    want = pipeline("image-classification", model=model)(Image.open(io.BytesIO(buffer.getvalue())), top_k=5)
    assert len(got) == 5
    assert_matches(got, want)


def test_an_output_that_cannot_be_encoded_fails_its_row_alone(tiny_model, make_handler, monkeypatch):
    handler = make_handler("image-segmentation", tiny_model("image-segmentation"))
    encode = handler.postprocess
    seen = []

    def fails_on_the_second(outputs, value, params):
        seen.append(outputs)
        if len(seen) == 2:
            raise OSError("cannot write PNG")
        return encode(outputs, value, params)

    monkeypatch.setattr(handler, "postprocess", fails_on_the_second)
    outcomes = handler.predict(drawn_images())
    assert not isinstance(outcomes[0], RowError) and not isinstance(outcomes[2], RowError)
    assert isinstance(outcomes[1], RowError) and outcomes[1].message == "OSError: cannot write PNG"
