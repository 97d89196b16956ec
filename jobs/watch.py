"""Saying so when a running job makes no progress, instead of waiting in silence."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


class StallWatch:
    """While open, prints a warning each time no row has finished for ``after_s`` seconds.

    ``stats`` is the job's :class:`jobs.worker.JobStats` actor. The warning names what Ray
    has free, since a pool waiting for resources it cannot get is the usual cause. When the whole
    cluster could not place even one actor (``need``: its CPUs and GPUs) for ``give_up_s`` seconds
    in a row (its GPU nodes are gone, and no autoscaler brought others), it stops the job:
    :attr:`reason` says why, and the main thread gets a KeyboardInterrupt to end the wait.
    """

    def __init__(
        self, stats: Any, after_s: float, need: dict[str, float] | None = None, give_up_s: float = 600
    ) -> None:
        self.stats, self.after_s = stats, after_s
        self.need, self.give_up_s = {k: v for k, v in (need or {}).items() if v}, give_up_s
        self.reason: str | None = None
        self.done = threading.Event()

    def __enter__(self) -> StallWatch:
        threading.Thread(target=self._watch, daemon=True, name="pipefleet-stall-watch").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()

    def _watch(self) -> None:
        import _thread

        import ray

        last_rows, last_change = -1, time.monotonic()
        unplaceable_since: float | None = None
        while not self.done.wait(min(self.after_s, self.give_up_s, 10.0)):
            try:
                rows = sum(ray.get(self.stats.snapshot.remote(), timeout=30)["rows"].values())
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                rows = last_rows  # the stats are gone: progress is judged by resources alone
            now = time.monotonic()
            missing = self._missing(ray.cluster_resources())
            unplaceable_since = (unplaceable_since or now) if missing else None
            if missing and rows == last_rows and now - unplaceable_since >= self.give_up_s:
                self.reason = (
                    f"the actor pool can no longer be placed: each actor asks for {missing}, and for "
                    f"{now - unplaceable_since:.0f} s the cluster has not had it (its nodes went away, and no "
                    "autoscaler brought others); the rows written so far are kept"
                )
                _thread.interrupt_main()
                return
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

    def _missing(self, resources: dict[str, float]) -> str:
        """What one actor asks for beyond the whole cluster's resources ("" when one fits)."""
        short = [f"{amount:g} {name}" for name, amount in self.need.items() if resources.get(name, 0.0) < amount]
        return ", ".join(short)
