"""text-generation: prompts or chat conversations, generated in left-padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Params, TaskHandler
from pipefleet.registry import register

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
_PIPELINE_PARAMS = {
    "return_full_text": P.boolean(),
    "stop_sequence": P.texts(),
    "prefix": P.text(),
    "truncation": P.boolean(),
    "continue_final_message": P.boolean(),
    "skip_special_tokens": P.boolean(),
    "clean_up_tokenization_spaces": P.boolean(),
}
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


@register
class TextGenerationHandler(TaskHandler):
    """Continues a prompt, or answers a chat (a list of ``{role, content}`` messages)."""

    task = "text-generation"
    input_names = ("text", "messages")
    parameters = {**GENERATE_PARAMS, **_PIPELINE_PARAMS}
    output_column = "generated"

    def setup(self) -> None:
        super().setup()
        tokenizer = self.pipe.tokenizer
        # Decoder-only models must be padded on the left for batched generation.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if isinstance(raw, (list, tuple)):
            return as_chat(raw, self.task), params
        return self.text(raw), params

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        chat = "messages" in inputs and params.get("return_full_text", True)
        text = pa.list_(_MESSAGE) if chat else pa.string()
        return pa.list_(pa.struct([("generated_text", text)]))


def as_chat(messages: Sequence[Any], task: str) -> Any:
    """A ``transformers`` Chat from a list of ``{role, content}`` messages, or BadInput."""
    from transformers.pipelines.base import Chat

    if not messages:
        raise BadInput(f"{task}: a chat needs at least one message")
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise BadInput(f"{task}: chat message {number} must be an object with 'role' and 'content'")
    return Chat([{"role": m["role"], "content": m["content"]} for m in messages])
