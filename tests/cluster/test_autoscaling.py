"""Autoscaling with Ray's ``fake_multinode`` provider: a head with no GPU, and worker nodes of one logical
GPU that the autoscaler starts on this machine when actors or replicas ask for a GPU, and stops when they
have been idle for ``idle_timeout_minutes``. The job's pool grows onto the new nodes, and the endpoint's
replicas follow the load; both say what they wait for while the nodes come."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from serve.app import APP_NAME
from tests.cluster.test_cluster_submit import _stop_cluster, cluster_env  # noqa: F401 - cluster_env: a fixture
from tests.cluster.test_nodes import REPO, _manifest, _spec, _start_job
from tests.faults import FORWARD_DELAY_ENV
from tests.load import numbered_request, run_load
from tests.support import TEST_SERVE_ENV, free_port, replica_marker

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))
MAX_WORKERS = 3
FORWARD_DELAY_S = 0.12  # seconds of sleep before each forward pass of the job test's model
HEAD_NODE = "ray.head.default"  # the name Ray's autoscaler gives the head's node type


def _config(gcs_address: str) -> dict:
    """The shape of cluster.yaml (a CPU head, GPU workers from 0 up), on the fake provider: each worker node
    is a raylet on this machine, with one CPU and one logical GPU."""
    return {
        "cluster_name": "pipefleet-autoscaling",
        "max_workers": MAX_WORKERS,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,  # an idle node goes after 6 s, so that scaling down happens within the test
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,  # otherwise the nodes look for the GCS at port 6379
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "head_node_type": HEAD_NODE,
        "available_node_types": {
            HEAD_NODE: {"resources": {"CPU": 2}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {
                "resources": {"CPU": 1, "GPU": 1, "object_store_memory": 200 * 2**20},
                "node_config": {},
                "min_workers": 0,
                "max_workers": MAX_WORKERS,
            },
        },
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class FakeCluster:
    """A head started with ``--autoscaling-config`` (as ``ray.cluster_utils.AutoscalingCluster`` does, which
    cannot be used here: it stops every Ray on the machine first, and reads an example config that the
    installed Ray lacks)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.temp_dir = f"/tmp/pfa-{uuid.uuid4().hex[:6]}"  # short: Unix socket paths are limited to 107 bytes
        self.address = f"127.0.0.1:{free_port()}"
        # The autoscaler (the head's monitor process) starts the worker nodes; they inherit its environment.
        self.env = {**env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", **TEST_SERVE_ENV}

    def start(self) -> None:
        Path(self.temp_dir).mkdir()
        config = Path(self.temp_dir, "autoscaling.json")
        config.write_text(json.dumps(_config(self.address)))
        ports = ("ray-client-server", "dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent")
        command = [
            RAY,
            "start",
            "--head",
            f"--port={self.address.split(':')[1]}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--num-gpus=0",
            "--object-store-memory=300000000",
            f"--autoscaling-config={config}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            *(f"--{name}-port={free_port()}" for name in ports),
            f"--metrics-export-port={free_port()}",
        ]
        subprocess.run(command, check=True, env=self.env, capture_output=True, timeout=120)

    def stop(self) -> None:
        _stop_cluster(self.temp_dir, self.address)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def worker_nodes(self) -> list[int]:
        """The raylet process ids of this cluster's worker nodes alive now: a node is gone when its raylet is."""
        from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

        raylets = []
        for process in psutil.process_iter(["cmdline", "name"]):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] == "raylet" and f"--temp_dir={self.temp_dir}" in cmdline:
                if f"--node_id={FAKE_HEAD_NODE_ID}" not in cmdline:
                    raylets.append(process.pid)
        return raylets


@pytest.fixture
def fake_cluster(cluster_env):  # noqa: F811 - the imported fixture
    made = FakeCluster(cluster_env)
    try:
        made.start()
        yield made
    finally:
        made.stop()


def _watch(until: Callable[[], bool], seen: Callable[[], object], timeout_s: float, every_s: float = 0.5) -> list:
    """Poll ``seen()`` until ``until()`` holds or ``timeout_s`` passes; return what was seen."""
    found = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until():
        found.append(seen())
        time.sleep(every_s)
    return found


def test_the_job_pool_grows_onto_nodes_the_autoscaler_adds_and_they_go_after(fake_cluster, tiny_model, tmp_path):
    # The job's length is set by a sleep in each forward pass, not by how fast this machine runs the model:
    # 6,000 rows take 629 forward passes (batches of up to 32 rows, cut shorter by max tokens), so one actor
    # alone needs over 75 s. Measured here: the first worker node comes 5 s after the job starts and its actor
    # has loaded at 28 s; a second node comes at 18 s and its actor has loaded at 44 s.
    rows = 6_000
    spec = _spec(tmp_path, tiny_model("text-classification"), rows, num_gpus=1, concurrency=[1, 4])
    assert not fake_cluster.worker_nodes()  # min_workers 0: no GPU node before the job asks for one
    slow = {FORWARD_DELAY_ENV: str(FORWARD_DELAY_S)}
    job = _start_job(spec, fake_cluster.address, fake_cluster.env, hook="slow_forward_in_workers", hook_env=slow)
    read = []  # the job's output, read as it comes so that a full pipe cannot stall the job
    reader = threading.Thread(target=lambda: read.append(job.stdout.read()), daemon=True)
    reader.start()
    nodes_seen = _watch(lambda: job.poll() is not None, lambda: len(fake_cluster.worker_nodes()), timeout_s=600)
    reader.join(timeout=60)
    output = "".join(read)
    assert job.returncode == 0, output[-3000:]
    print(f"worker nodes alive during the job: {nodes_seen}")
    print("\n".join(line for line in output.splitlines() if line.startswith("pipefleet:")))
    # The head has no GPU: the job says it waits for the autoscaler instead of waiting in silence.
    assert "pipefleet: waiting for the autoscaler: each actor asks for 1 GPU(s) but the cluster has 0" in output
    assert max(nodes_seen) >= 2, nodes_seen  # the autoscaler added nodes beyond the first
    actors = _manifest(tmp_path)["this_run"]["per_actor_rows"]
    print(f"rows per actor: {actors}")
    assert len(actors) >= 2, actors  # and the pool grew onto them
    ids = pq.read_table(tmp_path / "out", columns=["doc_id"])["doc_id"].to_pylist()
    assert len(ids) == len(set(ids)) == rows  # every row once
    # Idle for idle_timeout_minutes after the job, the worker nodes are stopped.
    _watch(lambda: not fake_cluster.worker_nodes(), lambda: None, timeout_s=120)
    assert not fake_cluster.worker_nodes()


