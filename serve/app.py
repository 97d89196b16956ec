"""The Serve application: a FastAPI gateway in front of one model deployment per spec.
``serve run serve/config.yaml`` and ``pipefleet serve SPEC.yaml ...`` both build it with
:func:`build_app`. The gateway reads and checks requests (size, auth, JSON shape,
parameters), routes them to the model's deployment, and maps the error taxonomy to HTTP
statuses; the model deployments batch and run the handlers.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipefleet.errors import BadInput, FatalError
from pipefleet.registry import handler_class
from pipefleet.spec import Spec, load_spec, parse_spec
from serve.model import ModelServer
from serve.requests import (
    Call,
    HTTPProblem,
    binary_inputs,
    check_auth,
    check_declared_size,
    parse_json_body,
    parse_multipart,
)

RETRY_AFTER_S = 1
GATEWAY_CPUS = 0.1  # the gateway only reads requests and awaits the model deployments


@dataclass(frozen=True)
class Route:
    """What the gateway knows of one model: its spec and its deployment's handle."""

    spec: Spec
    handle: DeploymentHandle

    @property
    def handler(self) -> type:
        """The task's handler class: its parameter checks and single-input shape."""
        return handler_class(self.spec.task)

    @property
    def token(self) -> str | None:
        env = self.spec.serve.auth_token_env
        return os.environ.get(env) if env else None


def checked_call(route: Route, call: Call) -> Call:
    """``call`` once its parameters are checked and its binary inputs decoded (base64 -> bytes).

    The API and the demo page both pass here, so a caller meets the same rules either way.
    """
    try:
        route.handler.check_params(call.parameters)
    except BadInput as exc:
        raise HTTPProblem(400, str(exc)) from None
    if route.handler.media:
        decoded = binary_inputs(call.inputs, route.spec.serve.allow_remote_inputs, route.handler.input_names[0])
        call = Call(decoded, call.single, call.parameters, call.stream)
    if call.stream and (route.spec.task != "text-generation" or not call.single):
        raise HTTPProblem(400, '"stream": true works for text-generation with one input')
    return call


