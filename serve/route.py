"""One route's Serve deployment: it answers HTTP itself and runs the task's handler in batches.

Each spec becomes a Serve application whose ingress is this deployment, so a request takes
one hop from the ingress (HAProxy, or Serve's proxy) to the replica that holds the model.
The replica reads and checks the request (body limit, bearer token, JSON or multipart,
parameters, base64), batches its rows with whatever else is in flight (``@serve.batch``
counts rows, not requests), and answers with the pipeline's output as JSON.

Concurrent requests share forward passes; rows keep their own request's parameters, and
the handler never mixes them. A request with N inputs is cut into pieces of at most
``max_batch_size`` rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from ray import serve
from starlette.requests import Request

from pipefleet.errors import FatalError, RowError
from pipefleet.outputs import json_bytes
from serve.batcher import Batcher
from serve.errors import (
    BodyTooLarge,
    MalformedRequest,
    MethodNotAllowed,
    RouteNotFound,
    RowsFailed,
    TimedOut,
    error_body,
    error_message,
    error_response,
    status_of,
)
from serve.requests import Call, check_auth, check_declared_size, checked_call, parse_body, parse_multipart
from serve.streams import tgi_events

ROUTE_DEPLOYMENT = "route"  # the deployment's name inside each route's application
SHAPES = ("task", "pipeline")  # ?shape=: Hugging Face's task specification (the default), or pipeline()'s
FILE_TYPES = {"audio": "audio/wav", "image": "image/png"}  # answers that are a file, by the task's display
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@serve.ingress()
class RouteServer:
    """Serve deployment class of one route (options are set per spec in :mod:`serve.app`)."""

    def __init__(self, spec_json: str) -> None:
        import torch
        from ray.serve.metrics import Counter, Histogram

        from pipefleet.registry import handler_class
        from pipefleet.spec import parse_spec, whole_cpus

        self.spec = parse_spec(json.loads(spec_json))
        settings = self.spec.serve
        env = settings.auth_token_env
        self.token = os.environ.get(env) if env else None
        if env and self.token is None:
            raise FatalError(
                f"serve.auth_token_env names {env}, which is not set where the replica runs; "
                "export it before starting Ray (or pipefleet serve) on the serving nodes"
            )
        torch.set_num_threads(whole_cpus(settings.num_cpus))
        self.handler = handler_class(self.spec.task)(self.spec)
        self.handler.setup()
        self.reading = 0  # requests this replica is reading, not yet handed to the batcher
        self.batcher = Batcher(
            self.handler.predict,
            settings.max_batch_size,
            settings.batch_wait_timeout_s,
            arriving=lambda: self.reading,
            on_batch=self._batch_ran,
        )
        self.max_bytes = int(settings.max_body_mb * 1024 * 1024)
        self.tags = {"route": self.spec.route}
        self.metrics = {
            "requests": Counter("pipefleet_requests", "Requests per route.", tag_keys=("route",)),
            "errors": Counter(
                "pipefleet_request_errors", "Requests answered with an error status.", tag_keys=("route",)
            ),
            "rows": Counter("pipefleet_rows", "Input rows per route.", tag_keys=("route",)),
        }
        self.batch_rows = Histogram(
            "pipefleet_batch_rows",
            "Rows per batched forward call.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256],
            tag_keys=("route",),
        )
        self.counts = {"requests": 0, "errors": 0, "rows": 0}
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # rows per forward call, for /-/stats
        self.started = time.time()

    def __serve_build_asgi_app__(self) -> Any:
        """This route's HTTP app, built on the replica once the model is loaded (Serve calls it)."""
        from fastapi import FastAPI

        # The route's operation is documented by the index's /openapi.json, under the route's path.
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        # Serve hands the app the full path with the route as root_path, so "" is the route itself.
        for path in ("", "/"):
            app.add_api_route(path, self.answer, methods=["POST"], include_in_schema=False)
        other_methods = [method for method in ALL_METHODS if method != "POST"]
        app.add_api_route("", self._elsewhere, methods=other_methods, include_in_schema=False)
        app.add_api_route("/{rest:path}", self._elsewhere, methods=ALL_METHODS, include_in_schema=False)
        return app

    async def _elsewhere(self, request: Request) -> Any:
        """405 for another method on the route, 404 for a path below it."""
        if request.scope["path"].rstrip("/") == request.scope.get("root_path", "").rstrip("/"):
            return error_response(MethodNotAllowed(f"{request.method} {self.spec.route}: this route takes POST"))
        return error_response(RouteNotFound(f"no route {request.scope['path']}; this route is {self.spec.route}"))

    # ---- HTTP -------------------------------------------------------------------------

    async def answer(self, request: Request) -> Any:
        """The HTTP answer to one request; every problem becomes an error answer from :mod:`serve.errors`."""
        from fastapi.responses import Response, StreamingResponse

        self._count("requests", 1)
        started = time.monotonic()
        self.reading += 1
        try:
            try:
                call = await self._read(request)
            finally:
                self.reading -= 1
            self._count("rows", len(call.inputs))
            if call.stream:
                return StreamingResponse(self._events(call), media_type="text/event-stream")
            outputs = await self.outputs(call, started)
            if call.shape == "pipeline":
                answer = (
                    self.handler.single_output(outputs[0], call.inputs[0], call.parameters) if call.single else outputs
                )
            else:
                answer = self.handler.task_spec_answer(outputs, call.inputs, call.single, call.parameters)
            if isinstance(answer, bytes):  # a file: text-to-speech's audio, as the task specification answers it
                return Response(
                    answer, media_type=FILE_TYPES.get(self.handler.capabilities.display, "application/octet-stream")
                )
            return Response(json_bytes(answer), media_type="application/json")
        except Exception as exc:  # noqa: BLE001 - every failure gets a JSON answer with its status
            self._count("errors", 1)
            return error_response(exc)

    async def _read(self, request: Any) -> Call:
        check_auth(request.headers.get("authorization"), self.token)
        check_declared_size(request.headers.get("content-length"), self.max_bytes)
        content_type = request.headers.get("content-type")
        if (content_type or "").split(";")[0].strip().lower() == "multipart/form-data":
            call = parse_multipart(await _read_form(request, self.max_bytes))
        else:  # JSON whatever the header says (`curl -d` sends form-urlencoded), or a media task's raw file
            call = parse_body(content_type, await _read_limited(request, self.max_bytes), type(self.handler))
        shape = request.query_params.get("shape", "task")
        if shape not in SHAPES:
            raise MalformedRequest(f"shape {shape!r}: use task (the task specification's answer) or pipeline")
        if shape == "task":
            call = replace(call, parameters=self.handler.task_spec_params(call.parameters))
        return checked_call(self.handler, replace(call, shape=shape))

    async def outputs(self, call: Call, started: float) -> list[Any]:
        """One output per input, batched with the rest of the replica's traffic; raises when a row failed.

        The route's ``request_timeout_s`` counts from ``started`` (when the replica began reading).
        """
        timeout = self.spec.serve.request_timeout_s - (time.monotonic() - started)
        try:
            outcomes = await asyncio.wait_for(self.batcher.run(call.inputs, call.resolved), max(timeout, 0.001))
        except asyncio.TimeoutError:
            raise TimedOut(f"the request took longer than {self.spec.serve.request_timeout_s:g} s") from None
        failed = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, RowError)]
        if failed:
            first_index, first = failed[0]
            message = first.message if call.single else f"input {first_index}: {first.message}"
            errors = [{"index": i, "error": o.message} for i, o in failed]
            raise RowsFailed(message, [o.kind for _, o in failed], errors=errors)
        return outcomes

    async def _events(self, call: Call) -> AsyncIterator[str]:
        async for event in tgi_events(self.stream(call), call.resolved.call):
            if event.startswith('data: {"error"'):
                self._count("errors", 1)
            yield event

    def _count(self, name: str, amount: int) -> None:
        self.counts[name] += amount
        self.metrics[name].inc(amount, tags=self.tags)

    # ---- the model ----------------------------------------------------------------------

    def _batch_ran(self, rows: int) -> None:
        self.batch_sizes.append(rows)
        self.batch_rows.observe(rows, tags=self.tags)

    async def stream(self, call: Call) -> AsyncIterator[Any]:
        """Pieces of one input's answer as the handler produces them (its stream runs in a thread)."""
        pieces = self.handler.stream(call.inputs[0], call.resolved)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece

    # ---- for the index and the demo page (through a deployment handle) --------------------

    async def demo_call(self, value: Any, parameters: dict[str, Any], token: str | None) -> dict[str, Any]:
        """One input from the demo page through the API's checks: ``{"output"}`` or ``{"error", "status"}``."""
        self._count("requests", 1)
        self._count("rows", 1)
        try:
            check_auth(f"Bearer {token}" if token else None, self.token)
            call = checked_call(self.handler, Call([value], True, parameters))
            return {"output": (await self.outputs(call, time.monotonic()))[0]}
        except Exception as exc:  # noqa: BLE001 - the page shows the API's message and status
            self._count("errors", 1)
            return _problem(exc)

    async def api_call(self, inputs: list[Any], parameters: dict[str, Any], token: str | None) -> dict[str, Any]:
        """Inputs from the index's OpenAI-style routes through this route's checks and batches:
        ``{"outputs", "tokens"}`` (each input's token count, for the usage), or ``{"error", "status", ...}``."""
        self._count("requests", 1)
        self._count("rows", len(inputs))
        try:
            check_auth(f"Bearer {token}" if token else None, self.token)
            call = checked_call(self.handler, Call(list(inputs), False, parameters))
            outputs = await self.outputs(call, time.monotonic())
            texts = [value for value in inputs if isinstance(value, str)]
            ids = sum(len(value) for value in inputs if isinstance(value, list))  # inputs given as token ids
            return {"outputs": outputs, "tokens": sum(self.handler.token_counts(texts)) + ids}
        except Exception as exc:  # noqa: BLE001 - the index answers in the caller's protocol
            self._count("errors", 1)
            return _problem(exc)

    async def demo_stream(self, text: Any, parameters: dict[str, Any], token: str | None) -> AsyncIterator[dict]:
        """Generated text pieces for the demo page (``{"token"}``), or one ``{"error", "status"}``."""
        self._count("requests", 1)
        try:
            check_auth(f"Bearer {token}" if token else None, self.token)
            call = checked_call(self.handler, Call([text], True, parameters, stream=True))
            async for token in self.stream(call):
                yield {"token": token.text}
        except Exception as exc:  # noqa: BLE001
            self._count("errors", 1)
            yield _problem(exc)

    def stats(self) -> dict[str, Any]:
        """This replica's request, error and row counts and its recent batch sizes, for ``GET /-/stats``."""
        sizes = list(self.batch_sizes)
        return {
            **self.counts,
            "batches": len(sizes),
            "max_batch_rows": max(sizes, default=0),
            "recent_batch_rows": sizes[-50:],
        }

    def identity(self) -> dict[str, Any]:
        """Task, model and revision as loaded, and whether the route needs a bearer token."""
        return {**self.handler.identity(), "auth": self.token is not None}


def _problem(exc: BaseException) -> dict[str, Any]:
    """An error as the demo page and the index's OpenAI-style routes show it: the API's message and status."""
    return {**error_body(error_message(exc), **getattr(exc, "details", {})), "status": status_of(exc)}


async def _read_limited(request: Any, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it grows past ``max_bytes`` (whatever Content-Length said)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"request body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_form(request: Any, max_bytes: int) -> list[tuple[str, Any]]:
    """A multipart body's fields, files as bytes, no part over ``max_bytes``."""
    from starlette.exceptions import HTTPException as StarletteHTTPException

    try:
        async with request.form(max_part_size=max_bytes) as form:
            return [(k, await v.read() if hasattr(v, "read") else v) for k, v in form.multi_items()]
    except StarletteHTTPException as exc:
        kind = BodyTooLarge if exc.status_code == 413 else MalformedRequest
        raise kind(f"multipart body cannot be read: {exc.detail}") from None
