"""The job under faults: a killed driver, a killed actor, out of memory in every worker, a full disk, a stall."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from examples.make_corpus import make_corpus
from jobs.annotate import annotate
from jobs.layout import manifest_path
from pipefleet.spec import parse_spec
from tests.jobs.test_job import (
    _assert_same_classification,
    _expected,
    _output_ids,
    _read_output,
    _run_job,
    _spec,
    _wait_for_files,
    _write_spec,
)


@pytest.mark.slow
def test_resume_after_killing_the_driver(tiny_model, tmp_path):
    # No id column: resume rests on the row hash Ray derives for Parquet input.
    spec_path = _write_spec(tmp_path, tiny_model("text-classification"), 20_000, seed=4, id_column=None)
    first = _run_job(spec_path)
    _wait_for_files(first, tmp_path / "out", 10)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started, mid-run
    first.wait()
    done_before = len(_output_ids(tmp_path, "row_hash"))
    assert 0 < done_before < 20_000

    second = _run_job(spec_path)
    output, _ = second.communicate(timeout=400)
    assert second.returncode == 0, output[-3000:]
    manifest = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    ids = _output_ids(tmp_path, "row_hash")
    assert len(ids) == len(set(ids)) == 20_000
    assert manifest["duplicate_ids"] == 0 and manifest["rows_out"] == manifest["rows_in"] == 20_000
    assert manifest["this_run"]["rows"] <= 20_000 - done_before  # the finished part was not redone

    third = _run_job(spec_path)  # a finished job reruns as a no-op
    output, _ = third.communicate(timeout=300)
    assert third.returncode == 0, output[-3000:]
    assert "nothing left to do" in output
    assert json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())["this_run"]["rows"] == 0
    assert len(_output_ids(tmp_path, "row_hash")) == 20_000


def test_a_stalled_job_says_so(local_ray, tiny_model, tmp_path, capfd):
    # Loading the model takes longer than this warning's 0.5 s: the job reports the wait.
    pq.write_table(make_corpus(20, seed=6), tmp_path / "c.parquet")
    spec = _spec(
        tiny_model("text-classification"), tmp_path / "c.parquet", tmp_path / "out", compute={"stall_warning_s": 0.5}
    )
    annotate(spec)
    warning = capfd.readouterr().err
    assert "pipefleet: warning: no rows finished in the last" in warning and "free now: {" in warning


@pytest.mark.slow
def test_job_survives_a_killed_actor(tiny_model, tmp_path):
    import psutil

    spec_path = _write_spec(tmp_path, tiny_model("text-classification"), 20_000, seed=8)
    job = _run_job(spec_path)
    _wait_for_files(job, tmp_path / "out", 10)
    actors = [
        p for p in psutil.process_iter(["cmdline"]) if "MapBatches(AnnotateBatch)" in " ".join(p.info["cmdline"] or [])
    ]
    assert actors, "no annotating actor found to kill"
    actors[0].kill()  # a real SIGKILL of one actor process, mid-run
    output, _ = job.communicate(timeout=400)
    assert job.returncode == 0, output[-3000:]
    assert sorted(_output_ids(tmp_path, "doc_id")) == sorted(make_corpus(20_000, seed=8)["doc_id"].to_pylist())
    manifest = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    assert manifest["rows_out"] == manifest["rows_ok"] == 20_000 and manifest["duplicate_ids"] == 0


def test_out_of_memory_in_the_job_halves_batches_and_is_reported(tiny_model, tmp_path):
    from tests.faults import OOM_ROWS_ENV

    spec_path = _write_spec(tmp_path, tiny_model("text-classification"), 600, seed=9)
    job = _run_job(spec_path, hook="oom_in_workers", env={OOM_ROWS_ENV: "5"})
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output[-3000:]
    assert "batch(es) ran out of memory and were halved" in output
    manifest = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    assert manifest["rows_ok"] == 600 and manifest["this_run"]["oom_splits"] >= 2  # at least one per actor

    table = _read_output(tmp_path / "out")
    expected = _expected(parse_spec(json.loads(spec_path.read_text())), table["text"].tolist())
    for text, got in zip(table["text"], table["classification"]):
        _assert_same_classification(list(got), expected[text])


def test_a_failed_write_stops_clearly_and_a_rerun_completes_without_duplicates(tiny_model, tmp_path):
    from tests.faults import WRITE_FAIL_ENV

    spec_path = _write_spec(tmp_path, tiny_model("text-classification"), 3000, seed=10)
    failing = _run_job(spec_path, hook="disk_full_in_workers", env={WRITE_FAIL_ENV: "3"})
    output, _ = failing.communicate(timeout=300)
    assert failing.returncode == 1, output[-3000:]
    assert "pipefleet: error: the job stopped: OSError: [Errno 28] No space left on device" in output
    assert "rerun the same command" in output
    assert 0 < len(_output_ids(tmp_path, "doc_id")) < 3000

    rerun = _run_job(spec_path)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output[-3000:]
    assert sorted(_output_ids(tmp_path, "doc_id")) == sorted(make_corpus(3000, seed=10)["doc_id"].to_pylist())
    manifest = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    assert manifest["duplicate_ids"] == 0 and manifest["rows_out"] == manifest["rows_ok"] == 3000
