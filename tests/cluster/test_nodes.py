"""The job on a Ray cluster of several nodes on this machine (``ray.cluster_utils.Cluster``: a head with
one CPU and two worker nodes, one of them with a logical GPU): actors placed by their resources, a
worker node lost mid-run, and a pool that can no longer be placed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from examples.make_corpus import make_corpus
from jobs.layout import manifest_path
from tests.faults import driver_with_hook

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = {
        "cpu": made.add_node(num_cpus=2, resources={"cpu_worker": 1}),
        "gpu": made.add_node(num_cpus=2, num_gpus=1),
    }
    made.wait_for_nodes()
    try:
        yield made, nodes
    finally:
        made.shutdown()


def _spec(tmp_path: Path, model: str, rows: int, **compute) -> Path:
    pq.write_table(make_corpus(rows, seed=21), tmp_path / "corpus.parquet", row_group_size=500)
    spec = {
        "task": "text-classification",
        "model": model,
        "device": "cpu",
        "batch_size": 32,
        "input": {"path": str(tmp_path / "corpus.parquet"), "id_column": "doc_id"},
        "output": {"path": str(tmp_path / "out"), "rows_per_file": 1000},
        "compute": {"num_cpus": 1, "rows_per_call": 500, "stall_warning_s": 5, **compute},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    return path


def _start_job(
    spec: Path, address: str, env: dict[str, str] | None = None, hook: str | None = None, hook_env: dict | None = None
) -> subprocess.Popen:
    """Run the job on the cluster at ``address``; with ``hook``, every Ray worker of the job first runs
    ``tests.faults.<hook>``, with ``hook_env`` in its environment."""
    env = {**(env or os.environ), "RAY_ADDRESS": address}
    driver = driver_with_hook(hook, {"PYTHONPATH": str(REPO), **(hook_env or {})}) if hook else ["-m", "jobs.annotate"]
    command = [sys.executable, *driver, str(spec)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _manifest(tmp_path: Path) -> dict:
    return json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())


def test_gpu_actors_land_on_the_gpu_node_and_the_manifest_names_it(cluster, tiny_model, tmp_path):
    made, nodes = cluster
    job = _start_job(_spec(tmp_path, tiny_model("text-classification"), 3000, num_gpus=1, concurrency=1), made.address)
    output, _ = job.communicate(timeout=600)
    assert job.returncode == 0, output[-3000:]
    actors = _manifest(tmp_path)["this_run"]["per_actor_rows"]
    gpu_node = nodes["gpu"].node_id[:8]
    assert actors and all(f"/{gpu_node}:" in name for name in actors), (actors, gpu_node)
    assert sum(actors.values()) >= 3000


def test_a_worker_node_lost_mid_run_costs_no_row_and_is_reported(cluster, tiny_model, tmp_path):
    made, nodes = cluster
    job = _start_job(_spec(tmp_path, tiny_model("text-classification"), 20_000, concurrency=2), made.address)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((tmp_path / "out").glob("*.parquet"))) < 2:
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.5)
    made.remove_node(nodes["cpu"], allow_graceful=False)  # its raylet and workers, as a reclaimed node vanishes
    output, _ = job.communicate(timeout=900)
    assert job.returncode == 0, output[-3000:]
    ids = pq.read_table(tmp_path / "out", columns=["doc_id"])["doc_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 20_000  # every row once
    run = _manifest(tmp_path)["this_run"]
    assert run["nodes_lost"] == [f"{nodes['cpu'].node_ip_address}/{nodes['cpu'].node_id[:8]}"]
    assert "node(s) went away during the run" in output and "each row is in the output once" in output


def test_a_pool_that_can_no_longer_be_placed_stops_with_the_reason(cluster, tiny_model, tmp_path):
    made, nodes = cluster
    spec = _spec(tmp_path, tiny_model("text-classification"), 20_000, num_gpus=1, concurrency=1)
    data = json.loads(spec.read_text())
    data["compute"]["unplaceable_timeout_s"] = 5
    spec.write_text(json.dumps(data))
    job = _start_job(spec, made.address)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((tmp_path / "out").glob("*.parquet")):
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.5)
    made.remove_node(nodes["gpu"], allow_graceful=False)  # the only GPU goes, and nothing brings another
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 1, output[-3000:]
    assert "the actor pool can no longer be placed: each actor asks for 1 GPU" in output
    assert "rerun the same command" in output
