"""text-generation: prompts or chat conversations, generated in left-padded batches, or streamed."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.handler import Capabilities, Input, Params, StageParams
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import GENERATE_PARAMS, as_chat, require_text

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
class TextGenerationHandler(PipelineHandler):
    """Continues a prompt, or answers a chat (a list of ``{role, content}`` messages)."""

    task = "text-generation"
    inputs = (Input("text"), Input("messages", "json", required=False))
    parameters = {**GENERATE_PARAMS, **_PIPELINE_PARAMS}
    output_column = "generated"
    capabilities = Capabilities(display="text", streaming=True)

    def setup(self) -> None:
        super().setup()
        tokenizer = self.pipe.tokenizer
        # Decoder-only models must be padded on the left for batched generation.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(self._prompt(value), params)

    def _prompt(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return as_chat(value, self.task)
        return require_text(value, self.task, max_chars=self.spec.max_input_chars)

    def stream(self, value: Any, params: StageParams) -> Iterator[str]:
        """The generated text of one prompt, piece by piece, as ``generate()`` produces it."""
        from transformers import TextIteratorStreamer

        prompt = self._prompt(value)
        streamer = TextIteratorStreamer(self.pipe.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                self.pipe(prompt, streamer=streamer, **{**params.call, "return_full_text": False})
            except BaseException as exc:  # surfaced to the caller below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise failure[0]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        chat = "messages" in inputs and params.get("return_full_text", True)
        text = pa.list_(_MESSAGE) if chat else pa.string()
        return pa.list_(pa.struct([("generated_text", text)]))
