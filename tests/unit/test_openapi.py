"""The endpoint's OpenAPI document, built from the handlers' declarations (no Serve needed)."""

from __future__ import annotations

from openapi_spec_validator import validate

from pipefleet.registry import handler_class, tasks
from pipefleet.spec import parse_spec
from serve.openapi import endpoint_openapi


def _spec(task: str, route: str, **serve) -> object:
    return parse_spec({"task": task, "model": "some/model", "serve": {"route": route, **serve}})


def test_every_task_gets_a_valid_operation_with_its_body_and_answers():
    specs = [_spec(task, f"/{task}") for task in tasks()]
    specs.append(_spec("text-classification", "/private", auth_token_env="TOKEN"))
    document = endpoint_openapi(specs)
    validate(document)  # raises on an invalid OpenAPI 3.1 document
    for spec in specs:
        operation = document["paths"][spec.route]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["inputs"]
        declared = set(handler_class(spec.task).parameters)
        assert set(body["properties"]["parameters"]["properties"]) == declared, spec.task
        assert {"200", "400", "413", "422", "500", "503", "504"} <= set(operation["responses"])
    assert document["paths"]["/private"]["post"]["security"] == [{"bearer": []}]
    assert "bearer" in document["components"]["securitySchemes"]


def test_parameter_schemas_say_what_each_parameter_takes():
    document = endpoint_openapi([_spec("text-classification", "/classify")])
    parameters = document["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    parameters = parameters["properties"]["parameters"]["properties"]
    assert parameters["top_k"]["type"] == ["integer", "null"] and parameters["top_k"]["minimum"] == 1
    assert parameters["function_to_apply"]["enum"] == ["sigmoid", "softmax", "none"]
    answer = document["paths"]["/classify"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["anyOf"][0]["properties"] == {"label": {"type": "string"}, "score": {"type": "number"}}


def test_the_openai_style_routes_are_documented_where_a_route_serves_them():
    with_apis = endpoint_openapi([_spec("feature-extraction", "/embeddings"), _spec("text-ranking", "/rank")])
    validate(with_apis)
    assert {"/v1/embeddings", "/v1/rerank", "/v1/models"} <= set(with_apis["paths"])
    embeddings = with_apis["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert embeddings["required"] == ["input"] and "dimensions" in embeddings["properties"]
    without = endpoint_openapi([_spec("text-classification", "/classify")])
    assert not any(path.startswith("/v1/") for path in without["paths"])
