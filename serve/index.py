"""The endpoint's index at ``/``: the route list, stats, the OpenAPI document and the demo page.

It is an application of its own, beside one application per route, and is never on a
route's request path: Serve's ingress sends ``POST /embeddings`` straight to the route's
replicas (the longest route prefix wins), and only what no route claims reaches here. It
reaches the routes through their deployment handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ray import serve
from starlette.requests import Request

from pipefleet.spec import Spec, parse_spec
from serve.errors import MethodNotAllowed, RouteNotFound, error_response
from serve.route import ALL_METHODS, ROUTE_DEPLOYMENT

INDEX_PATHS = {
    "/": "GET",
    "/-/stats": "GET",
    "/openapi.json": "GET",
    "/docs": "GET",
    "/v1/embeddings": "POST",
    "/v1/rerank": "POST",
    "/v1/models": "GET",
}


@dataclass
class Route:
    """What the index knows of one route: its spec and how to reach its deployment."""

    spec: Spec
    app_name: str
    _handle: Any = None

    @property
    def handle(self) -> Any:
        # Made on first use: the route's application may still be deploying when the index starts.
        if self._handle is None:
            self._handle = serve.get_deployment_handle(ROUTE_DEPLOYMENT, app_name=self.app_name)
        return self._handle

    @property
    def handler(self) -> type:
        """The task's handler class: its inputs, media kind and parameters."""
        from pipefleet.registry import handler_class

        return handler_class(self.spec.task)

    @property
    def needs_token(self) -> bool:
        return self.spec.serve.auth_token_env is not None


@serve.ingress()
class Index:
    """Serve deployment class of the index (options in :mod:`serve.app`)."""

    def __init__(self, routes: list[tuple[str, str]]) -> None:
        """``routes``: (spec as JSON, the name of the route's application) for each route."""
        self.routes = {s.route: Route(s, name) for s, name in ((parse_spec(json.loads(j)), n) for j, n in routes)}

    def __serve_build_asgi_app__(self) -> Any:
        """The index's HTTP app, with the demo page mounted when a spec asks for it (Serve calls it)."""
        from fastapi import FastAPI

        from serve.openai import mount_openai
        from serve.openapi import endpoint_openapi

        app = FastAPI(title="pipefleet", description="Hugging Face pipelines served by Ray Serve.")
        app.openapi = lambda: endpoint_openapi([route.spec for route in self.routes.values()])

        @app.get("/", include_in_schema=False)
        async def index() -> dict[str, Any]:
            """The deployed routes with task, model, revision and whether they need a token."""
            routes = []
            for path, route in self.routes.items():
                identity = await route.handle.identity.remote()
                routes.append({"route": path, **identity})
            return {"routes": routes}

        @app.get("/-/stats", include_in_schema=False)
        async def stats() -> dict[str, Any]:
            """Per route: requests, errors and rows, and recent batch sizes, as one of its replicas counted them."""
            return {path: await route.handle.stats.remote() for path, route in self.routes.items()}

        async def elsewhere(request: Request) -> Any:
            """What no route and no page claims: 405 for a known path, else 404 with the routes."""
            path = request.scope["path"]
            known = INDEX_PATHS.get(path)
            if known:
                return error_response(MethodNotAllowed(f"{request.method} {path}: this path takes {known}"))
            return error_response(RouteNotFound(f"no route {path}; routes: {', '.join(sorted(self.routes))}"))

        mount_openai(app, self.routes)
        app.add_api_route("/{path:path}", elsewhere, methods=ALL_METHODS, include_in_schema=False)

        shown = [route for route in self.routes.values() if route.spec.serve.demo]
        if shown:
            from serve.demo import mount_demo

            mount_demo(app, shown, _demo_run, _demo_stream)
        return app


async def _demo_run(route: Route, value: Any, parameters: dict[str, Any], token: str | None) -> dict[str, Any]:
    """One input from the demo page, through the route replica's own checks and batches."""
    return await route.handle.demo_call.remote(value, parameters, token)


async def _demo_stream(route: Route, text: Any, parameters: dict[str, Any], token: str | None) -> Any:
    """Generated text pieces for the demo page, as ``"stream": true`` gives them to the API."""
    async for event in route.handle.options(stream=True).demo_stream.remote(text, parameters, token):
        yield event
