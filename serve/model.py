"""The replica that holds one loaded handler and answers batched calls.

A request with N inputs is cut into pieces of at most ``max_batch_size`` rows; ``@serve.batch``
counts rows, not requests (``batch_size_fn``), so concurrent requests share forward passes.
Rows keep their own request's parameters: the handler never mixes them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from pipefleet.errors import RowError
from pipefleet.outputs import to_jsonable


@dataclass
class Piece:
    """Consecutive inputs of one request with that request's parameters."""

    inputs: list[Any]
    params: dict[str, Any] = field(default_factory=dict)


def _rows_in(pieces: list[Piece]) -> int:
    return sum(len(piece.inputs) for piece in pieces)


def encode_outcome(outcome: Any) -> dict[str, Any]:
    """One row's outcome as JSON: ``{"output": ...}`` or ``{"error": ..., "kind": ...}``."""
    if isinstance(outcome, RowError):
        return {"error": outcome.message, "kind": outcome.kind}
    return {"output": to_jsonable(outcome)}


class ModelServer:
    """Serve deployment class (wrapped with ``serve.deployment`` in :mod:`serve.app`)."""

    def __init__(self, spec_json: str) -> None:
        import torch

        from pipefleet.registry import handler_class
        from pipefleet.spec import parse_spec

        self.spec = parse_spec(json.loads(spec_json))
        torch.set_num_threads(max(1, int(self.spec.serve.num_cpus)))
        self.handler = handler_class(self.spec.task)(self.spec)
        self.handler.setup()
        self.run_batch.set_max_batch_size(self.spec.serve.max_batch_size)
        self.run_batch.set_batch_wait_timeout_s(self.spec.serve.batch_wait_timeout_s)
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # rows per forward call, for /-/stats
        from ray.serve.metrics import Histogram

        self.batch_rows = Histogram(
            "pipefleet_batch_rows",
            "Rows per batched forward call.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256],
            tag_keys=("route",),
        )
        self.started = time.time()

    async def predict(self, inputs: list[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Outcomes for ``inputs``, batched with whatever else is in flight on this replica."""
        size = self.spec.serve.max_batch_size
        pieces = [Piece(inputs[i : i + size], params) for i in range(0, len(inputs), size)]
        results = await asyncio.gather(*(self.run_batch(piece) for piece in pieces))
        return [outcome for piece_result in results for outcome in piece_result]

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01, batch_size_fn=_rows_in)
    async def run_batch(self, pieces: list[Piece]) -> list[list[dict[str, Any]]]:
        inputs = [value for piece in pieces for value in piece.inputs]
        params = [piece.params for piece in pieces for _ in piece.inputs]
        self.batch_sizes.append(len(inputs))
        self.batch_rows.observe(len(inputs), tags={"route": self.spec.route})
        # The forward pass runs in a thread so the replica keeps accepting (and batching) requests.
        outcomes = await asyncio.to_thread(self.handler.predict, inputs, params)
        encoded = [encode_outcome(o) for o in outcomes]
        answers, start = [], 0
        for piece in pieces:
            answers.append(encoded[start : start + len(piece.inputs)])
            start += len(piece.inputs)
        return answers

    async def stream(self, text: Any, params: dict[str, Any]) -> AsyncIterator[str]:
        """Server-sent text pieces of one generation, as they are produced."""
        import threading

        from transformers import TextIteratorStreamer

        pipe = self.handler.pipe
        streamer = TextIteratorStreamer(pipe.tokenizer, skip_prompt=True, skip_special_tokens=True)
        run_params = {**self.handler.merged_params(params), "return_full_text": False}
        prepared, run_params = self.handler.prepare(text, run_params)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                pipe(prepared, streamer=streamer, **run_params)
            except BaseException as exc:  # surfaced to the caller below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        iterator = iter(streamer)
        while True:
            piece = await asyncio.to_thread(next, iterator, None)
            if piece is None:
                break
            if piece:
                yield piece
        worker.join()
        if failure:
            raise failure[0]

    def stats(self) -> dict[str, Any]:
        """Batch sizes seen lately, for the gateway's /-/stats."""
        sizes = list(self.batch_sizes)
        return {"batches": len(sizes), "max_batch_rows": max(sizes, default=0), "recent_batch_rows": sizes[-50:]}

    def identity(self) -> dict[str, Any]:
        return self.handler.identity()
