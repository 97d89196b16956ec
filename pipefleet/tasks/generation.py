"""text-generation: prompts or chat conversations, generated in left-padded batches, or streamed."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.handler import Capabilities, Input, Params, StageParams
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import GENERATE_PARAMS, TRUNCATION, as_chat, require_text

_PIPELINE_PARAMS = {
    "return_full_text": P.boolean(),
    "stop_sequence": P.texts(),
    "prefix": P.text(),
    "truncation": TRUNCATION,
    "continue_final_message": P.boolean(),
    "skip_special_tokens": P.boolean(),
    "clean_up_tokenization_spaces": P.boolean(),
}
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


@register
class TextGenerationHandler(PipelineHandler):
    """Continues a prompt, or answers a chat (a list of ``{role, content}`` messages).

    Besides ``pipeline()``'s parameters it takes those of text-generation-inference (TGI), whose
    shape Hugging Face's clients speak: ``stop`` (stop sequences), ``seed`` (sampling starts from
    it) and ``details`` (each answer gets ``details``: why generation stopped, how many tokens it
    made, and each token's id, text and log-probability).
    """

    task = "text-generation"
    inputs = (Input("text"), Input("messages", "json", required=False))
    parameters = {
        **GENERATE_PARAMS,
        **_PIPELINE_PARAMS,
        "stop": P.texts(),  # TGI's name of stop_sequence
        "seed": P.staged(P.integer(0), "forward"),
        "details": P.staged(P.boolean(), "postprocess"),
    }
    output_column = "generated"
    capabilities = Capabilities(display="text", streaming=True)

    def setup(self) -> None:
        super().setup()
        tokenizer = self.pipe.tokenizer
        # Decoder-only models must be padded on the left for batched generation.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def pipeline_stages(self, params: Params) -> tuple[dict, dict, dict]:
        params = dict(params)
        if "stop" in params:
            params["stop_sequence"] = params.pop("stop")
        return super().pipeline_stages(params)

    def resolve(self, overrides: Params | None = None) -> StageParams:
        resolved = super().resolve(overrides)
        if not resolved.call.get("details"):
            return resolved
        # Each step's scores, for each token's log-probability; the stops and seed, for the details.
        forward = {**resolved.forward, "return_dict_in_generate": True, "output_scores": True}
        post = {**resolved.postprocess, "stop": resolved.call.get("stop"), "seed": resolved.call.get("seed")}
        return replace(resolved, forward=MappingProxyType(forward), postprocess=MappingProxyType(post))

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(self._prompt(value), params)

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        if params.get("seed") is not None:  # rows with another seed never share this pass
            import torch

            torch.manual_seed(params["seed"])
        return super().forward(batch, params)

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        if not params.get("details"):
            return super().postprocess(outputs, value, params)
        output = dict(outputs[0])
        scores = output.pop("scores")
        records = super().postprocess([output], value, {k: v for k, v in params.items() if k != "stop"})
        for index, record in enumerate(records):
            record["details"] = _details(self.pipe.tokenizer, output, scores, index, params)
        return records

    @classmethod
    def task_spec_params(cls, call_params: Params) -> dict[str, Any]:
        # TGI answers the continuation alone unless asked; pipeline() puts the prompt before it.
        return {"return_full_text": False, **call_params}

    def _prompt(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return as_chat(value, self.task)
        return require_text(value, self.task, max_chars=self.spec.max_input_chars)

    def stream(self, value: Any, params: StageParams) -> Iterator[Token]:
        """The tokens of one prompt's continuation, each as ``generate()`` produces it."""
        prompt = self._prompt(value)
        tokens = _TokenStream(self.pipe.tokenizer)
        call = {k: v for k, v in params.call.items() if k not in ("details", "seed")}
        call["return_full_text"] = False  # the pieces are the continuation
        if "stop" in call:
            call["stop_sequence"] = call.pop("stop")
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                if params.call.get("seed") is not None:
                    import torch

                    torch.manual_seed(params.call["seed"])
                self.pipe(prompt, streamer=tokens, logits_processor=tokens.processors(), **call)
            except BaseException as exc:  # surfaced to the caller below
                failure.append(exc)
                tokens.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        yield from tokens
        worker.join()
        if failure:
            raise failure[0]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        chat = "messages" in inputs and params.get("return_full_text", True)
        text = pa.list_(_MESSAGE) if chat else pa.string()
        fields = [("generated_text", text)]
        if params.get("details"):
            fields.append(("details", _DETAILS))
        return pa.list_(pa.struct(fields))


_TOKEN = pa.struct([("id", pa.int64()), ("text", pa.string()), ("logprob", pa.float64()), ("special", pa.bool_())])
_DETAILS = pa.struct(
    [
        ("finish_reason", pa.string()),
        ("generated_tokens", pa.int64()),
        ("seed", pa.int64()),
        ("prefill", pa.list_(_TOKEN)),
        ("tokens", pa.list_(_TOKEN)),
    ]
)


@dataclass(frozen=True)
class Token:
    """One generated token: its id, its text (what it adds to the decoded continuation), log-probability."""

    id: int
    text: str
    logprob: float
    special: bool


def _details(tokenizer: Any, output: dict[str, Any], scores: Any, index: int, params: Params) -> dict[str, Any]:
    """TGI's details of one returned sequence: finish reason, generated tokens with their log-probabilities."""
    import torch

    prompt_length = 0 if output.get("input_ids") is None else output["input_ids"].shape[-1]
    sequence = output["generated_sequence"][0][index][prompt_length:].tolist()
    step_scores = scores[0][index]  # [steps, vocabulary]
    eos, special = tokenizer.eos_token_id, set(tokenizer.all_special_ids)
    tokens, previous = [], ""
    for step, token_id in enumerate(sequence[: len(step_scores)]):
        logprob = float(torch.log_softmax(step_scores[step].float(), dim=-1)[token_id])
        text = tokenizer.decode(sequence[: step + 1], skip_special_tokens=True)
        tokens.append(
            {"id": token_id, "text": text[len(previous) :], "logprob": logprob, "special": token_id in special}
        )
        previous = text
        if token_id == eos:
            break
    stops = params.get("stop") or []
    if tokens and tokens[-1]["id"] == eos:
        reason = "eos_token"
    elif any(previous.endswith(stop) for stop in ([stops] if isinstance(stops, str) else stops)):
        reason = "stop_sequence"
    else:
        reason = "length"
    return {
        "finish_reason": reason,
        "generated_tokens": len(tokens),
        "seed": params.get("seed"),
        "prefill": [],
        "tokens": tokens,
    }


class _TokenStream:
    """A streamer for ``generate()`` that yields :class:`Token` s, and a logits processor that records
    each step's scores so that a token carries its log-probability."""

    def __init__(self, tokenizer: Any) -> None:
        import queue

        self.tokenizer, self.queue, self.prompt_seen = tokenizer, queue.Queue(), False
        self.ids: list[int] = []
        self.decoded = ""
        self.last_scores: Any = None
        self.special = set(tokenizer.all_special_ids)

    def scores(self, input_ids: Any, scores: Any) -> Any:  # a LogitsProcessor: records, changes nothing
        self.last_scores = scores
        return scores

    def processors(self) -> Any:
        from transformers import LogitsProcessorList

        return LogitsProcessorList([self.scores])

    def put(self, value: Any) -> None:
        import torch

        if not self.prompt_seen:  # generate() hands the prompt first
            self.prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            logprob = float(torch.log_softmax(self.last_scores[0].float(), dim=-1)[token_id])
            self.ids.append(token_id)
            decoded = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            self.queue.put(Token(token_id, decoded[len(self.decoded) :], logprob, token_id in self.special))
            self.decoded = decoded

    def end(self) -> None:
        self.queue.put(None)

    def __iter__(self) -> Iterator[Token]:
        while (token := self.queue.get()) is not None:
            yield token
