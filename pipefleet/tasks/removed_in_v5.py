"""The tasks transformers 5 removed, run by pipefleet's ports of the 4.57 pipelines (:mod:`pipefleet.ported`).

question-answering, summarization, translation (and ``translation_xx_to_yy``) and
visual-question-answering take the inputs, parameters and output format they had in 4.57.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import hf_stages
from pipefleet import params as P
from pipefleet.errors import BadInput, BadParameter
from pipefleet.handler import Capabilities, Input, Params, TaskHandler
from pipefleet.media import to_image
from pipefleet.params import as_params, check_values
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import GENERATE_PARAMS, PADDING, SPAN_ANSWER_PARAMS, TRUNCATION, require_text, row_fields

_SPAN = pa.struct([("score", pa.float64()), ("start", pa.int64()), ("end", pa.int64()), ("answer", pa.string())])
_SEQ2SEQ_PARAMS = {
    **GENERATE_PARAMS,
    "min_length": P.integer(0),
    "early_stopping": P.boolean(),
    "clean_up_tokenization_spaces": P.boolean(),
    "truncation": TRUNCATION,
    # The task specifications' name for generate()'s parameters, nested: {"generate_parameters": {...}}.
    "generate_parameters": P.mapping(),
}


class PortedHandler(PipelineHandler):
    """Loads pipefleet's port of the task's 4.57 pipeline (registered with transformers on first use)."""

    def load(self) -> Any:
        from pipefleet.models import load_pipeline
        from pipefleet.ported import register_pipelines, registered_name

        register_pipelines()
        return load_pipeline(self.spec, registered_name(self.task), **self.pipeline_arguments())

    def pipeline_arguments(self) -> dict[str, Any]:
        return {}

    def text(self, value: Any, what: str = "input") -> str:
        return require_text(value, self.task, what, self.spec.max_input_chars)


@register
class QuestionAnsweringHandler(PortedHandler):
    """Extractive answers to a question about a context; long contexts are read in overlapping windows."""

    task = "question-answering"
    inputs = (Input("question"), Input("context"))
    parameters = {**SPAN_ANSWER_PARAMS, "align_to_words": P.boolean()}
    output_column = "answer"
    capabilities = Capabilities(display="text", chunked=True)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        row = row_fields(value, self.task, self.input_names())
        question = {"question": self.text(row.get("question"), "question")}
        return super().preprocess({**question, "context": self.text(row.get("context"), "context")}, params)

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        answer = super().postprocess(outputs, value, params)
        # With top_k > 1 the answer is always a list, so the column keeps one type; 4.57 returned a
        # bare object when only one span was found.
        return [answer] if isinstance(answer, dict) and _answers_listed(params) else answer

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(_SPAN) if _answers_listed(params) else _SPAN


def _answers_listed(params: Params) -> bool:
    """Whether a question-answering row's output is a list of answers rather than one."""
    return params.get("top_k", 1) > 1


@register
class SummarizationHandler(PortedHandler):
    """A summary of each text by a sequence-to-sequence model (BART, T5, Pegasus, ...)."""

    task = "summarization"
    parameters = _SEQ2SEQ_PARAMS
    output_column = "summary"
    capabilities = Capabilities(display="text")
    record = "summary_text"

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(self.text(value), params)

    def pipeline_stages(self, params: Params) -> tuple[dict, dict, dict]:
        # {"generate_parameters": {...}} (as the task specifications nest them) joins the other parameters.
        params = dict(params)
        nested = params.pop("generate_parameters", None) or {}
        unknown = sorted(set(nested) - set(GENERATE_PARAMS))
        if unknown:
            raise BadParameter(f"unknown generate_parameters for {self.task}: {', '.join(unknown)}")
        return super().pipeline_stages({**params, **check_values(as_params(GENERATE_PARAMS), nested)})

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
        self.multilingual = hf_stages.has_translation_inputs(self.pipe.tokenizer)
        self.checked_languages: dict[tuple[Any, Any], str | None] = {}

    def pipeline_arguments(self) -> dict[str, Any]:
        # translation_en_to_fr (or src_lang/tgt_lang in the spec) picks T5's task prefix, as in 4.57.
        source, target = self.spec.params.get("src_lang"), self.spec.params.get("tgt_lang")
        return {"legacy_task": f"translation_{source}_to_{target}" if source and target else "translation"}

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        if self.multilingual:
            pair = (params.get("src_lang"), params.get("tgt_lang"))
            if pair not in self.checked_languages:
                self.checked_languages[pair] = _language_problem(self.pipe.tokenizer, *pair)
            if self.checked_languages[pair]:
                raise BadInput(f"{self.task}: {self.checked_languages[pair]}")
        return super().preprocess(value, params)


