"""Image tasks. Inputs are image bytes, decoded arrays, PIL images, or (offline) paths and URLs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.media import png_bytes, to_image
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import LABEL_SCORE, as_chat, require_text, row_labels

_BOX = pa.struct([("xmin", pa.int64()), ("ymin", pa.int64()), ("xmax", pa.int64()), ("ymax", pa.int64())])
_DETECTIONS = pa.list_(pa.struct([("score", pa.float64()), ("label", pa.string()), ("box", _BOX)]))


class ImageHandler(PipelineHandler):
    """Shared by the image tasks: the main input is an image, decoded and checked per row."""

    inputs = (Input("image", "image"),)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(to_image(value, self.task), params)


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
    capabilities = Capabilities(display="labels")

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
    capabilities = Capabilities(display="boxes")

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return _DETECTIONS


@register
class ZeroShotImageClassificationHandler(ImageHandler):
    """Scores for caller-given labels (CLIP-style models), from params or per row."""

    task = "zero-shot-image-classification"
    inputs = (Input("image", "image"), Input("candidate_labels", "labels", required=False))
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text(), "timeout": P.number(0)}
    output_column = "zero_shot"
    capabilities = Capabilities(display="labels")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        image, labels = row_labels(value, params, "image", self.task)
        return super().preprocess(image, {**params, "candidate_labels": labels})

    def batch_key(self, feature: Any) -> Any:
        # A model input holds every label of its row: rows with other labels cannot share its pass.
        return tuple(feature["candidate_labels"])

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


@register
class ZeroShotObjectDetectionHandler(PipelineHandler):
    """Boxes for caller-given labels (OWL-ViT-style models), from params or per row."""

    task = "zero-shot-object-detection"
    inputs = ZeroShotImageClassificationHandler.inputs
    parameters = {
        # This pipeline takes its labels with the image, not as a parameter.
        "candidate_labels": P.staged(P.texts(), "preprocess"),
        "threshold": P.number(0),
        "top_k": P.integer(1),
        "timeout": P.number(0),
    }
    output_column = "objects"
    capabilities = Capabilities(display="boxes", chunked=True)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        image, labels = row_labels(value, params, "image", self.task)
        return super().preprocess({"image": to_image(image, self.task), "candidate_labels": labels}, params)

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
    capabilities = Capabilities(display="masks")

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        segments = super().postprocess(outputs, value, params)
        return [{**segment, "mask": png_bytes(segment["mask"])} for segment in segments]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("score", pa.float64()), ("label", pa.string()), ("mask", pa.binary())]
        return pa.list_(pa.struct(fields))


@register
class DepthEstimationHandler(ImageHandler):
    """A depth map per image: the model's values (rows of floats) and an 8-bit PNG to look at."""

    task = "depth-estimation"
    parameters = {"timeout": P.number(0)}
    output_column = "depth"
    capabilities = Capabilities(display="image")

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        output = super().postprocess(outputs, value, params)
        return {"predicted_depth": output["predicted_depth"].float().numpy(), "depth": png_bytes(output["depth"])}

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct([("predicted_depth", pa.list_(pa.list_(pa.float32()))), ("depth", pa.binary())])


@register
class MaskGenerationHandler(ImageHandler):
    """Every object's mask in an image (SAM-style models), from a grid of prompt points.

    The image is embedded once; its points then run in batches of ``points_per_batch``. Masks
    come back as PNGs with their predicted IoU scores (and boxes with ``output_bboxes_mask``).
    """

    task = "mask-generation"
    parameters = {
        "points_per_batch": P.integer(1),
        "points_per_crop": P.integer(1),
        "crops_n_layers": P.integer(0),
        "crop_overlap_ratio": P.number(0),
        "crop_n_points_downscale_factor": P.integer(1),
        "pred_iou_thresh": P.number(0),
        "stability_score_thresh": P.number(0),
        "stability_score_offset": P.number(0),
        "mask_threshold": P.number(-1e9),
        "crops_nms_thresh": P.number(0),
        "output_bboxes_mask": P.boolean(),
        "timeout": P.number(0),
    }
    output_column = "masks"
    capabilities = Capabilities(chunked=True)

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        from PIL import Image

        output = super().postprocess(outputs, value, params)
        masks = [png_bytes(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)) for mask in output["masks"]]
        finished = {"masks": masks, "scores": [float(score) for score in output["scores"]]}
        if "bounding_boxes" in output:
            finished["bounding_boxes"] = [[int(x) for x in box] for box in output["bounding_boxes"]]
        return finished

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("masks", pa.list_(pa.binary())), ("scores", pa.list_(pa.float64()))]
        if params.get("output_bboxes_mask"):
            fields.append(("bounding_boxes", pa.list_(pa.list_(pa.int64()))))
        return pa.struct(fields)


@register
class ImageTextToTextHandler(PipelineHandler):
    """Text generated about an image (captions, answers), from ``{image, text}`` or a chat.

    ``text`` is the prompt, with the model's image token where its processor wants one; ``prompt``
    gives one for rows that have none (a folder of images). A chat is a list of messages whose
    content parts are ``{"type": "text", "text": ...}`` and ``{"type": "image", "image": <bytes or
    base64>}``; its images come back as ``{"type": "image"}``.
    """

    task = "image-text-to-text"
    inputs = (Input("image", "image"), Input("text"))
    parameters = {
        "max_new_tokens": P.integer(1),
        "generate_kwargs": P.mapping(),
        "return_full_text": P.boolean(),
        "continue_final_message": P.boolean(),
        "stop_sequence": P.texts(),
        "skip_special_tokens": P.boolean(),
        "clean_up_tokenization_spaces": P.boolean(),
        "timeout": P.number(0),
        "prompt": P.staged(P.text(), "preprocess"),  # the text of rows that have none (a folder of images)
    }
    output_column = "generated"
    capabilities = Capabilities(display="text")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        if isinstance(value, list):
            return super().preprocess(_chat_with_images(value, self.task), params)
        if not isinstance(value, dict):
            value = {"image": value}
        unknown = sorted(set(value) - {"image", "text"})
        if unknown:
            raise BadInput(f"{self.task}: an input has keys image and text, got {unknown}")
        text = value.get("text") if value.get("text") is not None else params.get("prompt")
        text = require_text(text, self.task, "text", self.spec.max_input_chars)
        return super().preprocess({"images": to_image(value.get("image"), self.task), "text": text}, params)

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        output = super().postprocess(outputs, value, params)
        return [{key: _without_images(item) for key, item in record.items()} for record in output]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(pa.struct([("input_text", pa.string()), ("generated_text", pa.string())]))


def _chat_with_images(messages: list[Any], task: str) -> Any:
    """A transformers Chat whose image parts hold decoded images (bytes or base64 only: never a path or URL)."""
    import base64
    import binascii

    decoded = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    image = part.get("image")
                    if isinstance(image, str):
                        try:
                            image = base64.b64decode(image.split(",", 1)[-1], validate=True)
                        except (binascii.Error, ValueError):
                            raise BadInput(f"{task}: a chat image must be base64 or bytes, not a path or URL") from None
                    part = {"type": "image", "image": to_image(image, task)}
                parts.append(part)
            message = {**message, "content": parts}
        decoded.append(message)
    return as_chat(decoded, task)


def _without_images(value: Any) -> Any:
    """A chat with its PIL images replaced by ``{"type": "image"}``, so it fits JSON; other values as they are."""
    if isinstance(value, list):
        return [_without_images(item) for item in value]
    if isinstance(value, dict):
        if value.get("type") == "image":
            return {"type": "image"}
        return {key: _without_images(item) for key, item in value.items()}
    return value
