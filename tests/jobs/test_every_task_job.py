"""Every image, audio and multimodal task through the job equals the handler: the typed Parquet column
carries the handler's outputs, with the actor's forward passes in two lanes at once (one for models
that generate).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.annotate import annotate
from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec
from tests.every_task import CASES, IDS, _comparable, _expected, _inputs
from tests.oracle import assert_matches


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_job_output_equals_the_handler(local_ray, tiny_model, tmp_path, case):
    model = tiny_model(case.task)
    columns = {name: f"in_{name}" for name in case.rows}
    table = pa.table({"row": list(range(len(_inputs(case)))), **{columns[n]: v for n, v in case.rows.items()}})
    pq.write_table(table, tmp_path / "in.parquet")
    spec = parse_spec(
        {
            "task": case.task,
            "model": model,
            "device": "cpu",
            "params": case.params,
            "input": {"path": str(tmp_path / "in.parquet"), "columns": columns, "id_column": "row"},
            "output": {"path": str(tmp_path / "out"), "column": "result"},
            # Two lanes of one thread, a pass per row: each task's forward runs in two threads at once.
            "batch_size": 1,
            "compute": {"num_cpus": 2, "concurrency": 1},
        }
    )
    manifest = annotate(spec)
    handler = handler_class(case.task)(spec)
    handler.setup()
    assert manifest["this_run"]["compute"]["lanes"] == (2 if handler.parallel_forward else 1)
    out = pq.read_table(tmp_path / "out").sort_by("row").to_pylist()
    assert [row["error"] for row in out] == [None] * len(out)
    assert_matches([_comparable(row["result"]) for row in out], _expected(case, model, batch_size=1))
