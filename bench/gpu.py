"""GPU throughput: the job against the raw model forward on one GPU, for text and for images.

    .venv/bin/python bench/gpu.py [--rows 20000] [--images 4096] [--dtype float16]

Needs a CUDA GPU. ``--device cpu --rows 300 --images 48 --batches 16,32`` runs the same code
small on a CPU, to check it where there is none (its numbers say nothing about a GPU).

  Text: all-MiniLM-L6-v2 embeddings of the mixed-length corpus of bench/batch.py.
    (b) the raw loop, rows sorted by token length, at each batch size: the best is the reference
    (c) a plain pipeline("feature-extraction", device=0) loop at that batch size
    (d) the pipefleet job, one actor with num_gpus 1, at that batch size
  Images: image classification with a ViT-base-sized model (random weights, built here) on PNGs.
    the raw forward of already-preprocessed batches, at each batch size: the reference
    the same loop decoding and preprocessing each batch first (what a plain script does)
    the pipefleet job (PNG bytes in Parquet, decoded in its CPU stage), at the best batch size

The goal: the job reaches 90% of the raw forward's rows/s at the best batch size. Prints tables
with the device name and writes bench/results/gpu.json.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.batch import minilm, pipeline_loop, raw_loop, run_job, vectors_of  # noqa: E402
from bench.report import machine, print_table, save  # noqa: E402
from examples.make_corpus import make_corpus  # noqa: E402

VIT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
TOP_K = 5  # the image-classification pipeline's default


def vit_base(folder: Path) -> Path:
    """A ViT-base-sized image classifier with random weights and 1,000 labels (speed only)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    labels = {index: f"class_{index}" for index in range(1000)}
    config = ViTConfig(
        **VIT_BASE, image_size=224, patch_size=16, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def pngs(count: int) -> list[bytes]:
    """Photos-sized PNGs of coloured shapes, all different (decoding them is part of the work)."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(0)
    images = []
    for _ in range(count):
        image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
        pen = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.randrange(280), rng.randrange(200)
            pen.ellipse(
                (x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 120)),
                fill=tuple(rng.randrange(256) for _ in range(3)),
            )
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def image_raw_loop(images: list[bytes], model: Path, batch: int, device: str, dtype: str, preprocess: bool) -> float:
    """Seconds to classify every image (top 5 per image): forward only, or decoding and preprocessing each batch too."""
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    processor = AutoImageProcessor.from_pretrained(model)
    network = AutoModelForImageClassification.from_pretrained(model, dtype=dtype).to(device).eval()

    def pixels(chunk: list[bytes]) -> Any:
        decoded = [Image.open(io.BytesIO(data)).convert("RGB") for data in chunk]
        return processor(decoded, return_tensors="pt")["pixel_values"]

    ready = None if preprocess else pixels(images)
    with torch.inference_mode():
        network(pixel_values=pixels(images[:batch]).to(device, network.dtype))  # warm-up: kernels, allocator
        started = time.perf_counter()
        for start in range(0, len(images), batch):
            chunk = pixels(images[start : start + batch]) if ready is None else ready[start : start + batch]
            logits = network(pixel_values=chunk.to(device, network.dtype)).logits
            logits.float().softmax(-1).topk(TOP_K).indices.cpu()
    return time.perf_counter() - started


def text_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    corpus = make_corpus(args.rows, seed=42)
    texts, ids = corpus["text"].to_pylist(), corpus["doc_id"].to_pylist()
    raw_loop(texts[: min(len(texts), 512)], True, 64, args.device, args.dtype)  # warm-up: kernels, allocator
    raw = {}
    for batch in args.batches:
        elapsed, vectors = raw_loop(texts, True, batch, args.device, args.dtype)  # the same vectors at any batch
        raw[batch] = args.rows / elapsed
        print(f"text raw loop, batch {batch}: {raw[batch]:.1f} rows/s", flush=True)
    best = max(raw, key=raw.get)
    plain = args.rows / pipeline_loop(texts, best, args.device, args.dtype)
    print(f"text pipeline() loop, batch {best}: {plain:.1f} rows/s", flush=True)
    pq.write_table(corpus, workdir / "corpus.parquet")
    spec = {
        "task": "feature-extraction",
        "model": minilm(),
        "device": "auto",
        "dtype": args.dtype,
        "batch_size": best,
        "input": {"path": str(workdir / "corpus.parquet"), "id_column": "doc_id"},
        "output": {"path": str(workdir / "text-out"), "column": "embedding"},
        "compute": {**args.compute, "concurrency": 1, "rows_per_call": 4 * best},
    }
    job = run_job(spec, workdir / "text-spec.json")
    agreement = float(np.min(np.sum(vectors_of(workdir / "text-out", ids) * vectors, axis=1)))
    print(f"text job: {job}; lowest cosine against the raw loop {agreement:.4f}", flush=True)
    return {"raw_rows_per_s": raw, "best_batch": best, "pipeline_rows_per_s": plain, "job": job, "cosine": agreement}


def image_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    model = vit_base(workdir / "vit-base")
    images = pngs(args.images)
    forward, preprocessed = {}, {}
    for batch in args.batches:
        forward[batch] = args.images / image_raw_loop(images, model, batch, args.device, args.dtype, preprocess=False)
        preprocessed[batch] = args.images / image_raw_loop(
            images, model, batch, args.device, args.dtype, preprocess=True
        )
        print(f"image raw forward, batch {batch}: {forward[batch]:.1f} rows/s; with decoding {preprocessed[batch]:.1f}")
    best = max(forward, key=forward.get)
    table = pa.table({"id": list(range(len(images))), "image": pa.array(images, pa.binary())})
    pq.write_table(table, workdir / "images.parquet")
    spec = {
        "task": "image-classification",
        "model": str(model),
        "device": "auto",
        "dtype": args.dtype,
        "batch_size": best,
        "input": {"path": str(workdir / "images.parquet"), "columns": {"image": "image"}, "id_column": "id"},
        "output": {"path": str(workdir / "image-out"), "column": "labels"},
        "compute": {**args.compute, "concurrency": 1, "rows_per_call": 4 * best},
    }
    job = run_job(spec, workdir / "image-spec.json")
    print(f"image job: {job}", flush=True)
    return {"forward_rows_per_s": forward, "with_decoding_rows_per_s": preprocessed, "best_batch": best, "job": job}


def report(text: dict[str, Any], images: dict[str, Any], rows: int, count: int, where: str) -> None:
    raw_best = text["raw_rows_per_s"][text["best_batch"]]
    job = text["job"]
    print_table(
        f"MiniLM embeddings of {rows} mixed-length texts on {where} (best batch {text['best_batch']})",
        ["contender", "rows/s", "x raw loop"],
        [
            *[[f"(b) raw loop, sorted, batch {b}", r, r / raw_best] for b, r in text["raw_rows_per_s"].items()],
            ["(c) pipeline() loop", text["pipeline_rows_per_s"], text["pipeline_rows_per_s"] / raw_best],
            ["(d) job, end to end", rows / job["wall_s"], rows / job["wall_s"] / raw_best],
            ["(d) job, from its first batch", job["steady_rows_per_s"], job["steady_rows_per_s"] / raw_best],
        ],
    )
    forward_best = images["forward_rows_per_s"][images["best_batch"]]
    job = images["job"]
    print_table(
        f"ViT-base image classification of {count} PNGs on {where} (best batch {images['best_batch']})",
        ["contender", "rows/s", "x raw forward"],
        [
            *[[f"raw forward, batch {b}", r, r / forward_best] for b, r in images["forward_rows_per_s"].items()],
            *[
                [f"decode + preprocess + forward, batch {b}", r, r / forward_best]
                for b, r in images["with_decoding_rows_per_s"].items()
            ],
            ["job, end to end", count / job["wall_s"], count / job["wall_s"] / forward_best],
            ["job, from its first batch", job["steady_rows_per_s"], job["steady_rows_per_s"] / forward_best],
        ],
    )


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batches", default="64,128,256,512", help="batch sizes to try, comma-separated")
    parser.add_argument("--dtype", default=None, help="float16 on a GPU, float32 on a CPU unless given")
    parser.add_argument("--cpus-per-actor", type=int, default=4, help="CPU threads of the job's actor")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA GPU (this process sees none); --device cpu runs it small to check it")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    args.compute = {"num_cpus": args.cpus_per_actor, "num_gpus": 1 if args.device == "cuda" else 0}
    torch.set_num_threads(args.cpus_per_actor)
    print(f"{machine()}; {args.dtype}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        text = text_part(args, Path(folder))
        images = image_part(args, Path(folder))
    report(text, images, args.rows, args.images)
    path = save(
        "gpu", {"machine": machine(), "device": args.device, "dtype": args.dtype, "text": text, "images": images}
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
