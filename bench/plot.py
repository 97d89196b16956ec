"""Plots of the benchmark results for the README: bench/results/batch.png and serve.png.

.venv/bin/python bench/plot.py [batch] [serve]       # after bench/batch.py and bench/serve.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import RESULTS  # noqa: E402


def plot_batch(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    sizes = sorted(results["sizes"], key=int)
    rows = max(len(results["sizes"][size]["rows_per_s"]) for size in sizes)
    # Wide and tall enough for the contenders' long names beside their bars.
    figure, axes = plt.subplots(1, len(sizes), figsize=(12 * len(sizes), 1.5 + 0.3 * rows), squeeze=False)
    for axis, size in zip(axes[0], sizes):
        rates = results["sizes"][size]["rows_per_s"]
        names = list(rates)
        axis.barh(names[::-1], [rates[n] for n in names][::-1], color="#4c72b0")
        for y, name in enumerate(names[::-1]):
            axis.text(rates[name], y, f" {rates[name]:,.0f}", va="center")
        axis.set_xlabel("rows/s (higher is better)")
        axis.set_title(f"MiniLM embeddings, {int(size):,} texts, {results['threads']} CPU threads")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")


def plot_serve(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for axis, (size, key, unit) in zip(axes, (("1", "req_per_s", "requests/s"), ("32", "rows_per_s", "rows/s"))):
        for name, server in results["servers"].items():
            levels = sorted(server[size], key=int)
            style = "-" if name.startswith("pipefleet") else "--"
            axis.plot([int(c) for c in levels], [server[size][c][key] for c in levels], style, marker="o", label=name)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel(f"{unit} (higher is better)")
        axis.set_title(f"{size} sentence{'s' if size != '1' else ''} per request")
    axes[0].legend(fontsize=8)
    cores, rounds = results["machine"]["cores"], results["rounds"]
    figure.suptitle(
        f"all-MiniLM-L6-v2 over HTTP on {cores} cores, median of {rounds} round{'s' if rounds != 1 else ''}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    plots = {"batch": plot_batch, "serve": plot_serve}
    wanted = sys.argv[1:] or list(plots)  # e.g. `bench/plot.py serve` after bench/serve.py alone
    for name, plot in ((name, plots[name]) for name in wanted):
        source = RESULTS / f"{name}.json"
        if source.exists():
            plot(json.loads(source.read_text()), RESULTS / f"{name}.png")
            print(f"written: {RESULTS / f'{name}.png'}")
        else:
            print(f"skipped {name}: run bench/{name}.py first")


if __name__ == "__main__":
    main()
