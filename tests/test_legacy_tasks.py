"""question-answering, summarization, translation and visual-question-answering: the tasks
transformers 5 removed. pipefleet's handlers must give what transformers 4.57's pipelines gave,
recorded in ``tests/legacy/goldens`` (see ``tests/legacy/make_goldens.py``), in process, in the
job and over HTTP, with the tiny models saved beside the goldens."""

from __future__ import annotations

from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.annotate import annotate
from pipefleet.errors import RowError
from pipefleet.spec import parse_spec
from tests.legacy.goldens import TASKS, golden, model_folder, row_input
from tests.oracle import assert_matches
from tests.support import as_json, running_endpoint

ONE_MB = "word " * 200_000


@pytest.mark.parametrize("task", TASKS)
def test_handler_equals_the_4_57_pipeline(make_handler, task):
    cases = golden(task)["cases"]
    handler = make_handler(task, model_folder(task))
    # All cases in one call, each with its own parameters: rows that share parameters share batches.
    outputs = handler.predict([row_input(task, case["inputs"]) for case in cases], [case["params"] for case in cases])
    for case, output in zip(cases, outputs):
        assert_matches(output, case["output"], f"{task}/{case['name']}")


def test_question_answering_finds_the_answer_in_a_later_window(make_handler):
    case = next(c for c in golden("question-answering")["cases"] if c["name"] == "windows")
    handler = make_handler("question-answering", model_folder("question-answering"))
    encoded = handler.pipe.tokenizer(
        case["inputs"]["question"],
        case["inputs"]["context"],
        truncation="only_second",
        max_length=case["params"]["max_seq_len"],
        stride=case["params"]["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    windows = len(encoded["input_ids"])
    first_window_end = max(
        end for (_, end), seq in zip(encoded["offset_mapping"][0], encoded.sequence_ids(0)) if seq == 1
    )
    assert windows > 2 and case["output"]["start"] > first_window_end, (windows, first_window_end, case["output"])
    [output] = handler.predict([case["inputs"]], case["params"])
    assert_matches(output, case["output"])


def test_bad_question_answering_inputs_fail_alone(make_handler):
    handler = make_handler("question-answering", model_folder("question-answering"))
    good = {"question": "Where does Wolfgang live?", "context": "My name is Wolfgang and I live in Berlin."}
    outcomes = handler.predict(
        [
            {"context": good["context"]},
            {"question": good["question"], "context": ""},
            {"question": good["question"], "context": ONE_MB},
            "just a string",
            good,
        ]
    )
    errors = [str(outcome) for outcome in outcomes[:4]]
    assert all(isinstance(outcome, RowError) for outcome in outcomes[:4]), outcomes
    assert "question is missing" in errors[0] and "context is empty" in errors[1], errors
    assert "context is 1,000,000 characters, over max_input_chars" in errors[2], errors
    assert "an input is an object with question, context" in errors[3], errors
    assert set(outcomes[4]) == {"score", "start", "end", "answer"}


def test_translation_task_names_carry_their_languages():
    spec = parse_spec({"task": "translation_en_to_fr", "model": "some/model"})
    assert spec.task == "translation" and spec.params == {"src_lang": "en", "tgt_lang": "fr"}
    mbart = parse_spec({"task": "translation_en_to_fr", "params": {"src_lang": "en_XX", "tgt_lang": "fr_XX"}})
    assert mbart.params == {"src_lang": "en_XX", "tgt_lang": "fr_XX"}
    assert parse_spec({"task": "vqa"}).task == "visual-question-answering"


def _default_cases(task: str) -> list[dict[str, Any]]:
    """The cases a spec without parameters answers (a job's parameters are the spec's)."""
    return [case for case in golden(task)["cases"] if not case["params"]]


@pytest.mark.ray
@pytest.mark.parametrize("task", TASKS)
def test_job_output_equals_the_4_57_pipeline(local_ray, tmp_path, task):
    cases = _default_cases(task)
    rows = [row_input(task, case["inputs"]) for case in cases]
    names = list(rows[0]) if isinstance(rows[0], dict) else ["text"]
    columns = {name: [row[name] if isinstance(row, dict) else row for row in rows] for name in names}
    if task == "question-answering":  # bad rows among good ones: each fails alone
        columns["question"] += [None, "Where?", "Where?"]
        columns["context"] += ["Some context.", "", ONE_MB]
    count = len(columns[names[0]])
    pq.write_table(pa.table({"row": list(range(count)), **columns}), tmp_path / "in.parquet")
    spec = parse_spec(
        {
            "task": task,
            "model": model_folder(task),
            "device": "cpu",
            "input": {"path": str(tmp_path / "in.parquet"), "columns": {n: n for n in names}, "id_column": "row"},
            "output": {"path": str(tmp_path / "out"), "column": "result"},
            "compute": {"num_cpus": 1, "concurrency": 1},
        }
    )
    annotate(spec)
    out = pq.read_table(tmp_path / "out").sort_by("row").to_pylist()
    assert len(out) == count
    for case, row in zip(cases, out):
        assert row["error"] is None, row["error"]
        assert_matches(row["result"], case["output"], f"{task}/{case['name']}")
    bad = out[len(cases) :]
    assert all(row["error"] and row["result"] is None for row in bad), bad


@pytest.fixture(scope="module")
def legacy_routes(local_ray):
    specs = [
        {
            "task": task,
            "model": model_folder(task),
            "device": "cpu",
            "serve": {"route": f"/{task}", "num_cpus": 0.1, "max_batch_size": 4, "batch_wait_timeout_s": 0.01},
        }
        for task in TASKS
    ]
    with running_endpoint(specs, "pipefleet-legacy") as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.mark.serve
@pytest.mark.parametrize("task", TASKS)
def test_http_output_equals_the_4_57_pipeline(legacy_routes, task):
    for case in golden(task)["cases"]:
        body = {"inputs": as_json(row_input(task, case["inputs"])), "parameters": case["params"]}
        reply = legacy_routes.post(f"/{task}", json=body)
        assert reply.status_code == 200, reply.text
        assert_matches(reply.json(), case["output"], f"{task}/{case['name']}")


@pytest.mark.serve
def test_bad_question_answering_requests_get_422(legacy_routes):
    for inputs, problem in [
        ({"context": "Some context."}, "question is missing"),
        ({"question": "Where?", "context": ""}, "context is empty"),
        ({"question": "Where?", "context": ONE_MB}, "over max_input_chars"),
    ]:
        reply = legacy_routes.post("/question-answering", json={"inputs": inputs})
        assert reply.status_code == 422 and problem in reply.text, (reply.status_code, reply.text[:200])
