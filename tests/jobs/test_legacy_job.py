"""The tasks transformers 5 removed, through the job, equal transformers 4.57's goldens."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.annotate import annotate
from pipefleet.spec import parse_spec
from tests.legacy.goldens import NAMES, golden, model_folder, row_input, task_of
from tests.legacy.shared import ONE_MB
from tests.oracle import assert_matches

# The task name a job runs a golden under, where it is not the golden's own: the name sets the languages.
JOB_TASKS = {"translation-multilingual": "translation_eng_Latn_to_fra_Latn"}


@pytest.mark.parametrize("name", NAMES)
def test_job_output_equals_the_4_57_pipeline(local_ray, tmp_path, name):
    task = JOB_TASKS.get(name, task_of(name))
    spec_params = parse_spec({"task": task}).params
    # A job's parameters are its spec's: it must give the cases that ask for nothing else.
    cases = [case for case in golden(name)["cases"] if case["params"].items() <= spec_params.items()]
    rows = [row_input(name, case["inputs"]) for case in cases]
    names = list(rows[0]) if isinstance(rows[0], dict) else ["text"]
    columns = {column: [row[column] if isinstance(row, dict) else row for row in rows] for column in names}
    if task == "question-answering":  # bad rows among good ones: each fails alone
        columns["question"] += [None, "Where?", "Where?"]
        columns["context"] += ["Some context.", "", ONE_MB]
    count = len(columns[names[0]])
    pq.write_table(pa.table({"row": list(range(count)), **columns}), tmp_path / "in.parquet")
    spec = parse_spec(
        {
            "task": task,
            "model": model_folder(name),
            "device": "cpu",
            "input": {"path": str(tmp_path / "in.parquet"), "columns": {n: n for n in names}, "id_column": "row"},
            "output": {"path": str(tmp_path / "out"), "column": "result"},
            "compute": {"num_cpus": 1, "concurrency": 1},
        }
    )
    annotate(spec)
    out = pq.read_table(tmp_path / "out").sort_by("row").to_pylist()
    assert cases and len(out) == count
    for case, row in zip(cases, out):
        assert row["error"] is None, row["error"]
        assert_matches(row["result"], case["output"], f"{name}/{case['name']}")
    bad = out[len(cases) :]
    assert all(row["error"] and row["result"] is None for row in bad), bad
