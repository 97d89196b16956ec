"""The tasks transformers 5 removed, run by pipefleet's ports of the 4.57 pipelines (:mod:`pipefleet.legacy`).

question-answering, summarization, translation (and ``translation_xx_to_yy``) and
visual-question-answering take the inputs, parameters and output format they had in 4.57.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput, RowError
from pipefleet.handler import Params, TaskHandler
from pipefleet.media import to_image
from pipefleet.registry import register
from pipefleet.tasks.generation import GENERATE_PARAMS
from pipefleet.tasks.multimodal import SPAN_ANSWER_PARAMS, row_fields
from pipefleet.tasks.vision import ImageTextToTextHandler

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

    def setup(self) -> None:
        super().setup()
        # Multilingual tokenizers (mBART, M2M100, NLLB) mark the languages; each pair is checked once.
        self.multilingual = hasattr(self.pipe.tokenizer, "_build_translation_inputs")
        self.checked_languages: dict[tuple[Any, Any], str | None] = {}

    def pipeline_arguments(self) -> dict[str, Any]:
        # translation_en_to_fr (or src_lang/tgt_lang in the spec) picks T5's task prefix, as in 4.57.
        source, target = self.spec.params.get("src_lang"), self.spec.params.get("tgt_lang")
        return {"legacy_task": f"translation_{source}_to_{target}" if source and target else "translation"}

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if self.multilingual:
            pair = (params.get("src_lang"), params.get("tgt_lang"))
            if pair not in self.checked_languages:
                self.checked_languages[pair] = _language_problem(self.pipe.tokenizer, *pair)
            if self.checked_languages[pair]:
                raise BadInput(f"{self.task}: {self.checked_languages[pair]}")
        return super().prepare(raw, params)


def _language_problem(tokenizer: Any, source: str | None, target: str | None) -> str | None:
    """Why a multilingual tokenizer cannot translate from ``source`` to ``target``, or None if it can.

    Unknown codes would otherwise become the unknown token and the model would write in some language.
    """
    model = type(tokenizer).__name__
    if not source or not target:
        return f"{model} needs src_lang and tgt_lang (its language codes, e.g. eng_Latn, en_XX or en)"
    try:
        probe = tokenizer._build_translation_inputs("", return_tensors=None, src_lang=source, tgt_lang=target)
    except (KeyError, ValueError) as exc:  # M2M100 looks the codes up in a table
        return f"{model} does not know the language pair {source!r} -> {target!r} ({exc})"
    unknown = tokenizer.unk_token_id
    if probe.get("forced_bos_token_id") == unknown:
        return f"tgt_lang {target!r} is not a language code of {model}"
    if unknown in probe["input_ids"]:  # an empty text: only the source language's marks
        return f"src_lang {source!r} is not a language code of {model}"
    return None


@register
class VisualQuestionAnsweringHandler(LegacyHandler):
    """Answers to a question about an image: scored answers (ViLT), or a written one.

    Models of 4.57's visual-question-answering (ViLT, BLIP, BLIP-2) run its ported pipeline.
    Chat models that see images (LLaVA, Qwen2-VL, SmolVLM, ...) answer through the
    image-text-to-text handler, asked the question in one user message; their reply is the answer.
    Written answers are ``[{"answer": ...}]``: they have no score, and ``top_k`` does not apply.
    """

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
    chat: ImageTextToTextHandler | None = None

    def setup(self) -> None:
        from pipefleet.models import model_type

        if not _is_chat_model(model_type(self.spec)):
            super().setup()
            return
        self.chat = ImageTextToTextHandler(self.spec.model_copy(update={"task": "image-text-to-text", "params": {}}))
        self.chat.setup()
        self.pipe = self.chat.pipe

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        row = row_fields(raw, self.task, self.input_names)
        image, question = to_image(row.get("image"), self.task), self.text(row.get("question"), "question")
        if self.chat is None:
            return {"image": image, "question": question}, params
        content = [{"type": "image", "image": image}, {"type": "text", "text": question}]
        return self.chat.prepare([{"role": "user", "content": content}], _chat_params(params))

    def run(self, inputs: list[Any], row_params: list[dict[str, Any]]) -> list[Any]:
        if self.chat is None:
            return super().run(inputs, row_params)
        replies = self.chat.run(inputs, row_params)
        return [
            reply if isinstance(reply, RowError) else [{"answer": item["generated_text"].strip()} for item in reply]
            for reply in replies
        ]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        if self.chat is not None or self.pipe.model.can_generate():
            return pa.list_(pa.struct([("answer", pa.string())]))
        return pa.list_(pa.struct([("score", pa.float64()), ("answer", pa.string())]))


def _is_chat_model(kind: str | None) -> bool:
    """Whether a model of this ``model_type`` answers in a chat rather than as 4.57's VQA models did."""
    from transformers.models.auto import modeling_auto as auto

    answerers = auto.MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES
    return kind not in answerers and kind in auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _chat_params(params: dict[str, Any]) -> dict[str, Any]:
    """The image-text-to-text parameters of a VQA row: the reply alone, written with its generation settings."""
    chat_params: dict[str, Any] = {"return_full_text": False}
    if "max_new_tokens" in params:
        chat_params["max_new_tokens"] = params["max_new_tokens"]
    if "num_beams" in params:
        chat_params["generate_kwargs"] = {"num_beams": params["num_beams"]}
    return chat_params
