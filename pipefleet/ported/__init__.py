"""Pipelines that transformers 5 removed, ported from transformers 4.57 (same inputs, parameters and outputs).

question-answering, summarization, translation and visual-question-answering were dropped from
``transformers.pipeline`` in version 5, but fine-tuned SQuAD readers, BART/T5 summarisers,
Marian translators and ViLT answerers are still what many teams annotate with. These modules
port the 4.57 pipeline classes onto transformers 5's ``Pipeline`` base (same inputs, parameters
and outputs; tests compare them with goldens written by 4.57 itself, ``tests/legacy/``).

They are registered in transformers' pipeline registry under ``pipefleet-<task>`` names, because
``pipeline()`` refuses the removed names themselves; the handlers use those names.
"""

from __future__ import annotations

from typing import Any

REGISTERED_PREFIX = "pipefleet-"

# 4.57's default model of each task, pinned to the revision 4.57 used.
_DEFAULTS = {
    "question-answering": ("distilbert/distilbert-base-cased-distilled-squad", "564e9b5"),
    "summarization": ("sshleifer/distilbart-cnn-12-6", "a4f8f3e"),
    "translation": ("google-t5/t5-base", "a9723ea"),
    "visual-question-answering": ("dandelin/vilt-b32-finetuned-vqa", "d0a1f6a"),
}


def given(**values: Any) -> dict[str, Any]:
    """The parameters a call actually set (those not None), as a pipeline stage's keyword arguments."""
    return {name: value for name, value in values.items() if value is not None}


def registered_name(task: str) -> str:
    """The name under which ``transformers.pipeline`` builds pipefleet's pipeline for ``task``."""
    return REGISTERED_PREFIX + task


def register_pipelines() -> None:
    """Add the four pipelines to transformers' registry (idempotent; called before loading one)."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM, AutoModelForVisualQuestionAnswering
    from transformers.pipelines import PIPELINE_REGISTRY

    from pipefleet.ported.question_answering import QuestionAnsweringPipeline
    from pipefleet.ported.text2text import SummarizationPipeline, TranslationPipeline
    from pipefleet.ported.visual_question_answering import VisualQuestionAnsweringPipeline

    pipelines = {
        "question-answering": (QuestionAnsweringPipeline, AutoModelForQuestionAnswering, "text"),
        "summarization": (SummarizationPipeline, AutoModelForSeq2SeqLM, "text"),
        "translation": (TranslationPipeline, AutoModelForSeq2SeqLM, "text"),
        "visual-question-answering": (
            VisualQuestionAnsweringPipeline,
            AutoModelForVisualQuestionAnswering,
            "multimodal",
        ),
    }
    for task, (pipeline_class, model_class, kind) in pipelines.items():
        name = registered_name(task)
        if name in PIPELINE_REGISTRY.supported_tasks:
            continue
        PIPELINE_REGISTRY.register_pipeline(
            name, pipeline_class=pipeline_class, pt_model=model_class, default={"pt": _DEFAULTS[task]}, type=kind
        )
