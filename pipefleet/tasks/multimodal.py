"""Tasks that read several inputs together: document and table question answering, and video."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import hf_stages
from pipefleet import params as P
from pipefleet.errors import BadInput, ServerFault
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.media import to_image
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import LABEL_SCORE, PADDING, SPAN_ANSWER, SPAN_ANSWER_PARAMS, require_text, row_fields


@register
class DocumentQuestionAnsweringHandler(PipelineHandler):
    """Answers to a question about a document image: its words come from Tesseract OCR, or from the caller.

    ``word_boxes`` (``[[word, [x0, y0, x1, y1]], ...]``, boxes on a 0-1000 scale) skip the OCR;
    with them the image may be left out.
    """

    task = "document-question-answering"
    # With word_boxes the image may be left out.
    inputs = (Input("image", "image", required=False), Input("question"), Input("word_boxes", "json", required=False))
    parameters = {
        **SPAN_ANSWER_PARAMS,
        "lang": P.text(),
        "tesseract_config": P.text(),
        "timeout": P.number(0),
    }
    output_column = "answers"
    capabilities = Capabilities(display="text", chunked=True)
    programs = {"tesseract": "apt-get install tesseract-ocr (and pip install pytesseract)"}

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        """Answer spans are found against each feature's own tokens: cut what batch padding added to its logits."""
        tokens = [hf_stages.feature_length(feature) for feature in batch]  # before forward pops the inputs
        per_token = ("start_logits", "end_logits", "attention_mask")
        return [
            {**output, **{key: output[key][..., :n] for key in per_token if key in output}}
            for output, n in zip(super().forward(batch, params), tokens)
        ]

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        row = row_fields(value, self.task, self.input_names())
        question = require_text(row.get("question"), self.task, "question", self.spec.max_input_chars)
        word_boxes = row.get("word_boxes")
        prepared: dict[str, Any] = {"question": question}
        if word_boxes is not None:
            prepared["word_boxes"] = _checked_word_boxes(word_boxes, self.task)
        if row.get("image") is not None or word_boxes is None:
            prepared["image"] = to_image(row.get("image"), self.task)
        if word_boxes is None:
            self._check_ocr()
        return super().preprocess(prepared, params)

    def _check_ocr(self) -> None:
        """ServerFault when this server cannot read a page itself (the row gave no word_boxes)."""
        import importlib.util

        missing = self.missing_programs()
        if importlib.util.find_spec("pytesseract") is None:
            missing.setdefault("pytesseract", "pip install pytesseract")
        if missing:
            fixes = "; ".join(f"{name}: {how}" for name, how in missing.items())
            raise ServerFault(
                f"{self.task}: this server cannot read the page (OCR) because it lacks {', '.join(missing)}; "
                f"the operator must install it ({fixes}), or the caller may send word_boxes"
            )

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(SPAN_ANSWER)


def _checked_word_boxes(value: Any, task: str) -> list[tuple[str, list[int]]]:
    words = []
    if not isinstance(value, list) or not value:
        raise BadInput(f"{task}: word_boxes must be a non-empty list of [word, [x0, y0, x1, y1]]")
    for index, item in enumerate(value):
        ok = isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
        box = item[1] if ok else None
        if not ok or not isinstance(box, (list, tuple)) or len(box) != 4:
            raise BadInput(f"{task}: word_boxes[{index}] must be [word, [x0, y0, x1, y1]]")
        if not all(isinstance(x, (int, float)) and 0 <= x <= 1000 for x in box):
            raise BadInput(f"{task}: word_boxes[{index}] has a box outside 0-1000: {box}")
        words.append((item[0], [int(x) for x in box]))
    return words


@register
class TableQuestionAnsweringHandler(PipelineHandler):
    """Answers to a question about a table (TAPAS-style models): cells, their coordinates, an aggregator."""

    task = "table-question-answering"
    inputs = (Input("table", "table"), Input("query"))
    parameters = {"sequential": P.boolean(), "padding": PADDING, "truncation": P.flag_or_choice("drop_rows_to_fit")}
    output_column = "answer"
    capabilities = Capabilities(display="json")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        import pandas as pd

        row = row_fields(value, self.task, self.input_names())
        query = require_text(row.get("query"), self.task, "query", self.spec.max_input_chars)
        table = row.get("table")
        if isinstance(table, dict) and table and all(isinstance(v, list) for v in table.values()):
            if len({len(v) for v in table.values()}) != 1:
                raise BadInput(f"{self.task}: the table's columns have different lengths")
            frame = pd.DataFrame(table)
        elif isinstance(table, list) and table and all(isinstance(r, dict) for r in table):
            frame = pd.DataFrame(table)
        else:
            raise BadInput(f"{self.task}: table must be columns ({{name: [cells]}}) or rows ([{{name: cell}}])")
        # TAPAS reads cells as text, as pipeline() does for a table of strings.
        return super().preprocess({"table": frame.fillna("").astype(str), "query": query}, params)

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct(
            [
                ("answer", pa.string()),
                ("coordinates", pa.list_(pa.list_(pa.int64()))),
                ("cells", pa.list_(pa.string())),
                ("aggregator", pa.string()),
            ]
        )


@register
class VideoClassificationHandler(PipelineHandler):
    """Labels with scores for a video, from ``num_frames`` frames sampled every ``frame_sampling_rate``.

    Videos are decoded by PyAV (``pip install av``), which the pipeline opens by path: bytes are
    written to a temporary file for the call.
    """

    task = "video-classification"
    inputs = (Input("video", "video"),)
    parameters = {
        "top_k": P.integer(1),
        "num_frames": P.integer(1),
        "frame_sampling_rate": P.integer(1),
        "function_to_apply": P.choice("sigmoid", "softmax", "none"),
    }
    output_column = "classification"
    capabilities = Capabilities(display="labels")

    def setup(self) -> None:
        super().setup()
        use_pyav(self.pipe)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        if value is None:
            raise BadInput(f"{self.task}: video is missing (null)")
        if isinstance(value, str) and value.strip():
            return super().preprocess(value, params)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise BadInput(f"{self.task}: a video is file bytes or a path, got {type(value).__name__}")
        if not value:
            raise BadInput(f"{self.task}: video has zero bytes")
        _check_video(bytes(value), self.task)
        # The pipeline opens videos by path: the bytes live in a temporary file while its frames are read.
        with tempfile.NamedTemporaryFile(prefix="pipefleet-video-", suffix=".video") as file:
            file.write(bytes(value))
            file.flush()
            return super().preprocess(file.name, params)

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


def use_pyav(pipe: Any) -> None:
    """Decode with PyAV, the pipeline's own path for models with an image processor, when torchcodec is missing.

    With torchvision installed, transformers gives video models a video processor that decodes with
    torchcodec, which needs a matching torch build and the system's FFmpeg libraries.
    """
    import importlib.util

    if pipe.video_processor is not None and pipe.image_processor is not None:
        if importlib.util.find_spec("torchcodec") is None:
            pipe.video_processor = None


def _check_video(data: bytes, task: str) -> None:
    """BadInput unless PyAV finds a video stream with frames in ``data``."""
    import io

    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise BadInput(f"{task}: the file holds no video stream")
            next(container.decode(video=0))
    except BadInput:
        raise
    except Exception as exc:  # PyAV raises its own error types for data it cannot read
        raise BadInput(f"{task}: not a decodable video ({type(exc).__name__}: {exc})") from None
