"""CPU speed-ups beyond bfloat16, each with its accuracy: all-MiniLM-L6-v2 embeddings in one process.

    .venv/bin/python bench/cpu_modes.py [--rows 1500] [--threads 2]

The sorted raw loop of bench/batch.py (tokenise, forward, mean-pool, rows sorted by token length,
batches of 64) over the same mixed-length corpus, with the model as loaded (float32, SDPA
attention, transformers' default), and with: bfloat16 autocast; torch.compile, in float32 and
under autocast (timed after a warm-up pass over the same texts, so compilation is not counted in
rows/s; the warm-up's seconds, what each actor would add to its start, are reported beside it);
torch.ao dynamic int8 on every Linear layer; dynamic int8 on the feed-forward Linear layers only
(attention kept in float32); oneDNN's bfloat16 fast math for float32 matmuls
(``torch.backends.mkldnn.matmul.fp32_precision``, the CPU's counterpart of TF32 on GPUs: float32
weights and activations, bfloat16 inside the matmul); and ONNX Runtime, the model exported with
torch.onnx, in float32 and with its dynamic int8 quantisation
(``onnxruntime.quantization.quantize_dynamic``), on the same sorted batches and pooling. Each
mode's lowest cosine against float32 says what it costs. Prints a table, writes
bench/results/cpu_modes.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.batch import lowest_cosine, raw_loop  # noqa: E402
from bench.report import machine, print_table, save  # noqa: E402
from examples.make_corpus import make_corpus  # noqa: E402

FLOAT32 = "float32 (SDPA attention, the default)"


def int8(only_feed_forward: bool) -> Any:
    """A ``prepare`` for raw_loop: torch.ao dynamic int8 quantisation of the Linear layers."""

    def prepare(model: Any) -> Any:
        import torch

        if not only_feed_forward:
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        # Every Linear outside attention: BERT's feed-forward layers (encoder.layer.N.intermediate.dense and
        # encoder.layer.N.output.dense) and the pooler, which mean pooling does not use.
        names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".attention." not in n}
        return torch.ao.quantization.quantize_dynamic(model, names, dtype=torch.qint8)

    return prepare


def fast_math(model: Any) -> Any:
    """A ``prepare`` for raw_loop: oneDNN may compute float32 matmuls in bfloat16 (main() turns it off after)."""
    import torch

    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    return model


def compiled(texts: list[str], autocast: bool) -> Any:
    """A ``prepare`` for raw_loop: torch.compile, warmed up on ``texts`` so the timing excludes compiling
    (which an actor would pay at its start: its seconds are left in ``prepare.warm_up_s``)."""

    def prepare(model: Any) -> Any:
        import time

        import torch

        model.forward = torch.compile(model.forward, dynamic=True)
        started = time.perf_counter()
        raw_loop(texts, sort_by_length=True, autocast=autocast, prepare=lambda _: model)
        prepare.warm_up_s = time.perf_counter() - started
        return model

    return prepare


def onnx_runtime(threads: int, quantised: bool) -> Any:
    """A ``prepare`` for raw_loop: the model exported with torch.onnx and run by ONNX Runtime, in float32 or
    with its dynamic int8 quantisation (export and quantisation before the clock starts)."""

    def prepare(model: Any) -> Any:
        import tempfile

        import onnxruntime
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        names = ("input_ids", "attention_mask", "token_type_ids")
        example = {name: torch.ones((2, 8), dtype=torch.long) for name in names}
        folder = tempfile.mkdtemp(prefix="pipefleet-onnx-")
        path = f"{folder}/model.onnx"
        dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
        torch.onnx.export(model, (), path, kwargs=example, input_names=list(names), dynamic_shapes=dynamic, dynamo=True)
        if quantised:
            quantize_dynamic(path, f"{folder}/model.int8.onnx", weight_type=QuantType.QInt8)
            path = f"{folder}/model.int8.onnx"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        class OnnxModel:
            """What raw_loop calls: the model's config, and its last hidden states for a tokenised batch."""

            config = model.config

            def __call__(self, **encoded: Any) -> tuple[Any]:
                feeds = {name: encoded[name].numpy() for name in names}
                return (torch.from_numpy(session.run(None, feeds)[0]),)

        return OnnxModel()

    return prepare


def main() -> None:
    import torch

    from pipefleet.precision import cpu_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = make_corpus(args.rows, seed=42)["text"].to_pylist()
    elapsed, reference = raw_loop(texts, sort_by_length=True)
    modes: dict[str, dict[str, float]] = {FLOAT32: {"rows_per_s": len(texts) / elapsed}}
    variants: dict[str, dict[str, Any]] = {}
    if cpu_bf16():
        variants["bfloat16 autocast"] = {"autocast": True}
        variants["bfloat16 autocast + torch.compile (after warm-up)"] = {
            "autocast": True,
            "prepare": compiled(texts, autocast=True),
        }
    variants |= {
        "oneDNN bfloat16 fast math for float32 matmuls": {"prepare": fast_math},
        "torch.compile (after warm-up)": {"prepare": compiled(texts, autocast=False)},
        "int8 dynamic, every Linear": {"prepare": int8(only_feed_forward=False)},
        "int8 dynamic, feed-forward Linears only": {"prepare": int8(only_feed_forward=True)},
        "ONNX Runtime, float32": {"prepare": onnx_runtime(args.threads, quantised=False)},
        "ONNX Runtime, dynamic int8": {"prepare": onnx_runtime(args.threads, quantised=True)},
    }
    for name, settings in variants.items():
        elapsed, vectors = raw_loop(texts, sort_by_length=True, **settings)
        torch.backends.mkldnn.matmul.fp32_precision = "none"  # fast_math's setting is process-wide
        modes[name] = {"rows_per_s": len(texts) / elapsed, "lowest_cosine": lowest_cosine(vectors, reference)}
        if hasattr(settings.get("prepare"), "warm_up_s"):
            modes[name]["warm_up_s"] = settings["prepare"].warm_up_s
        print(f"  {name}: {modes[name]}", flush=True)
    base = modes[FLOAT32]["rows_per_s"]
    print_table(
        f"MiniLM embeddings of {len(texts)} mixed-length texts in one process, {args.threads} threads",
        ["mode", "rows/s", "x float32", "lowest cosine vs float32", "warm-up s"],
        [
            [
                name,
                m["rows_per_s"],
                m["rows_per_s"] / base,
                f"{m.get('lowest_cosine', 1.0):.5f}",
                m.get("warm_up_s", "-"),
            ]
            for name, m in modes.items()
        ],
    )
    path = save("cpu_modes", {"machine": machine(), "threads": args.threads, "rows": len(texts), "modes": modes})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
