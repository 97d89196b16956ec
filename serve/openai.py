"""OpenAI-style routes on the index: ``POST /v1/embeddings``, ``POST /v1/rerank``, ``GET /v1/models``.

What LangChain, LlamaIndex, vector-database loaders and the ``openai`` SDK call, in the shapes
OpenAI (embeddings), and Infinity and TEI (rerank) answer. ``model`` picks the route among those whose
task declares the API (``capabilities.apis``): the route's name (``embeddings``), its spec's model
id, or that id's last part (``all-MiniLM-L6-v2``); with one such route, any name reaches it. The
index hands the inputs to that route's replicas, through the same checks and batches as the route's
own HTTP (one hop more than calling the route). Errors are ``{"error": {"message", "type", "code"}}``,
the only shape the ``openai`` SDK shows a message from.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request  # at module level: FastAPI reads the endpoints' annotations from here

from serve.errors import MalformedRequest, RouteNotFound, error_message, status_of

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serve.index import Route

EMBEDDINGS, RERANK = "embeddings", "rerank"
_EMBEDDING_KEYS = {"input", "model", "encoding_format", "dimensions", "user"}
_RERANK_KEYS = {"query", "documents", "top_n", "return_documents", "model", "raw_scores"}


def mount_openai(app: "FastAPI", routes: dict[str, "Route"]) -> None:
    """Add the OpenAI-style routes to the index's ``app`` (before its catch-all)."""
    from fastapi.responses import JSONResponse

    async def embeddings(request: Request) -> Any:
        return await _answer(request, routes, EMBEDDINGS, _embeddings)

    async def rerank(request: Request) -> Any:
        return await _answer(request, routes, RERANK, _rerank)

    async def models() -> Any:
        data = [
            {"id": _model_id(route), "object": "model", "created": 0, "owned_by": "pipefleet", "route": path}
            for path, route in routes.items()
            if route.handler.capabilities.apis
        ]
        return JSONResponse({"object": "list", "data": data})

    app.add_api_route("/v1/embeddings", embeddings, methods=["POST"], include_in_schema=False)
    app.add_api_route("/v1/rerank", rerank, methods=["POST"], include_in_schema=False)
    app.add_api_route("/v1/models", models, methods=["GET"], include_in_schema=False)


async def _answer(request: Request, routes: dict[str, "Route"], api: str, answer: Any) -> Any:
    from fastapi.responses import JSONResponse

    try:
        body = await request.json()
    except Exception as exc:  # noqa: BLE001 - a body that is not JSON is the caller's mistake
        return _error(MalformedRequest(f"request body is not valid JSON: {exc}"))
    try:
        if not isinstance(body, dict):
            raise MalformedRequest("request body must be a JSON object")
        route = pick_route(routes, api, body.get("model"))
        token = request.headers.get("authorization", "").partition(" ")[2] or None
        return JSONResponse(await answer(route, body, token))
    except Exception as exc:  # noqa: BLE001 - every failure in OpenAI's error shape
        return _error(exc)


def pick_route(routes: dict[str, "Route"], api: str, model: Any) -> "Route":
    """The route that serves ``api`` for ``model`` (its name, its model id or that id's last part)."""
    serving = {path: route for path, route in routes.items() if api in route.handler.capabilities.apis}
    if not serving:
        raise RouteNotFound(f"no route of this endpoint serves /v1/{api}")
    if len(serving) == 1:
        return next(iter(serving.values()))
    for path, route in serving.items():
        names = {path.strip("/"), route.spec.model or "", (route.spec.model or "").rstrip("/").split("/")[-1]}
        if model in names:
            return route
    known = ", ".join(sorted(_model_id(route) for route in serving.values()))
    raise RouteNotFound(f"model {model!r}: no route serves it for /v1/{api}; models: {known}")


async def _embeddings(route: "Route", body: dict[str, Any], token: str | None) -> dict[str, Any]:
    _no_unknown(body, _EMBEDDING_KEYS)
    texts = _texts(body.get("input"), route)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise MalformedRequest(f"encoding_format {encoding!r}: use float or base64")
    parameters = {} if body.get("dimensions") is None else {"dimensions": body["dimensions"]}
    result = await _call(route, texts, parameters, token)
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
        for index, vector in enumerate(result["outputs"])
    ]
    usage = {"prompt_tokens": result["tokens"], "total_tokens": result["tokens"]}
    return {"object": "list", "data": data, "model": body.get("model") or _model_id(route), "usage": usage}


async def _rerank(route: "Route", body: dict[str, Any], token: str | None) -> dict[str, Any]:
    _no_unknown(body, _RERANK_KEYS)
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise MalformedRequest('"documents" must be a non-empty list of strings')
    texts = [d.get("text") if isinstance(d, dict) else d for d in documents]  # Cohere's {"text": ...} too
    parameters = {"top_n": body["top_n"]} if body.get("top_n") is not None else {}
    if body.get("raw_scores"):
        parameters["raw_scores"] = True
    result = await _call(route, [{"query": body.get("query"), "texts": texts}], parameters, token)
    results = [
        {
            "index": ranked["index"],
            "relevance_score": ranked["score"],
            **({"document": {"text": texts[ranked["index"]]}} if body.get("return_documents") else {}),
        }
        for ranked in result["outputs"][0]
    ]
    usage = {"prompt_tokens": result["tokens"], "total_tokens": result["tokens"]}
    return {"object": "rerank", "results": results, "model": body.get("model") or _model_id(route), "usage": usage}


async def _call(route: "Route", inputs: list[Any], parameters: dict[str, Any], token: str | None) -> dict[str, Any]:
    result = await route.handle.api_call.remote(inputs, parameters, token)
    if "error" in result:
        raise _RouteError(result)
    return result


class _RouteError(Exception):
    """The route's own refusal, carried to the caller with its status."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer["error"])
        self.status = answer["status"]


def _texts(value: Any, route: "Route") -> list[Any]:
    """OpenAI's ``input``: a string, a list of strings, or token ids of the model's own tokenizer (one
    list, or a list of lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, list) and v and all(isinstance(i, int) for i in v) for v in value):
            return value
    raise MalformedRequest('"input" must be a string, a non-empty list of strings, or token ids')


def _encoded(vector: Any, encoding: str) -> Any:
    values = np.asarray(vector, dtype="<f4")
    return base64.b64encode(values.tobytes()).decode("ascii") if encoding == "base64" else values.tolist()


def _no_unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise MalformedRequest(f"unknown key(s) {unknown}; this route takes {', '.join(sorted(known))}")


def _model_id(route: "Route") -> str:
    return route.spec.model or route.spec.route.strip("/")


def _error(exc: BaseException) -> Any:
    from fastapi.responses import JSONResponse

    status = exc.status if isinstance(exc, _RouteError) else status_of(exc)
    message = str(exc) if isinstance(exc, _RouteError) else error_message(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    headers = getattr(exc, "headers", None) or None
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)