def problem(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it grows past ``max_bytes`` (whatever Content-Length said)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPProblem(413, f"request body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


app = FastAPI(title="pipefleet", description="Hugging Face pipelines served by Ray Serve.")


@serve.deployment(max_ongoing_requests=1000, ray_actor_options={"num_cpus": GATEWAY_CPUS})
@serve.ingress(app)
class Gateway:
    """HTTP front door: ``POST <route>``, ``GET /``, ``GET /-/stats``, ``/docs``.

    ``GET /-/healthz`` and ``GET /-/routes`` are answered by Serve's proxy itself.
    """

    def __init__(self, specs: list[str], handles: list[DeploymentHandle]) -> None:
        from ray.serve.metrics import Counter

        self.routes = {s.route: Route(s, h) for s, h in zip((parse_spec(json.loads(x)) for x in specs), handles)}
        for route in self.routes.values():
            if route.spec.serve.auth_token_env and route.token is None:
                raise FatalError(
                    f"serve.auth_token_env names {route.spec.serve.auth_token_env}, which is not set where the "
                    "gateway runs; export it before starting Ray (or pipefleet serve) on the serving nodes"
                )
        tags = ("route",)
        self.metrics = {
            "requests": Counter("pipefleet_requests", "Requests per route.", tag_keys=tags),
            "errors": Counter("pipefleet_request_errors", "Requests answered with an error status.", tag_keys=tags),
            "rows": Counter("pipefleet_rows", "Input rows per route.", tag_keys=tags),
        }
        self.counts: dict[str, dict[str, int]] = {r: {"requests": 0, "errors": 0, "rows": 0} for r in self.routes}

    @app.get("/")
    async def index(self) -> dict[str, Any]:
        """The deployed routes with task, model and revision."""
        routes = []
        for path, route in self.routes.items():
            identity = await route.handle.identity.remote()
            routes.append({"route": path, **identity, "auth": route.token is not None})
        return {"routes": routes}

    @app.get("/-/stats")
    async def stats(self) -> dict[str, Any]:
        """Per-route request, error and row counts of this gateway replica, and the models' batch sizes."""
        result = {}
        for path, route in self.routes.items():
            result[path] = {**self.counts[path], **await route.handle.stats.remote()}
        return result

    @app.post("/{path:path}")
    async def call(self, path: str, request: Request) -> Response:
        """Run the route's task on ``{"inputs": ..., "parameters": {...}}`` (or a multipart form)."""
        route = self.routes.get("/" + path)
        if route is None:
            return problem(404, f"no route /{path}; routes: {', '.join(sorted(self.routes))}")
        self._count(route, "requests", 1)
        try:
            call = await self._read(route, request)
            self._count(route, "rows", len(call.inputs))
            if call.stream:
                return await self._stream(route, call)
            return await self._predict(route, call)
        except HTTPProblem as exc:
            self._count(route, "errors", 1)
            return problem(exc.status, exc.message, exc.headers, **exc.details)

    def __serve_build_asgi_app__(self) -> Any:
        """The gateway's ASGI app, with the demo page mounted when a spec asks for it (called by Serve at start)."""
        app = self._asgi_app
        shown = [route for route in self.routes.values() if route.spec.serve.demo]
        if shown:
            from serve.demo import mount_demo

            mount_demo(app, shown, self._demo_run, self._demo_stream)
        return app

    async def _demo_run(self, route: Route, value: Any, parameters: dict[str, Any], token: str | None) -> Any:
        """One input from the demo page, through the API's checks, counts and batched deployment."""
        self._count(route, "requests", 1)
        self._count(route, "rows", 1)
        try:
            check_auth(f"Bearer {token}" if token else None, route.token)
            return (await self._run(route, checked_call(route, Call([value], True, parameters))))[0]
        except HTTPProblem:
            self._count(route, "errors", 1)
            raise

    async def _demo_stream(self, route: Route, text: Any, parameters: dict[str, Any], token: str | None) -> Any:
        """Generated text pieces for the demo page, as ``"stream": true`` gives them to the API."""
        self._count(route, "requests", 1)
        check_auth(f"Bearer {token}" if token else None, route.token)
        call = checked_call(route, Call([text], True, parameters, stream=True))
        async for piece in route.handle.options(stream=True).stream.remote(call.inputs[0], call.parameters):
            yield piece

    def _count(self, route: Route, name: str, amount: int) -> None:
        self.counts[route.spec.route][name] += amount
        self.metrics[name].inc(amount, tags={"route": route.spec.route})

    async def _read(self, route: Route, request: Request) -> Call:
        settings = route.spec.serve
        check_auth(request.headers.get("authorization"), route.token)
        max_bytes = int(settings.max_body_mb * 1024 * 1024)
        check_declared_size(request.headers.get("content-length"), max_bytes)
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            try:
                async with request.form(max_part_size=max_bytes) as form:
                    fields = [(k, await v.read() if hasattr(v, "read") else v) for k, v in form.multi_items()]
            except StarletteHTTPException as exc:
                raise HTTPProblem(exc.status_code, f"multipart body cannot be read: {exc.detail}") from None
            call = parse_multipart(fields)
        else:  # JSON, whatever the header says: `curl -d` sends form-urlencoded by default
            call = parse_json_body(await _read_limited(request, max_bytes))
        return checked_call(route, call)

    async def _predict(self, route: Route, call: Call) -> Response:
        outputs = await self._run(route, call)
        if call.single:
            return JSONResponse(route.handler.single_output(outputs[0], call.inputs[0], call.parameters))
        return JSONResponse(outputs)

    async def _run(self, route: Route, call: Call) -> list[Any]:
        """One output per input through the route's batched deployment, or the HTTPProblem that says why not."""
        outcomes = await self._await(route, route.handle.predict.remote(call.inputs, call.parameters))
        errors = [(i, o) for i, o in enumerate(outcomes) if "error" in o]
        if errors:
            status = 500 if any(o["kind"] == "model_error" for _, o in errors) else 422
            first_index, first = errors[0]
            message = first["error"] if call.single else f"input {first_index}: {first['error']}"
            raise HTTPProblem(status, message, errors=[{"index": i, "error": o["error"]} for i, o in errors])
        return [o["output"] for o in outcomes]

    async def _await(self, route: Route, response: Any) -> Any:
        """The deployment's answer, or the HTTP problem that stands for why there is none."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        retry = {"Retry-After": str(RETRY_AFTER_S)}
        try:
            return await asyncio.wait_for(response, timeout=route.spec.serve.request_timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            raise HTTPProblem(504, f"the request took longer than {route.spec.serve.request_timeout_s} s") from None
        except BackPressureError:
            raise HTTPProblem(503, "overloaded: too many queued requests; retry later", retry) from None
        except (DeploymentUnavailableError, ActorDiedError, ActorUnavailableError, RayActorError) as exc:
            raise HTTPProblem(503, f"model replica unavailable ({type(exc).__name__}); retry", retry) from None

    async def _stream(self, route: Route, call: Call) -> Response:
        generator = route.handle.options(stream=True).stream.remote(call.inputs[0], call.parameters)

        async def events():
            try:
                async for piece in generator:
                    yield f"data: {json.dumps({'token': piece})}\n\n"
            except Exception as exc:  # the status is sent already; report in the stream
                yield f"data: {json.dumps({'error': str(exc)})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def model_deployment(spec: Spec) -> Any:
    """The bound model deployment of one spec, with its batching, scaling and backpressure settings."""
    settings = spec.serve
    options: dict[str, Any] = {
        "name": f"model{spec.route.replace('/', '-')}",
        "ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "backpressure_config": BackpressureConfig(retry_after_s=RETRY_AFTER_S),
    }
    if settings.autoscaling:
        options["autoscaling_config"] = settings.autoscaling.model_dump()
    else:
        options["num_replicas"] = 1
    return serve.deployment(ModelServer).options(**options).bind(spec.model_dump_json())


def load_specs(specs: list[Any]) -> list[Spec]:
    """Specs from file paths or inline mappings; routes must be distinct."""
    loaded = [load_spec(s) if isinstance(s, str) else parse_spec(s, source="inline spec") for s in specs]
    if not loaded:
        raise FatalError("no spec given: pass at least one spec file")
    routes = [s.route for s in loaded]
    duplicates = sorted({r for r in routes if routes.count(r) > 1})
    if duplicates:
        raise FatalError(f"two specs share the route(s) {duplicates}; set serve.route in one of them")
    return loaded


def capacity_problems(specs: list[Spec], resources: dict[str, float]) -> list[str]:
    """What the gateway and the routes' first replicas need beyond ``resources`` (``ray.cluster_resources()``).

    Serve waits without end for a replica it cannot place; this says so before it waits.
    """
    problems = []
    for resource, per_replica, base in (("CPU", "num_cpus", GATEWAY_CPUS), ("GPU", "num_gpus", 0.0)):
        wants = [(s.route, _first_replicas(s), getattr(s.serve, per_replica)) for s in specs]
        need = base + sum(count * amount for _, count, amount in wants)
        have = resources.get(resource, 0.0)
        if need > have + 1e-9:
            parts = ", ".join(f"{route} {count} x {amount:g}" for route, count, amount in wants if count * amount)
            gateway = f", the gateway {base:g}" if base else ""
            problems.append(
                f"the replicas need {need:g} {resource}s ({parts}{gateway}) and Ray has {have:g}; "
                f"lower serve.{per_replica} or autoscaling.min_replicas, or add nodes"
            )
    return problems


def _first_replicas(spec: Spec) -> int:
    return spec.serve.autoscaling.min_replicas if spec.serve.autoscaling else 1


def build_app(args: dict[str, Any]) -> Any:
    """Application builder for ``serve run`` / ``serve deploy``: ``args = {"specs": [path or mapping, ...]}``.

    ``"demo": true`` in ``args`` shows every route on the demo page, as ``serve.demo: true`` does for one.
    """
    specs = load_specs(list(args.get("specs") or []))
    if args.get("demo"):
        specs = [s.model_copy(update={"serve": s.serve.model_copy(update={"demo": True})}) for s in specs]
    return Gateway.bind([s.model_dump_json() for s in specs], [model_deployment(s) for s in specs])
