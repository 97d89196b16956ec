"""Server-sent events of a streamed generation, in the shape of text-generation-inference (TGI), which
``huggingface_hub.InferenceClient.text_generation(..., stream=True)`` and TGI's other clients read.

Each token is one event, ``{"index", "token": {"id", "text", "logprob", "special"}, "generated_text":
null, "details": null}``; the last token's event carries the whole ``generated_text`` and
``details`` (``finish_reason``, ``generated_tokens``, ``seed``). A failure after the answer has
begun is an event ``{"error", "error_type"}``. ``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any


async def tgi_events(tokens: AsyncIterator[Any], call: Mapping[str, Any]) -> AsyncIterator[str]:
    """The events of one generation from its tokens (:class:`pipefleet.tasks.generation.Token`)."""
    held, index, generated = None, 0, ""
    try:
        async for token in tokens:
            if held is not None:  # a token is sent once the next one shows it is not the last
                yield _event({"index": index, "token": held, "generated_text": None, "details": None})
                index += 1
            held = dataclasses.asdict(token)
            generated += token.text
        if held is not None:
            details = {"finish_reason": _finish_reason(held, generated, call), "generated_tokens": index + 1}
            details["seed"] = call.get("seed")
            yield _event({"index": index, "token": held, "generated_text": generated, "details": details})
    except Exception as exc:  # noqa: BLE001 - the status is sent already: the error is an event
        yield _event({"error": str(exc) or type(exc).__name__, "error_type": "generation"})
    yield "data: [DONE]\n\n"


def _finish_reason(last: dict[str, Any], generated: str, call: Mapping[str, Any]) -> str:
    stops = call.get("stop") or call.get("stop_sequence") or []
    if last["special"]:
        return "eos_token"
    if any(generated.endswith(stop) for stop in ([stops] if isinstance(stops, str) else stops)):
        return "stop_sequence"
    return "length"


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
