"""What several task modules share: output types, input checks and parameter sets.

One place for them, so task modules import from here and never from each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput

LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float64())])  # the classifiers' output item

GENERATE_PARAMS = {  # generate()'s parameters, shared by every generating task
    "max_new_tokens": P.integer(1),
    "min_new_tokens": P.integer(0),
    "max_length": P.integer(1),
    "do_sample": P.boolean(),
    "temperature": P.number(0),
    "top_p": P.number(0),
    "top_k": P.integer(0),
    "num_return_sequences": P.integer(1),
    "num_beams": P.integer(1),
    "repetition_penalty": P.number(0),
    "no_repeat_ngram_size": P.integer(0),
    "length_penalty": P.number(-1e9),
}

# The parameters of the extractive question-answering pipelines (answers are spans of the input).
SPAN_ANSWER_PARAMS = {
    "top_k": P.integer(1),
    "doc_stride": P.integer(1),
    "max_answer_len": P.integer(1),
    "max_seq_len": P.integer(1),
    "max_question_len": P.integer(1),
    "handle_impossible_answer": P.boolean(),
}
SPAN_ANSWER = pa.struct([("score", pa.float64()), ("answer", pa.string()), ("start", pa.int64()), ("end", pa.int64())])


# A tokenizer's truncation and padding: true or false, or a strategy (the Hugging Face task specifications'
# names; tokenizers take them as they are).
TRUNCATION = P.flag_or_choice("longest_first", "only_first", "only_second", "do_not_truncate")
PADDING = P.flag_or_choice("longest", "max_length", "do_not_pad")


def require_text(value: Any, task: str, what: str = "input", max_chars: int | None = None) -> str:
    """``value`` if it is a non-empty string of at most ``max_chars`` characters, else BadInput naming the problem."""
    if value is None:
        raise BadInput(f"{task}: {what} is missing (null)")
    if not isinstance(value, str):
        raise BadInput(f"{task}: {what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadInput(f"{task}: {what} is empty")
    if max_chars is not None and len(value) > max_chars:
        raise BadInput(f"{task}: {what} is {len(value):,} characters, over max_input_chars ({max_chars:,})")
    return value


def row_fields(raw: Any, task: str, names: Sequence[str]) -> dict[str, Any]:
    """A row given as an object of named inputs, or BadInput naming what is wrong."""
    if not isinstance(raw, dict):
        raise BadInput(f"{task}: an input is an object with {', '.join(names)}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise BadInput(f"{task}: unknown input key(s) {unknown}; an input has {', '.join(names)}")
    return raw


def row_labels(raw: Any, params: Mapping[str, Any], main: str, task: str) -> tuple[Any, list[str]]:
    """The main input and its candidate labels, for zero-shot tasks.

    A row may carry its own labels (``{main: ..., "candidate_labels": [...]}``), which replace the
    call's; labels given as one string are split on commas, as ``pipeline`` does. Raises
    BadInput when a row ends up with no labels.
    """
    labels = params.get("candidate_labels")
    if isinstance(raw, dict):
        unknown = set(raw) - {main, "candidate_labels"}
        if unknown:
            raise BadInput(f"{task}: an input has keys {main} and candidate_labels, got {sorted(unknown)}")
        if raw.get("candidate_labels") is not None:
            labels = raw["candidate_labels"]
        raw = raw.get(main)
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not labels or not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x for x in labels):
        raise BadInput(f"{task}: candidate_labels must be a non-empty list of strings (in params or per row)")
    return raw, list(labels)


def as_chat(messages: Sequence[Any], task: str) -> Any:
    """A ``transformers`` Chat from a list of ``{role, content}`` messages, or BadInput."""
    from transformers.pipelines.base import Chat

    if not messages:
        raise BadInput(f"{task}: a chat needs at least one message")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise BadInput(f"{task}: chat message {number} must be an object with 'role' and 'content'")
    return Chat([{"role": m["role"], "content": m["content"]} for m in messages])
