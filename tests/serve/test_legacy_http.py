"""The tasks transformers 5 removed, over HTTP, equal transformers 4.57's goldens."""

from __future__ import annotations

import httpx
import pytest

from tests.legacy.goldens import NAMES, golden, model_folder, png, row_input, task_of
from tests.legacy.images import draw
from tests.legacy.shared import ONE_MB, _chat_answers
from tests.oracle import assert_matches
from tests.support import as_json, running_endpoint


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


@pytest.mark.parametrize("name", NAMES)
def test_http_output_equals_the_4_57_pipeline(legacy_routes, name):
    for case in golden(name)["cases"]:
        body = {"inputs": as_json(row_input(name, case["inputs"])), "parameters": case["params"]}
        reply = legacy_routes.post(f"/{name}", json=body)
        assert reply.status_code == 200, reply.text
        assert_matches(reply.json(), case["output"], f"{name}/{case['name']}")


def test_bad_question_answering_requests_get_422(legacy_routes):
    for inputs, problem in [
        ({"context": "Some context."}, "question is missing"),
        ({"question": "Where?", "context": ""}, "context is empty"),
        ({"question": "Where?", "context": ONE_MB}, "over max_input_chars"),
    ]:
        reply = legacy_routes.post("/question-answering", json={"inputs": inputs})
        assert reply.status_code == 422 and problem in reply.text, (reply.status_code, reply.text[:200])


def test_http_vqa_with_a_chat_model(legacy_routes, tiny_model):
    body = {"inputs": as_json({"image": png("green_lines"), "question": "How many lines?"}), "parameters": {}}
    reply = legacy_routes.post("/vqa-chat", json=body)
    assert reply.status_code == 200, reply.text
    want = _chat_answers(tiny_model("image-text-to-text"), draw("green_lines"), "How many lines?", max_new_tokens=5)
    assert_matches(reply.json(), want)
