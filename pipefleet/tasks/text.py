"""Text tasks whose hot path is the pipeline's own: classification, tokens, zero-shot, fill-mask."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import LABEL_SCORE, Params, TaskHandler, split_row_labels
from pipefleet.registry import register

_TOKENIZER_PARAMS = {"truncation": P.boolean(), "max_length": P.integer(1), "padding": P.boolean()}


@register
class TextClassificationHandler(TaskHandler):
    """Labels with scores for a text or a text pair (``{"text": ..., "text_pair": ...}``)."""

    task = "text-classification"
    aliases = ("sentiment-analysis",)
    input_names = ("text", "text_pair")
    parameters = {
        "top_k": P.integer(1, nullable=True),
        "function_to_apply": P.choice("sigmoid", "softmax", "none"),
        **_TOKENIZER_PARAMS,
    }
    output_column = "classification"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if isinstance(raw, dict):
            unknown = set(raw) - {"text", "text_pair"}
            if unknown:
                raise BadInput(f"{self.task}: a text pair has keys text and text_pair, got {sorted(unknown)}")
            pair = {"text": self.text(raw.get("text"), "text")}
            if raw.get("text_pair") is not None:
                pair["text_pair"] = self.text(raw["text_pair"], "text_pair")
            return (pair if "text_pair" in pair else pair["text"]), params
        return self.text(raw), params

    @classmethod
    def single_output(cls, output: Any, raw: Any, call_params: Params) -> Any:
        # pipeline("one text") wraps its answer in a list unless the call names top_k.
        return [output] if isinstance(raw, str) and "top_k" not in call_params else output

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        # pipeline() returns one {label, score} per text unless top_k is given, then a list.
        return pa.list_(LABEL_SCORE) if "top_k" in params else LABEL_SCORE


@register
class TokenClassificationHandler(TaskHandler):
    """Entities (or per-token labels) with character offsets."""

    task = "token-classification"
    aliases = ("ner",)
    parameters = {
        "aggregation_strategy": P.choice("none", "simple", "first", "average", "max"),
        "ignore_labels": P.texts(),
        "stride": P.integer(0),
    }
    output_column = "entities"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        aggregated = str(params.get("aggregation_strategy", "none")).lower() != "none"
        label = [("entity_group", pa.string())] if aggregated else [("entity", pa.string())]
        index = [] if aggregated else [("index", pa.int64())]
        fields = [
            *label,
            ("score", pa.float64()),
            *index,
            ("word", pa.string()),
            ("start", pa.int64()),
            ("end", pa.int64()),
        ]
        return pa.list_(pa.struct(fields))


@register
class ZeroShotClassificationHandler(TaskHandler):
    """NLI-based classification into caller-given labels, from params or per row."""

    task = "zero-shot-classification"
    input_names = ("text", "candidate_labels")
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text(), "multi_label": P.boolean()}
    output_column = "zero_shot"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raw, params = split_row_labels(raw, params, "text", self.task)
        return self.text(raw), params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct(
            [("sequence", pa.string()), ("labels", pa.list_(pa.string())), ("scores", pa.list_(pa.float64()))]
        )


@register
class FillMaskHandler(TaskHandler):
    """The most likely tokens for the one mask token in each text."""

    task = "fill-mask"
    parameters = {"top_k": P.integer(1), "targets": P.texts()}
    output_column = "fill_mask"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        text = self.text(raw)
        mask = self.pipe.tokenizer.mask_token
        count = text.count(mask)
        if count != 1:
            raise BadInput(f"{self.task}: the text must hold exactly one {mask} token, found {count}")
        return text, params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("score", pa.float64()), ("token", pa.int64()), ("token_str", pa.string()), ("sequence", pa.string())]
        return pa.list_(pa.struct(fields))
