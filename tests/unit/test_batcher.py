"""The route replica's batcher, without Serve: batches form when the model is free, from what queued meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serve.batcher import Batcher


class SlowModel:
    """A forward pass that takes ``seconds`` and records the rows of every batch."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds, self.batches, self.lock = seconds, [], threading.Lock()

    def __call__(self, inputs: list, params: list) -> list:
        with self.lock:
            self.batches.append(list(inputs))
        time.sleep(self.seconds)
        return [(value, p.get("tag")) for value, p in zip(inputs, params)]


def test_requests_that_queue_while_the_model_runs_share_the_next_batch():
    model = SlowModel()

    async def main():
        batcher = Batcher(model, max_rows=32, wait_s=0.0, arriving=lambda: 0)
        first = asyncio.create_task(batcher.run(["first"], {}))
        await asyncio.sleep(0.01)  # the first batch is running now
        rest = [asyncio.create_task(batcher.run([f"r{i}"], {"tag": i})) for i in range(20)]
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first == [("first", None)]
    assert rest == [[(f"r{i}", i)] for i in range(20)]  # each request gets its own rows, with its parameters
    assert [len(batch) for batch in model.batches] == [1, 20]


def test_a_batch_holds_at_most_max_rows_and_a_long_request_is_cut():
    model = SlowModel(0.01)

    async def main():
        batcher = Batcher(model, max_rows=4, wait_s=0.0, arriving=lambda: 0)
        return await asyncio.gather(batcher.run(list(range(10)), {}), batcher.run(["x", "y"], {}))

    long, short = asyncio.run(main())
    assert [value for value, _ in long] == list(range(10)) and [v for v, _ in short] == ["x", "y"]
    assert max(len(batch) for batch in model.batches) <= 4
    assert sum(len(batch) for batch in model.batches) == 12


def test_it_waits_for_requests_being_read_but_not_for_nobody():
    model = SlowModel(0.0)
    arriving = {"count": 1}

    async def main():
        batcher = Batcher(model, max_rows=32, wait_s=5.0, arriving=lambda: arriving["count"])
        first = asyncio.create_task(batcher.run(["a"], {}))
        await asyncio.sleep(0.05)
        assert not first.done()  # a request is still being read: the batch waits for it
        arriving["count"] = 0
        second = asyncio.create_task(batcher.run(["b"], {}))
        started = time.monotonic()
        await asyncio.gather(first, second)
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert model.batches == [["a", "b"]]
    assert waited < 1  # once nothing else is arriving, it runs without waiting out wait_s


def test_a_failing_batch_fails_its_requests_and_the_next_batch_still_runs():
    calls = []

    def forward(inputs, params):
        calls.append(list(inputs))
        if "boom" in inputs:
            raise RuntimeError("the model fell over")
        return list(inputs)

    async def main():
        batcher = Batcher(forward, max_rows=8, wait_s=0.0, arriving=lambda: 0)
        with pytest.raises(RuntimeError, match="fell over"):
            await batcher.run(["boom"], {})
        return await batcher.run(["fine"], {})

    assert asyncio.run(main()) == ["fine"]
    assert calls == [["boom"], ["fine"]]


def test_a_cancelled_request_leaves_the_queue():
    model = SlowModel(0.05)

    async def main():
        batcher = Batcher(model, max_rows=8, wait_s=0.0, arriving=lambda: 0)
        running = asyncio.create_task(batcher.run(["running"], {}))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(batcher.run(["gone"], {}))
        kept = asyncio.create_task(batcher.run(["kept"], {}))
        await asyncio.sleep(0.005)
        gone.cancel()  # e.g. its request timed out
        await running
        return await kept

    assert asyncio.run(main()) == [("kept", None)]
    assert ["gone"] not in model.batches and all("gone" not in batch for batch in model.batches)
