"""Lanes, paired: one forward pass at a time on every thread against one pass per thread at once.

    .venv/bin/python bench/lanes.py [--rows 3000] [--rounds 4] [--jobs]

Without Ray: all-MiniLM-L6-v2 over the mixed-length corpus in blocks of 1,024 rows (the job's
calls), each block's rows sorted by token length and cut as the engine cuts them (64 rows, 2048
padded tokens), run by one loop on 2 torch threads, by 2 threads of one torch thread each taking the
next batch of the block (lanes), shortest batches first and longest first (the engine's order), and
by 2 processes of one thread each taking every other batch (a GIL each, as two actors have, though
actors would take whole blocks), in turn, in float32 and under bfloat16 autocast where the CPU has
it. With ``--jobs``: bench/batch.py's job in README command 1's layout (one actor of 2 CPUs) with its
default two lanes, then with ``lanes: 1``, as whole processes in turn. Prints each round.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.batch import MAX_TOKENS, corpus_file, job, minilm  # noqa: E402
from examples.make_corpus import make_corpus  # noqa: E402
from pipefleet.engine import CPU_BATCH_TOKENS, batch_end  # noqa: E402

BLOCK = 1024  # rows per call, as the job's compute.rows_per_call


def loaded(texts: list[str], autocast: bool) -> tuple[list[list[list[int]]], Callable[[list[int]], None]]:
    """The engine's batches of ``texts`` (row numbers), block by block, each block's sorted by token
    length (shortest first), and a forward pass over one batch."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm())
    model = AutoModel.from_pretrained(minilm()).eval()
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
    blocks = []
    for first in range(0, len(texts), BLOCK):
        order = sorted(range(first, min(first + BLOCK, len(texts))), key=lambda i: lengths[i])
        cuts = [0]
        while cuts[-1] < len(order):
            cuts.append(batch_end([lengths[i] for i in order], cuts[-1], 64, CPU_BATCH_TOKENS))
        blocks.append([order[start:end] for start, end in zip(cuts[:-1], cuts[1:])])

    def forward(rows: list[int]) -> None:
        encoded = tokenizer([texts[i] for i in rows], padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(**encoded)

    return blocks, forward


def every_other_batch(texts: list[str], autocast: bool, first: int, go: Any, seconds: Any) -> None:
    """In a process of its own, on one torch thread: every other batch, from ``first``, once ``go`` is set."""
    import torch

    torch.set_num_threads(1)
    blocks, forward = loaded(texts, autocast)
    forward(blocks[0][0])  # warm-up
    go.wait()
    started = time.perf_counter()
    for rows in [rows for batches in blocks for rows in batches][first::2]:
        forward(rows)
    seconds.put(time.perf_counter() - started)


def in_process(texts: list[str], rounds: int, autocast: bool) -> None:
    import multiprocessing

    import torch

    blocks, forward = loaded(texts, autocast)

    def one_loop() -> float:
        torch.set_num_threads(2)
        started = time.perf_counter()
        for batches in blocks:
            for rows in batches:
                forward(rows)
        return time.perf_counter() - started

    def two_lanes(longest_first: bool) -> float:
        """Each block's batches shared by two lanes; the next block once both are done, as in an actor."""
        torch.set_num_threads(1)

        def lane(todo: queue.Queue) -> None:
            while True:
                try:
                    rows = todo.get_nowait()
                except queue.Empty:
                    return
                forward(rows)

        started = time.perf_counter()
        for batches in blocks:
            todo: queue.Queue = queue.Queue()
            for rows in reversed(batches) if longest_first else batches:
                todo.put(rows)
            lanes = [threading.Thread(target=lane, args=(todo,)) for _ in range(2)]
            for thread in lanes:
                thread.start()
            for thread in lanes:
                thread.join()
        return time.perf_counter() - started

    def two_processes() -> float:
        """Two actors of one thread, without Ray: a GIL each, every other batch each."""
        context = multiprocessing.get_context("spawn")
        go, seconds = context.Event(), context.Queue()
        workers = [
            context.Process(target=every_other_batch, args=(texts, autocast, first, go, seconds)) for first in (0, 1)
        ]
        for worker in workers:
            worker.start()
        time.sleep(30)  # both load the model (and warm up) before the clock starts
        go.set()
        slowest = max(seconds.get(), seconds.get())
        for worker in workers:
            worker.join()
        return slowest

    one_loop()  # warm-up
    mode = "bfloat16 autocast" if autocast else "float32"
    for round_ in range(rounds):
        loop = one_loop()
        # The two orders alternate from round to round, so that the machine's drift favours neither.
        if round_ % 2:
            longest, shortest = two_lanes(longest_first=True), two_lanes(longest_first=False)
        else:
            shortest, longest = two_lanes(longest_first=False), two_lanes(longest_first=True)
        processes = two_processes()
        print(
            f"{mode} round {round_}: one loop of 2 threads {len(texts) / loop:.1f} rows/s, "
            f"2 lanes of 1 thread, longest first {len(texts) / longest:.1f} ({loop / longest:.2f}x), "
            f"shortest first {len(texts) / shortest:.1f} ({loop / shortest:.2f}x; longest first "
            f"{shortest / longest:.2f}x as fast), "
            f"2 processes of 1 thread {len(texts) / processes:.1f} ({loop / processes:.2f}x)",
            flush=True,
        )


def jobs(rows: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pipefleet-lanes-"))
    corpus = corpus_file(rows, workdir)
    for round_ in range(rounds):
        walls = {}
        for name, lanes in (("2 lanes (default)", None), ("lanes: 1", 1)):
            (workdir / str(round_)).mkdir(exist_ok=True)  # a fresh output each time: the same one would resume
            result = job(corpus, 1, 2, workdir / str(round_), lanes)
            walls[name] = result["wall_s"]
            print(
                f"round {round_} {name}: {result['wall_s']:.1f} s, first batch after {result['startup_s']:.1f} s, "
                f"{result['steady_rows_per_s']} rows/s from it",
                flush=True,
            )
        print(f"round {round_}: wall ratio 2 lanes / 1 lane {walls['2 lanes (default)'] / walls['lanes: 1']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--jobs", action="store_true", help="the job as whole processes instead of one process")
    args = parser.parse_args()
    if args.jobs:
        jobs(args.rows, args.rounds)
        return
    from pipefleet.precision import cpu_bf16

    texts = make_corpus(args.rows, seed=42)["text"].to_pylist()
    in_process(texts, args.rounds, autocast=False)
    if cpu_bf16():
        in_process(texts, args.rounds, autocast=True)


if __name__ == "__main__":
    main()
