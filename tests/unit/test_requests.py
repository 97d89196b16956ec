"""Reading requests as Hugging Face's clients send them: raw files, parameters and named inputs at the top
level, integral floats; and the task specifications' answers as documented transforms of pipeline()'s."""

from __future__ import annotations

import pytest

from pipefleet.errors import BadInput
from pipefleet.registry import handler_class
from serve.errors import MalformedRequest
from serve.requests import parse_body

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
IMAGE, VQA, FEATURES = (
    handler_class(t) for t in ("image-classification", "visual-question-answering", "feature-extraction")
)


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", None])
def test_a_media_route_takes_a_raw_file(content_type):
    call = parse_body(content_type, PNG, IMAGE)
    assert call.inputs == [PNG] and call.single and call.parameters == {}


def test_a_raw_body_is_json_for_a_text_route_and_an_empty_file_is_refused():
    with pytest.raises(MalformedRequest, match="not valid JSON"):
        parse_body(None, PNG, FEATURES)
    with pytest.raises(BadInput, match="the image file is empty"):
        parse_body("image/png", b"", IMAGE)
    assert parse_body(None, b'{"inputs": "aGk="}', IMAGE).inputs == ["aGk="]  # JSON without a content type


def test_parameters_and_named_inputs_at_the_top_level():
    body = b'{"inputs": "hi", "normalize": true, "truncate": false, "parameters": {"pooling": "cls"}}'
    call = parse_body("application/json", body, FEATURES)
    assert call.parameters == {"pooling": "cls", "normalize": True, "truncate": False}
    vqa = parse_body("application/json", b'{"inputs": "aW1n", "parameters": {}, "question": "why?"}', VQA)
    assert vqa.inputs == [{"image": "aW1n", "question": "why?"}] and vqa.single
    dqa = handler_class("document-question-answering")
    call = parse_body(None, b'{"inputs": {"question": "q"}, "parameters": {"word_boxes": [["a", [0, 0, 1, 1]]]}}', dqa)
    assert call.inputs == [{"question": "q", "word_boxes": [["a", [0, 0, 1, 1]]]}] and call.parameters == {}
    with pytest.raises(MalformedRequest, match=r"unknown key\(s\) \['question'\]"):
        parse_body(None, b'{"question": "why?"}', VQA)  # a named input stands beside "inputs", never instead


def test_an_integral_float_is_an_integer_and_a_fraction_is_refused(tiny_model, make_handler):
    from pipefleet.errors import BadParameter

    handler = make_handler("text-classification", tiny_model("text-classification"))
    resolved = handler.resolve({"top_k": 3.0})
    assert resolved.call["top_k"] == 3 and isinstance(resolved.call["top_k"], int)
    assert len(handler.predict(["a text"], {"top_k": 2.0})[0]) == 2
    with pytest.raises(BadParameter, match="parameter top_k: an integer >= 1"):
        handler.resolve({"top_k": 2.5})


def test_the_specifications_answers_are_transforms_of_the_pipelines():
    classify = handler_class("text-classification")
    label = {"label": "POS", "score": 0.9}
    assert classify.task_spec_answer([label], ["t"], True, {}) == [[label]]
    assert classify.task_spec_answer([[label], [label]], ["t", "u"], False, {"top_k": 1}) == [[label], [label]]
    zero_shot = handler_class("zero-shot-classification")
    output = {"sequence": "t", "labels": ["a", "b"], "scores": [0.7, 0.3]}
    assert zero_shot.task_spec_answer([output], ["t"], True, {}) == [
        {"label": "a", "score": 0.7},
        {"label": "b", "score": 0.3},
    ]
    speech = handler_class("text-to-audio")
    assert speech.task_spec_answer([{"audio": b"RIFF", "sampling_rate": 16000}], ["hi"], True, {}) == b"RIFF"
    generate = handler_class("text-generation")
    assert generate.task_spec_params({}) == {"return_full_text": False}
    assert generate.task_spec_params({"return_full_text": True}) == {"return_full_text": True}


def test_the_model_name_picks_the_route_of_an_openai_style_api():
    from pipefleet.spec import parse_spec
    from serve.errors import RouteNotFound
    from serve.index import Route
    from serve.openai import pick_route

    def route(task, model, path):
        return Route(parse_spec({"task": task, "model": model, "serve": {"route": path}}), "app")

    routes = {
        "/embeddings": route("feature-extraction", "sentence-transformers/all-MiniLM-L6-v2", "/embeddings"),
        "/e5": route("feature-extraction", "intfloat/e5-small", "/e5"),
        "/rank": route("text-ranking", "cross-encoder/ms-marco", "/rank"),
        "/classify": route("text-classification", "some/classifier", "/classify"),
    }
    for name in ("embeddings", "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert pick_route(routes, "embeddings", name) is routes["/embeddings"]
    assert pick_route(routes, "embeddings", "e5-small") is routes["/e5"]
    assert pick_route(routes, "rerank", "anything") is routes["/rank"]  # the only rerank route
    with pytest.raises(RouteNotFound, match="model 'gpt-4': no route serves it for /v1/embeddings; models: "):
        pick_route(routes, "embeddings", "gpt-4")
    with pytest.raises(RouteNotFound, match="no route of this endpoint serves /v1/rerank"):
        pick_route({"/classify": routes["/classify"]}, "rerank", "x")
