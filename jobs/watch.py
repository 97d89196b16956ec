"""Saying so when a running job makes no progress, instead of waiting in silence."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


class StallWatch:
    """While open, prints a warning each time no row has finished for ``after_s`` seconds.

    ``stats`` is the job's :class:`jobs.worker.JobStats` actor. The warning names what Ray
    has free, since a pool waiting for resources it cannot get is the usual cause.
    """

    def __init__(self, stats: Any, after_s: float) -> None:
        self.stats, self.after_s = stats, after_s
        self.done = threading.Event()

    def __enter__(self) -> StallWatch:
        threading.Thread(target=self._watch, daemon=True, name="pipefleet-stall-watch").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()

    def _watch(self) -> None:
        import ray

        last_rows, last_change = -1, time.monotonic()
        while not self.done.wait(min(self.after_s, 10.0)):
            rows = sum(ray.get(self.stats.snapshot.remote())["rows"].values())
            now = time.monotonic()
            if rows != last_rows:
                last_rows, last_change = rows, now
            elif now - last_change >= self.after_s:
                free = {k: round(v, 2) for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
                print(
                    f"pipefleet: warning: no rows finished in the last {now - last_change:.0f} s ({rows} done so far); "
                    f"free now: {free or 'nothing'}. A model still loading looks the same; otherwise compare "
                    "compute.num_gpus, num_cpus and concurrency with what the cluster has.",
                    file=sys.stderr,
                    flush=True,
                )
                last_change = now
