"""The job's planning and bookkeeping without Ray: the actor plan for the cluster at hand, the manifest's counts."""

from __future__ import annotations

import json
import os

import pytest


def test_plan_actors_adapts_or_fails_fast():
    from jobs.compute import plan_actors
    from pipefleet.errors import FatalError
    from pipefleet.spec import ComputeSpec

    plan = plan_actors(ComputeSpec(concurrency=[2, 8]), {"CPU": 3.0}, fixed_cluster=True)
    assert plan.concurrency == 2 and plan.num_gpus == 0 and "lowered" in plan.notes[0]
    resuming = plan_actors(ComputeSpec(concurrency=[2, 8]), {"CPU": 3.0}, fixed_cluster=True, spare_cpus=2)
    assert resuming.concurrency == 1
    assert plan_actors(ComputeSpec(), {"CPU": 16.0, "GPU": 4.0}, fixed_cluster=True).num_gpus == 1
    with pytest.raises(FatalError, match="asks for 1 GPU.*has 0"):
        plan_actors(ComputeSpec(num_gpus=1), {"CPU": 8.0}, fixed_cluster=True)
    waiting = plan_actors(ComputeSpec(num_gpus=1, concurrency=[1, 4]), {"CPU": 8.0}, fixed_cluster=False)
    assert waiting.concurrency == (1, 4) and "autoscaler" in waiting.notes[0]


def test_an_actor_on_a_cpu_runs_one_lane_per_cpu_unless_told_otherwise():
    from jobs.compute import actor_threads
    from pipefleet.spec import ComputeSpec

    assert actor_threads(ComputeSpec(num_cpus=4), on_cpu=True) == (4, 1)
    assert actor_threads(ComputeSpec(num_cpus=2.5), on_cpu=True) == (2, 1)  # whole CPUs only
    assert actor_threads(ComputeSpec(num_cpus=0.5), on_cpu=True) == (1, 1)
    assert actor_threads(ComputeSpec(num_cpus=4, lanes=1), on_cpu=True) == (1, 4)
    assert actor_threads(ComputeSpec(num_cpus=4, lanes=2), on_cpu=True) == (2, 2)
    assert actor_threads(ComputeSpec(num_cpus=3, lanes=2), on_cpu=True) == (2, 1)  # divided evenly
    assert actor_threads(ComputeSpec(num_cpus=4), on_cpu=False) == (1, 4)  # one pass at a time on a GPU
    assert actor_threads(ComputeSpec(num_cpus=4), on_cpu=True, parallel_forward=False) == (1, 4)


def test_manifest_counts_jsonl_whose_errors_come_late(tmp_path):
    # pyarrow infers JSON types from the first block (1 MiB); an error column null there must still count.
    from jobs.manifest import output_counts

    rows = [{"rid": i, "text": "x" * 2000, "error": "bad row" if i == 2500 else None} for i in range(3000)]
    (tmp_path / "part-0.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = output_counts(str(tmp_path), "jsonl", "rid")
    assert counts == {"rows_out": 3000, "rows_ok": 2999, "rows_errored": 1, "duplicate_ids": 0}


def test_parquet_footer_readers_are_sized_to_a_local_inputs_files(tmp_path, monkeypatch):
    # Ray Data starts 32 footer-reading actors whatever the file count; one per 10 local files is all it uses.
    from ray.data._internal.datasource_v2.formats.parquet.footer_file_indexer import FooterFileIndexer

    from jobs.readers import FOOTER_ACTORS, footer_readers_sized_for

    monkeypatch.delenv(FOOTER_ACTORS, raising=False)

    def actors_for(path: str) -> int:
        with footer_readers_sized_for(path):
            return FooterFileIndexer(ignore_missing_paths=False)._num_actors

    (tmp_path / "one.parquet").write_bytes(b"")
    assert actors_for(str(tmp_path / "one.parquet")) == 1
    folder = tmp_path / "many"
    (folder / "year=2026").mkdir(parents=True)
    for i in range(25):
        (folder / "year=2026" / f"part-{i}.parquet").write_bytes(b"")
    (folder / "_SUCCESS").write_bytes(b"")  # not data: not counted
    assert actors_for(str(folder)) == 3
    assert actors_for(f"file://{folder}") == 3
    assert actors_for("s3://bucket/corpus/") == 32  # remote: Ray's own pool
    assert FOOTER_ACTORS not in os.environ  # set only while the read is planned
    monkeypatch.setenv(FOOTER_ACTORS, "5")
    assert actors_for(str(folder)) == 5  # the user's own value wins
