"""Image tasks. Inputs are image bytes, decoded arrays, PIL images, or (offline) paths and URLs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.handler import LABEL_SCORE, Params, TaskHandler, split_row_labels
from pipefleet.media import png_bytes, to_image
from pipefleet.registry import register

_BOX = pa.struct([("xmin", pa.int64()), ("ymin", pa.int64()), ("xmax", pa.int64()), ("ymax", pa.int64())])
_DETECTIONS = pa.list_(pa.struct([("score", pa.float64()), ("label", pa.string()), ("box", _BOX)]))


class ImageHandler(TaskHandler):
    """Shared by the image tasks: the main input is an image, decoded and checked per row."""

    input_names = ("image",)
    media = "image"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return to_image(raw, self.task), params


@register
class ImageClassificationHandler(ImageHandler):
    """Labels with scores for an image."""

    task = "image-classification"
    parameters = {
        "top_k": P.integer(1),
        "function_to_apply": P.choice("sigmoid", "softmax", "none"),
        "timeout": P.number(0),
    }
    output_column = "classification"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


@register
class ImageFeatureExtractionHandler(ImageHandler):
    """The model's hidden states for an image, as ``pipeline`` returns them; ``pool: true`` gives one vector."""

    task = "image-feature-extraction"
    parameters = {"pool": P.boolean(), "timeout": P.number(0)}
    output_column = "embedding"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        vectors = pa.list_(pa.list_(pa.float32()))  # [1 x hidden] pooled, or [1 x patches x hidden]
        return vectors if params.get("pool") else pa.list_(vectors)


@register
class ObjectDetectionHandler(ImageHandler):
    """Boxes with labels and scores above ``threshold`` (pixels of the original image)."""

    task = "object-detection"
    parameters = {"threshold": P.number(0), "timeout": P.number(0)}
    output_column = "objects"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return _DETECTIONS


@register
class ZeroShotImageClassificationHandler(ImageHandler):
    """Scores for caller-given labels (CLIP-style models), from params or per row."""

    task = "zero-shot-image-classification"
    input_names = ("image", "candidate_labels")
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text(), "timeout": P.number(0)}
    output_column = "zero_shot"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raw, params = split_row_labels(raw, params, "image", self.task)
        return to_image(raw, self.task), params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


@register
class ZeroShotObjectDetectionHandler(ZeroShotImageClassificationHandler):
    """Boxes for caller-given labels (OWL-ViT-style models), from params or per row."""

    task = "zero-shot-object-detection"
    parameters = {
        "candidate_labels": P.texts(),
        "threshold": P.number(0),
        "top_k": P.integer(1),
        "timeout": P.number(0),
    }
    output_column = "objects"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        image, params = super().prepare(raw, params)
        # This pipeline takes its labels with the image, not as a parameter.
        labels = params.pop("candidate_labels")
        return {"image": image, "candidate_labels": labels}, params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return _DETECTIONS


@register
class ImageSegmentationHandler(ImageHandler):
    """Segments with labels, scores and masks; each mask is a PNG (white = in the segment)."""

    task = "image-segmentation"
    parameters = {
        "subtask": P.choice("panoptic", "instance", "semantic"),
        "threshold": P.number(0),
        "mask_threshold": P.number(0),
        "overlap_mask_area_threshold": P.number(0),
        "timeout": P.number(0),
    }
    output_column = "segments"

    def finish(self, output: Any) -> Any:
        return [{**segment, "mask": png_bytes(segment["mask"])} for segment in output]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("score", pa.float64()), ("label", pa.string()), ("mask", pa.binary())]
        return pa.list_(pa.struct(fields))


@register
class DepthEstimationHandler(ImageHandler):
    """A depth map per image: the model's values (rows of floats) and an 8-bit PNG to look at."""

    task = "depth-estimation"
    parameters = {"timeout": P.number(0)}
    output_column = "depth"

    def finish(self, output: Any) -> Any:
        return {"predicted_depth": output["predicted_depth"].float().numpy(), "depth": png_bytes(output["depth"])}

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct([("predicted_depth", pa.list_(pa.list_(pa.float32()))), ("depth", pa.binary())])