def _language_problem(tokenizer: Any, source: str | None, target: str | None) -> str | None:
    """Why a multilingual tokenizer cannot translate from ``source`` to ``target``, or None if it can.

    Unknown codes would otherwise become the unknown token and the model would write in some language.
    """
    model = type(tokenizer).__name__
    if not source or not target:
        return f"{model} needs src_lang and tgt_lang (its language codes, e.g. eng_Latn, en_XX or en)"
    try:
        probe = hf_stages.translation_inputs(tokenizer, "", return_tensors=None, src_lang=source, tgt_lang=target)
    except (KeyError, ValueError) as exc:  # M2M100 looks the codes up in a table
        return f"{model} does not know the language pair {source!r} -> {target!r} ({exc})"
    unknown = tokenizer.unk_token_id
    if probe.get("forced_bos_token_id") == unknown:
        return f"tgt_lang {target!r} is not a language code of {model}"
    if unknown in probe["input_ids"]:  # an empty text: only the source language's marks
        return f"src_lang {source!r} is not a language code of {model}"
    return None


@register
class VisualQuestionAnsweringHandler(PortedHandler):
    """Answers to a question about an image: scored answers (ViLT), or a written one.

    Models of 4.57's visual-question-answering (ViLT, BLIP, BLIP-2) run its ported pipeline.
    Chat models that see images (LLaVA, Qwen2-VL, SmolVLM, ...) answer through the
    image-text-to-text handler, asked the question in one user message; their reply is the answer.
    Written answers are ``[{"answer": ...}]``: they have no score, and ``top_k`` does not apply.
    """

    task = "visual-question-answering"
    aliases = ("vqa",)
    inputs = (Input("image", "image"), Input("question"))
    parameters = {
        "top_k": P.integer(1),
        "padding": PADDING,
        "truncation": TRUNCATION,
        "timeout": P.number(0),
        "max_new_tokens": P.integer(1),
        "num_beams": P.integer(1),
    }
    output_column = "answers"
    capabilities = Capabilities(display="labels")
    chat: TaskHandler | None = None  # the image-text-to-text handler that a chat model answers through

    def setup(self) -> None:
        from pipefleet.models import model_type
        from pipefleet.registry import handler_class

        if not _is_chat_model(model_type(self.spec)):
            super().setup()
            return
        chat_spec = self.spec.model_copy(update={"task": "image-text-to-text", "params": {}})
        self.chat = handler_class("image-text-to-text")(chat_spec)
        self.chat.setup()
        self.pipe = self.chat.pipe

    def pipeline_stages(self, params: Params) -> tuple[dict, dict, dict]:
        if self.chat is None:
            return super().pipeline_stages(params)
        return self.chat.pipeline_stages(_chat_params(params))

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        row = row_fields(value, self.task, self.input_names())
        image, question = to_image(row.get("image"), self.task), self.text(row.get("question"), "question")
        if self.chat is None:
            return super().preprocess({"image": image, "question": question}, params)
        content = [{"type": "image", "image": image}, {"type": "text", "text": question}]
        return self.chat.preprocess([{"role": "user", "content": content}], params)

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        return super().forward(batch, params) if self.chat is None else self.chat.forward(batch, params)

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        if self.chat is None:
            return super().postprocess(outputs, value, params)
        reply = self.chat.postprocess(outputs, value, params)
        return [{"answer": item["generated_text"].strip()} for item in reply]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        if self.chat is not None or self.pipe.model.can_generate():
            return pa.list_(pa.struct([("answer", pa.string())]))
        return pa.list_(pa.struct([("score", pa.float64()), ("answer", pa.string())]))


def _is_chat_model(kind: str | None) -> bool:
    """Whether a model of this ``model_type`` answers in a chat rather than as 4.57's VQA models did."""
    from transformers.models.auto import modeling_auto as auto

    answerers = auto.MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES
    return kind not in answerers and kind in auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _chat_params(params: Params) -> dict[str, Any]:
    """The image-text-to-text parameters of a VQA row: the reply alone, written with its generation settings."""
    chat_params: dict[str, Any] = {"return_full_text": False}
    if "max_new_tokens" in params:
        chat_params["max_new_tokens"] = params["max_new_tokens"]
    if "num_beams" in params:
        chat_params["generate_kwargs"] = {"num_beams": params["num_beams"]}
    return chat_params