ROUTE = "/two"
TIMEOUT_S = 10


def _endpoint_spec(tmp_path: Path, model: str) -> Path:
    spec = {
        "task": "text-classification",
        "model": model,
        "device": "cpu",
        "batch_size": 8,
        "serve": {
            "route": ROUTE,
            "num_cpus": 0.5,
            "num_gpus": 1,  # logical GPUs: each replica needs a worker node of its own; the model runs on CPU
            "max_batch_size": 8,
            "batch_wait_timeout_s": 0.05,
            "request_timeout_s": TIMEOUT_S,
            # Short delays, so that the replicas follow the load within the test.
            "autoscaling": {
                "min_replicas": 1,
                "max_replicas": 3,
                "target_ongoing_requests": 2,
                "upscale_delay_s": 1,
                "downscale_delay_s": 5,
            },
        },
    }
    path = tmp_path / "serve.yaml"
    path.write_text(json.dumps(spec))
    return path


def _replica_nodes(cluster: FakeCluster) -> list[int]:
    """For each live replica process of the route, the raylet (node) that started it."""
    marker = replica_marker(APP_NAME, ROUTE)
    return [
        process.info["ppid"]
        for process in psutil.process_iter(["cmdline", "ppid"])
        if marker in " ".join(process.info["cmdline"] or [])
    ]


def test_the_endpoint_adds_replicas_on_new_nodes_under_load_and_removes_them_after(fake_cluster, tiny_model, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    spec = _endpoint_spec(tmp_path, tiny_model("text-classification"))
    # The head alone answers HTTP: every node of this cluster shares 127.0.0.1, so one port holds one ingress.
    command = [sys.executable, "-m", "pipefleet_cli", "serve", str(spec), "--port", str(port)]
    command += ["--proxy-location", "HeadOnly"]
    with log.open("w") as out:
        endpoint = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**fake_cluster.env, "RAY_ADDRESS": fake_cluster.address},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "pipefleet: serving" not in log.read_text():
            assert endpoint.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        # min_replicas 1 on a cluster with no GPU: it said what it waited for while the first node came.
        assert "pipefleet: waiting for the autoscaler: the replicas need 1 GPUs" in log.read_text()
        assert len(_replica_nodes(fake_cluster)) == 1 and len(fake_cluster.worker_nodes()) == 1

        seen: list[tuple[int, int]] = []  # (nodes holding a replica, worker nodes), polled under load
        replies = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any(placed >= 2 and nodes >= 2 for placed, nodes in seen):
            # Load in rounds of 5 s, looking at the replicas and nodes between them, until the replicas spread.
            replies += run_load(f"http://127.0.0.1:{port}{ROUTE}", numbered_request, concurrency=16, duration_s=5)
            seen.append((len(set(_replica_nodes(fake_cluster))), len(fake_cluster.worker_nodes())))
        print(f"(nodes holding a replica, worker nodes) under load: {seen}")
        assert any(placed >= 2 and nodes >= 2 for placed, nodes in seen), seen
        failed = [r for r in replies if r.status != 200]
        assert not [r for r in failed if not (r.status == 503 and r.retry_after)], failed[:3]
        output = log.read_text()
        assert f"pipefleet: waiting for the autoscaler: {ROUTE}: " in output, output[-3000:]

        # Load over: after downscale_delay_s the replicas go back to min_replicas, and then the idle nodes go.
        _watch(lambda: len(_replica_nodes(fake_cluster)) == 1, lambda: None, timeout_s=180)
        assert len(_replica_nodes(fake_cluster)) == 1
        _watch(lambda: len(fake_cluster.worker_nodes()) == 1, lambda: None, timeout_s=180)
        assert len(fake_cluster.worker_nodes()) == 1
        with httpx.Client(timeout=TIMEOUT_S) as client:
            assert client.post(f"http://127.0.0.1:{port}{ROUTE}", json={"inputs": "still here"}).status_code == 200
        endpoint.send_signal(signal.SIGTERM)
        assert endpoint.wait(timeout=120) == 0, log.read_text()[-3000:]
        print("\n".join(line for line in log.read_text().splitlines() if line.startswith("pipefleet:")))
    finally:
        if endpoint.poll() is None:
            os.killpg(endpoint.pid, signal.SIGKILL)
            endpoint.wait()
