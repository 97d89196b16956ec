"""Text tasks whose stages are the pipeline's own: classification, tokens, zero-shot, fill-mask."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import LABEL_SCORE, PADDING, TRUNCATION, require_text, row_labels

_TOKENIZER_PARAMS = {"truncation": TRUNCATION, "max_length": P.integer(1), "padding": PADDING}


class TextHandler(PipelineHandler):
    """Shared by the text tasks: the main input is a non-empty text within the spec's ``max_input_chars``."""

    def text(self, value: Any, what: str = "input") -> str:
        return require_text(value, self.task, what, self.spec.max_input_chars)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(self.text(value), params)


@register
class TextClassificationHandler(TextHandler):
    """Labels with scores for a text or a text pair (``{"text": ..., "text_pair": ...}``)."""

    task = "text-classification"
    aliases = ("sentiment-analysis",)
    inputs = (Input("text"), Input("text_pair", required=False))
    parameters = {
        "top_k": P.integer(1, nullable=True),
        "function_to_apply": P.choice("sigmoid", "softmax", "none"),
        **_TOKENIZER_PARAMS,
    }
    output_column = "classification"
    capabilities = Capabilities(display="labels")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        if not isinstance(value, dict):
            return super().preprocess(value, params)
        unknown = set(value) - {"text", "text_pair"}
        if unknown:
            raise BadInput(f"{self.task}: a text pair has keys text and text_pair, got {sorted(unknown)}")
        if value.get("text_pair") is None:
            return super().preprocess(self.text(value.get("text"), "text"), params)
        pair = {"text": self.text(value.get("text"), "text"), "text_pair": self.text(value["text_pair"], "text_pair")}
        return PipelineHandler.preprocess(self, pair, params)

    @classmethod
    def single_output(cls, output: Any, raw: Any, call_params: Params) -> Any:
        # pipeline("one text") wraps its answer in a list unless the call names top_k.
        return [output] if isinstance(raw, str) and "top_k" not in call_params else output

    @classmethod
    def task_spec_answer(cls, outputs: list[Any], inputs: list[Any], single: bool, call_params: Params) -> Any:
        # The specification answers a list of {label, score} per input, always: [[...]] for one text.
        return [output if isinstance(output, list) else [output] for output in outputs]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        # pipeline() returns one {label, score} per text unless top_k is given, then a list.
        return pa.list_(LABEL_SCORE) if "top_k" in params else LABEL_SCORE


@register
class TokenClassificationHandler(TextHandler):
    """Entities (or per-token labels) with character offsets."""

    task = "token-classification"
    aliases = ("ner",)
    parameters = {
        "aggregation_strategy": P.choice("none", "simple", "first", "average", "max"),
        "ignore_labels": P.texts(),
        "stride": P.integer(0),
    }
    output_column = "entities"
    capabilities = Capabilities(display="entities", chunked=True)

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
class ZeroShotClassificationHandler(TextHandler):
    """NLI-based classification into caller-given labels, from params or per row."""

    task = "zero-shot-classification"
    inputs = (Input("text"), Input("candidate_labels", "labels", required=False))
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text(), "multi_label": P.boolean()}
    output_column = "zero_shot"
    capabilities = Capabilities(display="labels", chunked=True)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        text, labels = row_labels(value, params, "text", self.task)
        return super().preprocess(text, {**params, "candidate_labels": labels})

    @classmethod
    def task_spec_answer(cls, outputs: list[Any], inputs: list[Any], single: bool, call_params: Params) -> Any:
        # The specification answers [{label, score}, ...] (highest first) where pipeline() answers
        # {sequence, labels, scores}.
        answers = [
            [{"label": label, "score": score} for label, score in zip(o["labels"], o["scores"])] for o in outputs
        ]
        return answers[0] if single else answers

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct(
            [("sequence", pa.string()), ("labels", pa.list_(pa.string())), ("scores", pa.list_(pa.float64()))]
        )


@register
class FillMaskHandler(TextHandler):
    """The most likely tokens for the one mask token in each text."""

    task = "fill-mask"
    parameters = {"top_k": P.integer(1), "targets": P.texts()}
    output_column = "fill_mask"
    capabilities = Capabilities(display="labels")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        text = self.text(value)
        mask = self.pipe.tokenizer.mask_token
        count = text.count(mask)
        if count != 1:
            raise BadInput(f"{self.task}: the text must hold exactly one {mask} token, found {count}")
        return super().preprocess(text, params)

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("score", pa.float64()), ("token", pa.int64()), ("token_str", pa.string()), ("sequence", pa.string())]
        return pa.list_(pa.struct(fields))
