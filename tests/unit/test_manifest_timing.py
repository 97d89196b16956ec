"""The manifest's timing: until the first batch, where that start went, and the pace from then on."""

from __future__ import annotations

from jobs.annotate import summary
from jobs.manifest import _startup, start_phases

STARTED = 1_000.0
TIMING = {"started": STARTED, "connected": STARTED + 2.8, "written": STARTED + 40.0, "stopped": STARTED + 40.4}


def test_the_start_is_split_at_ray_up_and_at_the_first_actor_ready():
    actor_starts = {
        "10.0.0.1/ab:11": {"began": STARTED + 6.5, "ready": STARTED + 12.0},
        "10.0.0.2/cd:22": {"began": STARTED + 6.0, "ready": STARTED + 11.0},  # ready first: its times are kept
    }
    assert start_phases(TIMING, actor_starts) == {"ray_up_s": 2.8, "actor_loading_s": 6.0, "actor_ready_s": 11.0}


def test_with_no_actor_heard_from_only_ray_up_is_known():
    assert start_phases(TIMING, {}) == {"ray_up_s": 2.8, "actor_loading_s": None, "actor_ready_s": None}


def test_the_steady_pace_counts_from_the_first_batch():
    assert _startup(STARTED + 11.1, rows=3000, wall_s=40.0, started_at=STARTED) == (11.1, round(3000 / 28.9, 2))
    assert _startup(None, rows=0, wall_s=40.0, started_at=STARTED) == (0.0, None)  # no batch ran


def _manifest(phases: dict) -> dict:
    run = {
        "rows": 3000,
        "errored": 0,
        "wall_s": 40.0,
        "rows_per_s": 75.0,
        "per_actor_rows": {"a": 3000},
        "compute": {"lanes": 2, "threads_per_lane": 1},
        "startup_s": 11.1,
        "startup_phases": phases,
        "steady_rows_per_s": 103.8,
        "teardown_s": 0.4,
    }
    return {
        "task": "feature-extraction",
        "model": "m",
        "this_run": run,
        "rows_out": 3000,
        "rows_ok": 3000,
        "rows_errored": 0,
        "duplicate_ids": 0,
        "output": "/o",
        "output_format": "parquet",
    }


def test_the_summary_says_where_the_start_went():
    text = summary(_manifest(start_phases(TIMING, {"w": {"began": STARTED + 6.0, "ready": STARTED + 11.0}})))
    assert (
        "first batch after 11.1 s (Ray up at 2.8 s; first actor loading from 6.0 s, ready at 11.0 s), "
        "then 103.8 rows/s; shut down in 0.4 s"
    ) in text
    # Stats lost with their node: no actor's times, and the line says no more than it knows.
    assert "first batch after 11.1 s (Ray, actors, model)" in summary(_manifest(start_phases(TIMING, {})))
