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
from tests.legacy.goldens import NAMES, golden, model_folder, png, row_input, task_of
from tests.legacy.images import draw
from tests.oracle import assert_matches
from tests.support import as_json, running_endpoint

ONE_MB = "word " * 200_000


@pytest.mark.parametrize("name", NAMES)
def test_handler_equals_the_4_57_pipeline(make_handler, name):
    cases = golden(name)["cases"]
    handler = make_handler(task_of(name), model_folder(name))
    # All cases in one call, each with its own parameters: rows that share parameters share batches.
    outputs = handler.predict([row_input(name, case["inputs"]) for case in cases], [case["params"] for case in cases])
    for case, output in zip(cases, outputs):
        assert_matches(output, case["output"], f"{name}/{case['name']}")


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


def test_bare_translation_takes_the_models_first_language_pair_as_4_57_did(make_handler):
    # 4.57's pipeline("translation") on this T5 picks translation_en_to_fr, its first translation entry
    # in task_specific_params, and so its prefix: the outputs equal that golden's.
    cases = golden("translation_en_to_fr")["cases"]
    handler = make_handler("translation", model_folder("translation_en_to_fr"))
    assert handler.pipe.legacy_task == "translation_en_to_fr"
    outputs = handler.predict([case["inputs"] for case in cases], [case["params"] for case in cases])
    for case, output in zip(cases, outputs):
        assert_matches(output, case["output"], case["name"])


def test_multilingual_translation_writes_in_the_asked_language_and_refuses_unknown_codes(make_handler):
    outputs = {case["name"]: case["output"] for case in golden("translation-multilingual")["cases"]}
    assert outputs["to_french"] != outputs["to_german"]  # the same text: the target language decides
    handler = make_handler("translation", model_folder("translation-multilingual"))
    text = "How old are you?"
    outcomes = handler.predict(
        [text] * 4,
        [
            {},
            {"src_lang": "eng_Latn", "tgt_lang": "klingon"},
            {"src_lang": "xx_Latn", "tgt_lang": "fra_Latn"},
            {"src_lang": "eng_Latn", "tgt_lang": "deu_Latn", "max_new_tokens": 8},
        ],
    )
    errors = [str(outcome) for outcome in outcomes[:3]]
    assert all(isinstance(outcome, RowError) for outcome in outcomes[:3]), outcomes
    assert "needs src_lang and tgt_lang" in errors[0], errors
    assert "tgt_lang 'klingon' is not a language code" in errors[1], errors
    assert "src_lang 'xx_Latn' is not a language code" in errors[2], errors
    assert_matches(outcomes[3], outputs["to_german"])


def _chat_answers(model: str, image: Any, question: str, **params: Any) -> list[dict[str, str]]:
    """What the image-text-to-text pipeline replies to the question in one user message, as VQA answers."""
    from transformers import pipeline

    chat = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    replies = pipeline("image-text-to-text", model=model)(text=chat, return_full_text=False, **params)
    return [{"answer": reply["generated_text"].strip()} for reply in replies]


def test_vqa_with_a_chat_model_answers_through_image_text_to_text(tiny_model, make_handler):
    model = tiny_model("image-text-to-text")  # a LLaVA: not one of 4.57's VQA models
    handler = make_handler("vqa", model, params={"max_new_tokens": 5})
    assert handler.chat is not None and handler.arrow_type(handler.spec.params) == pa.list_(
        pa.struct([("answer", pa.string())])
    )
    cases = [("red_square", "What colour is it?", {}), ("blue_circle", "What shape?", {"max_new_tokens": 3})]
    rows = [{"image": png(image), "question": question} for image, question, _ in cases]
    outcomes = handler.predict([*rows, {"image": png("red_square"), "question": ""}], [p for *_, p in cases] + [{}])
    for (image, question, params), outcome in zip(cases, outcomes):
        assert_matches(outcome, _chat_answers(model, draw(image), question, **{"max_new_tokens": 5, **params}))
    assert isinstance(outcomes[2], RowError) and "question is empty" in str(outcomes[2])


# The task name a job runs a golden under, where it is not the golden's own: the name sets the languages.
JOB_TASKS = {"translation-multilingual": "translation_eng_Latn_to_fra_Latn"}


@pytest.mark.ray
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


@pytest.fixture(scope="module")
def legacy_routes(local_ray, tiny_model):
    chat_vqa = {
        "task": "visual-question-answering",
        "model": tiny_model("image-text-to-text"),
        "device": "cpu",
        "params": {"max_new_tokens": 5},
        "serve": {"route": "/vqa-chat", "num_cpus": 0.1, "max_batch_size": 4, "batch_wait_timeout_s": 0.01},
    }
    specs = [
        {
            "task": task_of(name),
            "model": model_folder(name),
            "device": "cpu",
            "serve": {"route": f"/{name}", "num_cpus": 0.1, "max_batch_size": 4, "batch_wait_timeout_s": 0.01},
        }
        for name in NAMES
    ]
    specs.append(chat_vqa)
    with running_endpoint(specs, "pipefleet-legacy") as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


@pytest.mark.serve
@pytest.mark.parametrize("name", NAMES)
def test_http_output_equals_the_4_57_pipeline(legacy_routes, name):
    for case in golden(name)["cases"]:
        body = {"inputs": as_json(row_input(name, case["inputs"])), "parameters": case["params"]}
        reply = legacy_routes.post(f"/{name}", json=body)
        assert reply.status_code == 200, reply.text
        assert_matches(reply.json(), case["output"], f"{name}/{case['name']}")


@pytest.mark.serve
def test_bad_question_answering_requests_get_422(legacy_routes):
    for inputs, problem in [
        ({"context": "Some context."}, "question is missing"),
        ({"question": "Where?", "context": ""}, "context is empty"),
        ({"question": "Where?", "context": ONE_MB}, "over max_input_chars"),
    ]:
        reply = legacy_routes.post("/question-answering", json={"inputs": inputs})
        assert reply.status_code == 422 and problem in reply.text, (reply.status_code, reply.text[:200])


@pytest.mark.serve
def test_http_vqa_with_a_chat_model(legacy_routes, tiny_model):
    body = {"inputs": as_json({"image": png("green_lines"), "question": "How many lines?"}), "parameters": {}}
    reply = legacy_routes.post("/vqa-chat", json=body)
    assert reply.status_code == 200, reply.text
    want = _chat_answers(tiny_model("image-text-to-text"), draw("green_lines"), "How many lines?", max_new_tokens=5)
    assert_matches(reply.json(), want)
