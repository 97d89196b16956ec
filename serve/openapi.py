"""The endpoint's OpenAPI document: one operation per route, with its request body and answers.

Built from what each handler declares (its inputs, media kind, parameters with their JSON
schemas, the Arrow type of its output), so a client generated from ``/openapi.json`` knows
every route's body and every answer the endpoint sends, errors included.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipefleet.handler import MEDIA
from pipefleet.params import schema_of
from pipefleet.spec import Spec

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, naming the input or parameter"},
        "errors": {
            "type": "array",
            "description": "for a list of inputs: each failed input's position and error",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "error": {"type": "string"}},
            },
        },
    },
}
# Status -> when the endpoint answers it (serve.errors holds the mapping itself).
ERROR_STATUSES = {
    "400": "a malformed request: bad JSON, unknown keys, an unknown parameter or a parameter of the wrong type",
    "401": "no bearer token, or the wrong one (routes with serve.auth_token_env)",
    "413": "the body is over serve.max_body_mb",
    "422": "an input the task cannot take",
    "500": "the model failed on an input, or the server lacks a program or file it needs",
    "503": "the route's queue is full, or its replica is gone: retry after Retry-After seconds",
    "504": "the request ran past serve.request_timeout_s",
}


def arrow_to_schema(arrow_type: pa.DataType) -> dict[str, Any]:
    """The JSON schema of an output of ``arrow_type`` as the endpoint writes it (binary as base64)."""
    if pa.types.is_struct(arrow_type):
        fields = {field.name: arrow_to_schema(field.type) for field in arrow_type}
        return {"type": "object", "properties": fields}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        schema: dict[str, Any] = {"type": "array", "items": arrow_to_schema(arrow_type.value_type)}
        if pa.types.is_fixed_size_list(arrow_type):
            schema["minItems"] = schema["maxItems"] = arrow_type.list_size
        return schema
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return {"type": "string"}
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return {"type": "string", "contentEncoding": "base64"}
    if pa.types.is_boolean(arrow_type):
        return {"type": "boolean"}
    if pa.types.is_integer(arrow_type):
        return {"type": "integer"}
    if pa.types.is_floating(arrow_type):
        return {"type": "number"}
    return {}


# The JSON schema of one value of each declared input kind (pipefleet.handler.INPUT_KINDS).
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "labels": {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
        "description": "candidate labels: a list, or one comma-separated string",
    },
    "table": {
        "anyOf": [
            {"type": "object", "additionalProperties": {"type": "array"}},
            {"type": "array", "items": {"type": "object"}},
        ],
        "description": "a table: {column: [cells]} or [{column: cell}]",
    },
    "json": {},
}


def _kind_schema(kind: str) -> dict[str, Any]:
    if kind in MEDIA:
        return {"type": "string", "description": f"the {kind} file's bytes as base64 (or a data: URL)"}
    return dict(_KIND_SCHEMAS[kind])


def _input_schema(spec: Spec, handler: type) -> dict[str, Any]:
    main, *others = handler.inputs
    one = {**_kind_schema(main.kind), "description": f"the {main.name}"}
    if others:
        properties = {i.name: {**_kind_schema(i.kind), "description": f"the {i.name}"} for i in handler.inputs}
        required = [i.name for i in handler.inputs if i.required]
        named = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        one = {"anyOf": [one, named]}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def _output_schema(spec: Spec, handler: type) -> dict[str, Any]:
    try:  # the handler is built, not loaded: types that need the model's sizes stay open
        one = arrow_to_schema(handler(spec).arrow_type(spec.params, handler.input_names()))
    except Exception:  # noqa: BLE001 - a type that needs a loaded model: documented as any JSON
        one = {}
    return {"anyOf": [one, {"type": "array", "items": one}], "description": "one output per input, in order"}


def route_operation(spec: Spec) -> dict[str, Any]:
    """The OpenAPI path item of one route: ``POST <route>`` with its body and answers."""
    from pipefleet.registry import handler_class

    handler = handler_class(spec.task)
    parameters = {name: schema_of(check) for name, check in sorted(handler.parameters.items())}
    body = {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "inputs": _input_schema(spec, handler),
            "parameters": {"type": "object", "properties": parameters, "additionalProperties": False},
            "stream": {
                "type": "boolean",
                "description": "answer as server-sent events, piece by piece"
                + ("" if handler.capabilities.streaming else f" (refused: {spec.task} does not stream)"),
            },
            "options": {"type": "object", "description": "accepted for compatibility; ignored"},
        },
    }
    content: dict[str, Any] = {"application/json": {"schema": body}}
    content["multipart/form-data"] = {
        "schema": {
            "type": "object",
            "properties": {
                "inputs": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "parameters": {"type": "string", "description": "the parameters as JSON text"},
            },
        }
    }
    responses: dict[str, Any] = {
        "200": {
            "description": "the task's output",
            "content": {"application/json": {"schema": _output_schema(spec, handler)}},
        }
    }
    for status, when in ERROR_STATUSES.items():
        responses[status] = {"description": when, "content": {"application/json": {"schema": ERROR}}}
    operation = {
        "summary": f"{spec.task} with {spec.model or 'the default model'}",
        "operationId": "call" + spec.route.replace("/", "_").replace("-", "_"),
        "requestBody": {"required": True, "content": content},
        "responses": responses,
    }
    if spec.serve.auth_token_env:
        operation["security"] = [{"bearer": []}]
    return {"post": operation}


def endpoint_openapi(specs: list[Spec]) -> dict[str, Any]:
    """The whole endpoint's OpenAPI document: the index's paths and one operation per route."""
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "the deployed routes", "responses": {"200": {"description": "the routes"}}}},
        "/-/stats": {
            "get": {
                "summary": "requests, errors, rows and batch sizes per route",
                "responses": {"200": {"description": "the counts"}},
            }
        },
    }
    paths.update({spec.route: route_operation(spec) for spec in specs})
    paths.update(_openai_paths(specs))
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "pipefleet", "version": "1", "description": "Hugging Face pipelines served by Ray Serve."},
        "paths": paths,
    }
    if any(spec.serve.auth_token_env for spec in specs):
        document["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    return document


_OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "integer"}},
        }
    },
}


def _openai_paths(specs: list[Spec]) -> dict[str, Any]:
    """The OpenAI-style routes the index answers for these specs (see :mod:`serve.openai`)."""
    from pipefleet.registry import handler_class

    apis = {api for spec in specs for api in handler_class(spec.task).capabilities.apis}
    errors = {
        status: {"description": when, "content": {"application/json": {"schema": _OPENAI_ERROR}}}
        for status, when in ERROR_STATUSES.items()
    }
    bodies = {
        "embeddings": {
            "type": "object",
            "required": ["input"],
            "properties": {
                "input": {"description": "a string, a list of strings, or token ids of the model's tokenizer"},
                "model": {"type": "string"},
                "encoding_format": {"enum": ["float", "base64"]},
                "dimensions": {"type": "integer", "minimum": 1},
                "user": {"type": "string"},
            },
        },
        "rerank": {
            "type": "object",
            "required": ["query", "documents"],
            "properties": {
                "query": {"type": "string"},
                "documents": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "top_n": {"type": "integer", "minimum": 1},
                "return_documents": {"type": "boolean"},
                "raw_scores": {"type": "boolean"},
                "model": {"type": "string"},
            },
        },
    }
    paths: dict[str, Any] = {}
    for api in sorted(apis):
        paths[f"/v1/{api}"] = {
            "post": {
                "summary": f"OpenAI-style {api}",
                "operationId": f"v1_{api}",
                "requestBody": {"required": True, "content": {"application/json": {"schema": bodies[api]}}},
                "responses": {"200": {"description": f"the {api}"}, **errors},
            }
        }
    if apis:
        paths["/v1/models"] = {
            "get": {"summary": "the models behind /v1", "responses": {"200": {"description": "the models"}}}
        }
    return paths
