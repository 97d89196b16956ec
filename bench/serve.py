"""Online latency and throughput: all-MiniLM-L6-v2 embeddings behind a local pipefleet endpoint.

    .venv/bin/python bench/serve.py [--seconds 15] [--gpu]

One application with two routes on one replica each: dynamic batching (max_batch_size 32) and
none (max_batch_size 1). A separate process (python -m serve.load) drives each route closed-loop
at concurrency 1, 8, 32 and 64 for a fixed time per level. Then the CPU time each process
(proxy, gateway, model replica, the rest of Ray, the load generator) spends per request, and the
in-process handler call (with the replica's threads) against the HTTP call at concurrency 1.
Prints tables and writes bench/results/serve.json. ``--gpu`` puts both replicas on one GPU (half
each, float16) and writes bench/results/serve-gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.batch import minilm  # noqa: E402
from bench.report import machine, print_table, save  # noqa: E402

LEVELS = (1, 8, 32, 64)
BATCHED = 32  # the batched route's max_batch_size
# Where a request's CPU time goes, by process: Serve's HTTP proxy, pipefleet's gateway
# deployment, the model replica, the rest of Ray, and the load generator itself.
ROLES = {"proxy": "ProxyActor", "gateway": ":Gateway", "model replica": ":model-"}
TEXT = "The train to Berlin delighted the visiting students thanks to friendly and patient staff."


def spec(route: str, max_batch_size: int, gpu: bool = False) -> dict:
    return {
        "task": "feature-extraction",
        "model": minilm(),
        "device": "auto" if gpu else "cpu",
        **({"dtype": "float16"} if gpu else {}),
        "batch_size": 32,
        "serve": {
            "route": route,
            "max_batch_size": max_batch_size,
            "batch_wait_timeout_s": 0.005,
            "max_ongoing_requests": 64,
            "max_queued_requests": 256,
            "num_cpus": 1,
            "num_gpus": 0.5 if gpu else 0,  # the two routes share one GPU
        },
    }


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each role's processes (Ray's processes are named ray::...)."""
    import psutil

    used = dict.fromkeys([*ROLES, "rest of Ray"], 0.0)
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        command = " ".join(process.info["cmdline"] or [])
        times = process.info["cpu_times"]
        if times is None or ("ray" not in command and "raylet" not in command and "gcs_server" not in command):
            continue
        role = next((name for name, mark in ROLES.items() if mark in command), "rest of Ray")
        used[role] += times.user + times.system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["load generator"] = children.ru_utime + children.ru_stime
    return used


def drive(url: str, concurrency: int, seconds: float) -> dict:
    """One load level from a separate process; its summary, with CPU ms per request by role."""
    command = [sys.executable, "-m", "serve.load", url, "--inputs", TEXT, "--concurrency", str(concurrency)]
    command += ["--duration-s", str(seconds), "--warmup", str(2 * concurrency)]
    before = cpu_seconds()
    output = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout
    after = cpu_seconds()
    summary = json.loads(output.strip().splitlines()[-1])
    # The warm-up requests are not in the summary's count, but their CPU is in the totals.
    sent = summary["requests"] + 2 * concurrency
    summary["cpu_ms_per_request"] = {role: 1000 * (after[role] - before[role]) / sent for role in after}
    summary["rows_per_forward"] = rows_per_forward(url)
    return summary


def rows_per_forward(url: str) -> float:
    """Mean rows in the route's last 50 forward passes, from the gateway's /-/stats."""
    import httpx

    base, route = url.rsplit("/", 1)
    recent = httpx.get(f"{base}/-/stats", timeout=30).json()["/" + route]["recent_batch_rows"]
    return statistics.mean(recent)


def in_process_ms_per_row(gpu: bool, rows: int, calls: int) -> float:
    """p50 of the handler's own call on ``rows`` inputs, per row: no Ray, no HTTP, the replica's threads."""
    import torch

    from pipefleet.registry import handler_class
    from pipefleet.spec import parse_spec

    parsed = parse_spec(spec("/x", rows, gpu))
    torch.set_num_threads(int(parsed.serve.num_cpus))
    handler = handler_class(parsed.task)(parsed)
    handler.setup()
    for _ in range(20):
        handler.predict([TEXT] * rows)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        handler.predict([TEXT] * rows)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times) / rows


def main() -> None:
    import ray
    from ray import serve

    from serve.app import build_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="load time per level")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--gpu", action="store_true", help="replicas on the GPU (half each)")
    args = parser.parse_args()
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("bench/serve.py --gpu needs a CUDA GPU; this process sees none")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    print(json.dumps(machine()), flush=True)
    in_process = in_process_ms_per_row(args.gpu, rows=1, calls=300)
    # What a full batch costs per row: the most dynamic batching could save per request.
    in_process_full_batch = in_process_ms_per_row(args.gpu, rows=BATCHED, calls=20)

    # Two replicas of 1 CPU each plus the gateway: one logical CPU more than a 2-core laptop has.
    ray.init(num_cpus=(os.cpu_count() or 2) + 1, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    specs = [spec("/batched", BATCHED, args.gpu), spec("/unbatched", 1, args.gpu)]
    serve.run(build_app({"specs": specs}), name="bench", route_prefix="/")
    base = f"http://127.0.0.1:{args.port}"
    results: dict[str, dict[int, dict]] = {"batched": {}, "unbatched": {}}
    try:
        for concurrency in LEVELS:
            for name in results:
                results[name][concurrency] = drive(f"{base}/{name}", concurrency, args.seconds)
                print(f"{name} c={concurrency}: {results[name][concurrency]}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()

    rows = []
    for concurrency in LEVELS:
        batched, unbatched = results["batched"][concurrency], results["unbatched"][concurrency]
        rows.append(
            [
                concurrency,
                batched["ok_per_s"],
                batched["p50_ms"],
                batched["p99_ms"],
                unbatched["ok_per_s"],
                unbatched["p50_ms"],
                unbatched["p99_ms"],
                batched["ok_per_s"] / unbatched["ok_per_s"],
                batched["rows_per_forward"],
            ]
        )
    print_table(
        f"MiniLM embeddings over HTTP, one replica, {args.seconds:.0f} s per level",
        [
            *["concurrency", "batched req/s", "p50 ms", "p99 ms"],
            *["max_batch_size 1 req/s", "p50 ms", "p99 ms", "x", "batched rows/forward"],
        ],
        rows,
    )
    roles = list(results["batched"][1]["cpu_ms_per_request"])
    print_table(
        f"CPU ms per request, by process (the machine has {os.cpu_count()} cores: {os.cpu_count()},000 CPU ms per s)",
        ["route", "concurrency", *roles],
        [
            [name, concurrency, *results[name][concurrency]["cpu_ms_per_request"].values()]
            for name in results
            for concurrency in (1, 32)
        ],
    )
    http_p50 = results["unbatched"][1]["p50_ms"]
    print_table(
        "One request at a time: what HTTP and Serve add",
        ["call", "p50 ms"],
        [
            ["handler.predict in-process, same threads as the replica", in_process],
            [f"the same, per row of a call with {BATCHED} inputs", in_process_full_batch],
            ["HTTP, max_batch_size 1", http_p50],
            ["HTTP, dynamic batching", results["batched"][1]["p50_ms"]],
            ["added by HTTP + Serve", http_p50 - in_process],
        ],
    )
    summary = {"machine": machine(), "seconds": args.seconds, "in_process_p50_ms": in_process}
    summary |= {"in_process_full_batch_ms_per_row": in_process_full_batch, **results}
    path = save("serve-gpu" if args.gpu else "serve", summary)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
