"""On a CUDA GPU: handlers in float16 equal pipeline(device=0, dtype=float16), and the job's GPU actors
write what the CPU run writes. This tier runs only where CUDA is present (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import pipeline

from tests.oracle import assert_matches
from tests.unit.test_text_handlers import MASKED, TEXTS

# float16 sums in another order than float32 on the CPU: scores agree to about 1e-3 of their range.
FP16_TOLERANCE = 2e-3


@pytest.mark.parametrize(
    ("task", "params", "inputs"),
    [
        ("text-classification", {"top_k": 2}, TEXTS),
        ("token-classification", {"aggregation_strategy": "simple"}, TEXTS),
        ("fill-mask", {"top_k": 3}, MASKED),
    ],
)
def test_float16_handlers_equal_the_float16_pipeline(tiny_model, make_handler, task, params, inputs, monkeypatch):
    import tests.oracle as oracle

    monkeypatch.setattr(oracle, "SCORE_TOLERANCE", FP16_TOLERANCE)
    model = tiny_model(task)
    handler = make_handler(task, model, device="auto", dtype="float16", params=params)
    assert handler.pipe.device.type == "cuda"
    expected = pipeline(task, model=model, device=0, dtype="float16")(list(inputs), **params)
    assert_matches(handler.predict(list(inputs)), expected)


def test_the_job_on_gpu_actors_writes_what_the_cpu_writes(local_ray, minilm, tmp_path):
    from jobs.annotate import annotate
    from pipefleet.spec import parse_spec

    pq.write_table(pa.table({"id": list(range(len(TEXTS))), "text": TEXTS}), tmp_path / "in.parquet")
    vectors = {}
    for device, num_gpus in (("cpu", 0), ("auto", 1)):
        spec = parse_spec(
            {
                "task": "feature-extraction",
                "model": minilm,
                "device": device,
                "dtype": "float16" if num_gpus else "float32",
                "input": {"path": str(tmp_path / "in.parquet"), "id_column": "id"},
                "output": {"path": str(tmp_path / f"out-{device}")},
                "compute": {"num_gpus": num_gpus, "num_cpus": 1, "concurrency": 1},
            }
        )
        manifest = annotate(spec)
        assert manifest["rows_ok"] == len(TEXTS)
        table = pq.read_table(tmp_path / f"out-{device}").sort_by("id")
        vectors[device] = np.array(table["embedding"].to_pylist())
    cosine = (vectors["cpu"] * vectors["auto"]).sum(axis=1)  # both are unit vectors
    assert cosine.min() >= 0.999, cosine
