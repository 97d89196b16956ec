"""``ray job submit`` of the annotation job to a ``ray start --head`` cluster that the test owns."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from examples.make_corpus import make_corpus
from jobs.layout import manifest_path
from tests.support import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _stop_cluster(*marks: str) -> None:
    """Stop the processes of this cluster alone (``ray stop`` would stop every Ray on the machine).

    A process belongs to it when its command line names one of ``marks``: the cluster's
    temp dir or its GCS address.
    """
    import psutil

    doomed: list[psutil.Process] = []
    for process in psutil.process_iter(["cmdline"]):
        if any(mark in " ".join(process.info["cmdline"] or []) for mark in marks):
            # Agents and workers rename themselves (ray::...), so take each match's whole tree.
            with contextlib.suppress(psutil.Error):
                doomed.extend([process, *process.children(recursive=True)])
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.fixture
def head_node(cluster_env):
    temp_dir = f"/tmp/pfc-{uuid.uuid4().hex[:6]}"  # short: Unix socket paths are limited to 107 bytes
    gcs_port = free_port()
    try:
        yield _start_head(temp_dir, gcs_port, cluster_env)
    finally:
        _stop_cluster(temp_dir, f"127.0.0.1:{gcs_port}")
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def cluster_env(tmp_path):
    """The environment of the cluster's processes and of its clients: Ray 2.60 clusters ask for a token,
    here one of the test's own (a fresh machine has none in ~/.ray until something writes it)."""
    import secrets

    token = tmp_path / "ray-auth-token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def _start_head(temp_dir: str, gcs_port: int, env: dict) -> str:
    dashboard = free_port()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={gcs_port}",
            "--num-cpus=3",
            f"--temp-dir={temp_dir}",
            f"--ray-client-server-port={free_port()}",
            # Ports of its own, so another Ray on this machine (the other tests') cannot hold them.
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return url
        except urllib.error.HTTPError:  # 401: up, and asking for the cluster's token
            return url
        except OSError:
            assert time.monotonic() < deadline, "the dashboard of the test cluster did not come up"
            time.sleep(1)


def test_ray_job_submit_runs_the_job(head_node, cluster_env, tiny_model, tmp_path):
    pq.write_table(make_corpus(500, seed=5), tmp_path / "corpus.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "task": "ner",
                "model": tiny_model("token-classification"),
                "device": "cpu",
                "params": {"aggregation_strategy": "simple"},
                "input": {"path": str(tmp_path / "corpus.parquet"), "id_column": "doc_id"},
                "output": {"path": str(tmp_path / "out")},
                "compute": {"num_cpus": 1, "concurrency": 1},
            }
        )
    )
    env = cluster_env
    command = [
        RAY,
        "job",
        "submit",
        "--address",
        head_node,
        "--working-dir",
        str(REPO),
        "--",
        sys.executable,
        "-m",
        "jobs.annotate",
        str(spec),
    ]
    for _ in range(20):  # the job agent registers a little after the dashboard answers
        submitted = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if "No available agent" not in submitted.stderr:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout + submitted.stderr
    assert "500 rows (500 ok, 0 errored)" in submitted.stdout
    manifest = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    assert manifest["rows_ok"] == 500 and manifest["task"] == "token-classification"
    table = pq.read_table(tmp_path / "out")
    assert table.num_rows == 500 and "entities" in table.column_names
