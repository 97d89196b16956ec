"""The tasks transformers 5 removed, run by pipefleet's ports of the 4.57 pipelines (:mod:`pipefleet.legacy`).

question-answering, summarization, translation (and ``translation_xx_to_yy``) and
visual-question-answering take the inputs, parameters and output format they had in 4.57.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.handler import Params, TaskHandler
from pipefleet.media import to_image
from pipefleet.registry import register
from pipefleet.tasks.generation import GENERATE_PARAMS
from pipefleet.tasks.multimodal import SPAN_ANSWER_PARAMS, row_fields

_SPAN = pa.struct([("score", pa.float64()), ("start", pa.int64()), ("end", pa.int64()), ("answer", pa.string())])
_SEQ2SEQ_PARAMS = {
    **GENERATE_PARAMS,
    "min_length": P.integer(0),
    "early_stopping": P.boolean(),
    "clean_up_tokenization_spaces": P.boolean(),
    "truncation": P.boolean(),
}


class LegacyHandler(TaskHandler):
    """Loads pipefleet's port of the task's 4.57 pipeline (registered with transformers on first use)."""

    def setup(self) -> None:
        from pipefleet.legacy import register_pipelines, registered_name
        from pipefleet.models import load_pipeline

        register_pipelines()
        self.pipe = load_pipeline(self.spec, registered_name(self.task), **self.pipeline_arguments())

    def pipeline_arguments(self) -> dict[str, Any]:
        return {}


@register
class QuestionAnsweringHandler(LegacyHandler):
    """Extractive answers to a question about a context; long contexts are read in overlapping windows."""

    task = "question-answering"
    input_names = ("question", "context")
    parameters = {**SPAN_ANSWER_PARAMS, "align_to_words": P.boolean()}
    output_column = "answer"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        row = row_fields(raw, self.task, self.input_names)
        return {
            "question": self.text(row.get("question"), "question"),
            "context": self.text(row.get("context"), "context"),
        }, params

    def run(self, inputs: list[Any], row_params: list[dict[str, Any]]) -> list[Any]:
        outcomes = super().run(inputs, row_params)
        # With top_k > 1 the answer is always a list, so the column keeps one type; 4.57 returned a
        # bare object when only one span was found.
        return [
            [outcome] if isinstance(outcome, dict) and _answers_listed(params) else outcome
            for outcome, params in zip(outcomes, row_params)
        ]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(_SPAN) if _answers_listed(params) else _SPAN


def _answers_listed(params: Params) -> bool:
    """Whether a question-answering row's output is a list of answers rather than one."""
    return params.get("top_k", 1) > 1


@register
class SummarizationHandler(LegacyHandler):
    """A summary of each text by a sequence-to-sequence model (BART, T5, Pegasus, ...)."""

    task = "summarization"
    parameters = _SEQ2SEQ_PARAMS
    output_column = "summary"
    record = "summary_text"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(pa.struct([(self.record, pa.string())]))


@register
class TranslationHandler(SummarizationHandler):
    """Each text translated; ``src_lang``/``tgt_lang`` for multilingual models (mBART, M2M100, NLLB)."""

    task = "translation"
    parameters = {**_SEQ2SEQ_PARAMS, "src_lang": P.text(), "tgt_lang": P.text()}
    output_column = "translation"
    record = "translation_text"

    def pipeline_arguments(self) -> dict[str, Any]:
        # translation_en_to_fr (or src_lang/tgt_lang in the spec) picks T5's task prefix, as in 4.57.
        source, target = self.spec.params.get("src_lang"), self.spec.params.get("tgt_lang")
        return {"legacy_task": f"translation_{source}_to_{target}" if source and target else "translation"}


@register
class VisualQuestionAnsweringHandler(LegacyHandler):
    """Answers to a question about an image: scored answers (ViLT), or a generated one (BLIP)."""

    task = "visual-question-answering"
    aliases = ("vqa",)
    input_names = ("image", "question")
    media = "image"
    parameters = {
        "top_k": P.integer(1),
        "padding": P.boolean(),
        "truncation": P.boolean(),
        "timeout": P.number(0),
        "max_new_tokens": P.integer(1),
        "num_beams": P.integer(1),
    }
    output_column = "answers"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        row = row_fields(raw, self.task, self.input_names)
        return {
            "image": to_image(row.get("image"), self.task),
            "question": self.text(row.get("question"), "question"),
        }, params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        # Generative models give no score: the field is null in their rows.
        return pa.list_(pa.struct([("score", pa.float64()), ("answer", pa.string())]))
