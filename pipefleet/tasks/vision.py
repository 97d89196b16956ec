"""Image tasks. Inputs are image bytes, decoded arrays, PIL images, or (offline) paths and URLs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Params, TaskHandler
from pipefleet.registry import register

MAX_PIXELS = 50_000_000  # a decompression bomb guard: larger images are refused, not decoded


def to_image(value: Any, task: str) -> Any:
    """A PIL image from bytes, an array or a PIL image; strings (paths, URLs) pass through to the pipeline."""
    from PIL import Image

    if value is None:
        raise BadInput(f"{task}: image is missing (null)")
    if isinstance(value, str):
        if not value.strip():
            raise BadInput(f"{task}: image path is empty")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not value:
            raise BadInput(f"{task}: image has zero bytes")
        try:
            with Image.open(io.BytesIO(bytes(value))) as probe:
                _check_size(probe.size, task)
                probe.load()
                return probe.convert("RGB")
        except BadInput:
            raise
        except Exception as exc:  # PIL raises many types for bad data
            raise BadInput(f"{task}: not a decodable image ({type(exc).__name__}: {exc})") from None
    if hasattr(value, "shape"):  # an array, as Ray Data's read_images gives
        try:
            image = Image.fromarray(value)
        except Exception as exc:
            raise BadInput(f"{task}: array of shape {value.shape} is not an image ({exc})") from None
        _check_size(image.size, task)
        return image.convert("RGB")
    if isinstance(value, Image.Image):
        _check_size(value.size, task)
        return value
    raise BadInput(f"{task}: an image must be bytes, an array or a path, got {type(value).__name__}")


def _check_size(size: tuple[int, int], task: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise BadInput(f"{task}: image of {width} x {height} pixels is over the limit of {MAX_PIXELS} pixels")


@register
class ImageClassificationHandler(TaskHandler):
    """Labels with scores for an image."""

    task = "image-classification"
    input_names = ("image",)
    media = "image"
    parameters = {
        "top_k": P.integer(1),
        "function_to_apply": P.choice("sigmoid", "softmax", "none"),
        "timeout": P.number(0),
    }
    output_column = "classification"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return to_image(raw, self.task), params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))
