"""The endpoint on a Ray cluster of several nodes on this machine (``ray.cluster_utils.Cluster``: a head
with one CPU and no GPU, two worker nodes with a logical GPU each): replicas placed by their resources,
a worker node lost under load, and the replica count restored when a node comes back."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.load import closed_before_answering, numbered_request, run_load
from tests.serve.test_serve import _route
from tests.support import free_port, replica_marker

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
APP = "pipefleet-nodes"
ROUTE = "/two"
TIMEOUT_S = 10
MAX_ONGOING = 32  # per replica: at most this many requests are in flight on the node that is lost
CONCURRENCY = 32

# Deploys as `pipefleet serve` does (HAProxy, one application per route) from a driver of its own,
# since this test process may already hold the tiers' local Ray; the applications outlive it. Proxies
# on the head only: every node of this cluster shares 127.0.0.1, so one port can hold one ingress.
DRIVER = """
import json, sys
import ray
from ray import serve
from serve.app import applications, fast_path_env, load_specs
from tests.support import TEST_SERVE_ENV

ray.init(address=sys.argv[1], namespace="serve")
serve.start(
    proxy_location="HeadOnly",
    http_options={"host": "127.0.0.1", "port": int(sys.argv[2]), "request_timeout_s": 60},
    controller_options={"runtime_env": {"env_vars": {**fast_path_env("haproxy"), **TEST_SERVE_ENV}}},
)
serve.run_many(applications(load_specs([json.loads(sys.argv[3])]), app_name=sys.argv[4]))
"""


@pytest.fixture
def cluster_endpoint(tiny_model):
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        gpu_nodes = [made.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]
        made.wait_for_nodes()
        yield from _deployed(made, gpu_nodes, tiny_model)
    finally:
        made.shutdown()


def _deployed(made, gpu_nodes, tiny_model):
    spec = _route(
        "text-classification",
        tiny_model("text-classification"),
        ROUTE,
        num_cpus=0.5,
        num_gpus=1,  # logical GPUs: the replicas must land on the GPU nodes, one each; the model runs on CPU
        max_ongoing_requests=MAX_ONGOING,
        request_timeout_s=TIMEOUT_S,
        autoscaling={"min_replicas": 2, "max_replicas": 2},
    )
    port = free_port()
    deployed = subprocess.run(
        [sys.executable, "-c", DRIVER, made.address, str(port), json.dumps(spec), APP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    yield made, gpu_nodes, f"http://127.0.0.1:{port}"


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _replica_nodes(nodes) -> list[int]:
    """For each live replica process of the route, the index in ``nodes`` of the node whose raylet started it
    (-1 for a replica under none of them, so that a leftover never matches)."""
    raylets = {_raylet_pid(node): index for index, node in enumerate(nodes)}
    marker = replica_marker(APP, ROUTE)
    found = []
    for process in psutil.process_iter(["cmdline", "ppid"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(raylets.get(process.info["ppid"], -1))
    return sorted(found)


def _answers(base: str) -> bool:
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as client:
        return client.post(ROUTE, json={"inputs": "still fine"}).status_code == 200


def test_a_node_lost_under_load_costs_only_its_requests_in_flight_and_the_replica_comes_back(cluster_endpoint):
    made, gpu_nodes, base = cluster_endpoint
    # Placed by resources: one replica on each GPU node, none on the head (which has no GPU).
    assert _replica_nodes([made.head_node, *gpu_nodes]) == [1, 2]
    answered = 0  # written on the load's event loop only
    gone_after: list[int] = []  # how many replies had come when the node was gone
    problems: list[BaseException] = []

    def remove_node() -> None:
        # Every process of the node, as a reclaimed node vanishes: its raylet and workers killed in
        # one pass (left alone, a worker would notice its raylet gone only later, and answer
        # meanwhile), then the node taken out of the cluster.
        try:
            raylet = psutil.Process(_raylet_pid(gpu_nodes[0]))
            for process in [*raylet.children(recursive=True), raylet]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            gone_after.append(answered)
            made.remove_node(gpu_nodes[0], allow_graceful=False)
        except BaseException as exc:  # noqa: BLE001 - asserted on the test's own thread
            problems.append(exc)

    remover = threading.Thread(target=remove_node)  # off the load's event loop, which it would stall

    def lose_a_node_midway(reply) -> None:
        nonlocal answered
        answered += 1
        if answered == 1000:
            remover.start()

    replies = run_load(
        f"{base}{ROUTE}",
        numbered_request,
        concurrency=CONCURRENCY,
        requests=5000,
        timeout_s=TIMEOUT_S + 5,
        on_reply=lose_a_node_midway,
    )
    remover.join(timeout=60)
    assert not problems, problems
    assert len(replies) == 5000 and gone_after and gone_after[0] < 4000, gone_after  # lost under load
    print(f"node gone after {gone_after[0]} replies")
    assert max(r.latency_s for r in replies) < TIMEOUT_S + 2, "a request hung past request_timeout_s"
    failed = [r for r in replies if r.status != 200]
    print(f"node lost under load: {len(failed)} of {len(replies)} failed: {[(r.status, r.problem) for r in failed]}")
    # As for a killed replica: only the lost node's requests in flight may fail, as a 503 with
    # Retry-After or a connection closed before a whole answer; each succeeds when retried.
    assert len(failed) <= MAX_ONGOING, (len(failed), {r.status for r in failed})
    unexpected = [r for r in failed if not ((r.status == 503 and r.retry_after) or closed_before_answering(r))]
    assert not unexpected, unexpected[:3]
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as client:
        for reply in failed:
            assert client.post(ROUTE, json=numbered_request(reply.index)).status_code == 200
    assert _answers(base)  # the other replica keeps answering while no node can take a second one

    comeback = made.add_node(num_cpus=2, num_gpus=1)  # a node is available again: Serve places the replica there
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _replica_nodes([gpu_nodes[1], comeback]) != [0, 1]:
        time.sleep(1)
    assert _replica_nodes([gpu_nodes[1], comeback]) == [0, 1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _answers(base):
        time.sleep(1)
    assert _answers(base)
