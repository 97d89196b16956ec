"""Serve applications from specs: one per route, whose ingress is the route's model deployment,
plus the index at ``/``.

``pipefleet serve SPEC.yaml ...`` deploys them with :func:`applications`; ``serve run`` and
``serve deploy`` take a config with one entry per application (:func:`serve_config` writes
it), built by :func:`route_app` and :func:`index_app`.
"""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve.config import BackpressureConfig

from pipefleet.errors import FatalError
from pipefleet.spec import Spec, load_spec, parse_spec
from serve.errors import RETRY_AFTER_S
from serve.index import Index
from serve.route import ROUTE_DEPLOYMENT, RouteServer

APP_NAME = "pipefleet"  # the index's application; a route's is this name plus its route
INDEX_CPUS = 0.1  # the index only lists routes and serves the docs and the demo page

# Serve's fast request path, set where its controller starts (so its proxies and replicas see it):
# HAProxy answers HTTP and sends each request straight to a route replica's own HTTP server.
# Inference is idempotent, so a request that a replica took and died with (HAProxy saw an empty
# response) is replayed once on another replica instead of failing; once, so that an input that
# kills its replica cannot take down a second one and then a third.
# HAProxy replays only a request it had whole before sending it on: one whose body was still
# arriving when its replica died got HAProxy's 502, which Serve turns into a bare 500 (seen in
# test_serve_faults under CPU contention). `option http-buffer-request` makes HAProxy read the
# body first, up to one buffer (Serve's tune.bufsize, 16 KB): larger bodies (images, audio) are
# still sent as they come and cannot be replayed. Serve 2.60 has no setting for the option
# (HAProxyConfig.custom_defaults is never rendered), but it writes RETRY_ON verbatim as a line of
# the `defaults` section, and nowhere else, so the option rides on that value as a line of its
# own; test_haproxy_config checks both in the template Serve renders.
HAPROXY_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response\n    option http-buffer-request",
    "RAY_SERVE_HAPROXY_RETRIES": "1",
}
# Less per-request bookkeeping in the replicas (buffered access logs, no logging to stderr, user code
# on the replica's event loop: pipefleet runs the model in a thread). Measured in bench/serve.py.
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def fast_path_env(ingress: str) -> dict[str, str]:
    """The Serve settings for ``ingress``: ``haproxy`` (the default) or ``python`` (Serve's Python proxy).

    A setting the environment already holds wins (``RAY_SERVE_THROUGHPUT_OPTIMIZED=0`` turns that mode off).
    """
    if ingress not in ("haproxy", "python"):
        raise FatalError(f"ingress {ingress!r}: use haproxy or python")
    wanted = {**(HAPROXY_ENV if ingress == "haproxy" else {}), **THROUGHPUT_ENV}
    return {name: os.environ.get(name, value) for name, value in wanted.items()}


def route_app_name(app_name: str, route: str) -> str:
    """The Serve application of ``route`` beside the index ``app_name``: ``/embeddings`` -> ``pipefleet-embeddings``."""
    return app_name + route.replace("/", "-")


def route_deployment(spec: Spec) -> Any:
    """The bound deployment of one route, with its batching, scaling and backpressure settings."""
    settings = spec.serve
    options: dict[str, Any] = {
        "name": ROUTE_DEPLOYMENT,
        "ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "backpressure_config": BackpressureConfig(retry_after_s=RETRY_AFTER_S),
    }
    if settings.autoscaling:
        options["autoscaling_config"] = settings.autoscaling.model_dump()
    else:
        options["num_replicas"] = 1
    return serve.deployment(RouteServer).options(**options).bind(spec.model_dump_json())


def index_deployment(specs: list[Spec], app_name: str = APP_NAME) -> Any:
    """The bound index deployment, knowing each route's spec and application."""
    routes = [(s.model_dump_json(), route_app_name(app_name, s.route)) for s in specs]
    return serve.deployment(Index).options(name="index", ray_actor_options={"num_cpus": INDEX_CPUS}).bind(routes)


def load_specs(specs: list[Any], demo: bool = False) -> list[Spec]:
    """Specs from file paths or inline mappings; routes must be distinct. ``demo`` shows every route on the page."""
    loaded = [load_spec(s) if isinstance(s, str) else parse_spec(s, source="inline spec") for s in specs]
    if not loaded:
        raise FatalError("no spec given: pass at least one spec file")
    routes = [s.route for s in loaded]
    duplicates = sorted({r for r in routes if routes.count(r) > 1})
    if duplicates:
        raise FatalError(f"two specs share the route(s) {duplicates}; set serve.route in one of them")
    if demo:
        loaded = [s.model_copy(update={"serve": s.serve.model_copy(update={"demo": True})}) for s in loaded]
    return loaded


def applications(specs: list[Spec], app_name: str = APP_NAME) -> list[Any]:
    """``serve.run_many`` targets: one application per route at its route, and the index at ``/``."""
    from ray.serve.api import RunTarget

    targets = [
        RunTarget(route_deployment(s), name=route_app_name(app_name, s.route), route_prefix=s.route) for s in specs
    ]
    return [*targets, RunTarget(index_deployment(specs, app_name), name=app_name, route_prefix="/")]


def route_app(args: dict[str, Any]) -> Any:
    """Application builder of one route for ``serve run`` / ``serve deploy``: ``args = {"spec": path or mapping}``."""
    return route_deployment(load_specs([args.get("spec")])[0])


def index_app(args: dict[str, Any]) -> Any:
    """Application builder of the index: ``args = {"specs": [...], "name": APP_NAME, "demo": false}``.

    ``name`` is the index's application name, from which the routes' application names follow.
    """
    specs = load_specs(list(args.get("specs") or []), demo=bool(args.get("demo")))
    return index_deployment(specs, args.get("name", APP_NAME))


def serve_config(
    specs: list[str],
    host: str = "0.0.0.0",
    port: int = 8000,
    ingress: str = "haproxy",
    demo: bool = False,
    proxy_location: str = "EveryNode",
) -> dict[str, Any]:
    """The Serve config (``serve run``, ``serve deploy``) for spec files: an application per route, and the index."""
    loaded = load_specs(specs, demo=demo)
    routes = [
        {
            "name": route_app_name(APP_NAME, spec.route),
            "route_prefix": spec.route,
            "import_path": "serve.app:route_app",
            "args": {"spec": path},
        }
        for path, spec in zip(specs, loaded)
    ]
    index = {"name": APP_NAME, "route_prefix": "/", "import_path": "serve.app:index_app", "args": {"specs": specs}}
    if demo:
        index["args"]["demo"] = True
    return {
        "proxy_location": proxy_location,
        "http_options": {"host": host, "port": port, "request_timeout_s": proxy_timeout_s(loaded)},
        "controller_options": {"runtime_env": {"env_vars": fast_path_env(ingress)}},
        "applications": [*routes, index],
    }


def proxy_timeout_s(specs: list[Spec]) -> float:
    """Serve's own request timeout: above every route's ``request_timeout_s``, which the routes enforce (504)."""
    return max(s.serve.request_timeout_s for s in specs) + 5


def capacity_problems(specs: list[Spec], resources: dict[str, float]) -> list[str]:
    """What the index and the routes' first replicas need beyond ``resources`` (``ray.cluster_resources()``).

    Serve waits without end for a replica it cannot place; this says so before it waits.
    """
    problems = []
    for resource, per_replica, base in (("CPU", "num_cpus", INDEX_CPUS), ("GPU", "num_gpus", 0.0)):
        wants = [(s.route, _first_replicas(s), getattr(s.serve, per_replica)) for s in specs]
        need = base + sum(count * amount for _, count, amount in wants)
        have = resources.get(resource, 0.0)
        if need > have + 1e-9:
            parts = ", ".join(f"{route} {count} x {amount:g}" for route, count, amount in wants if count * amount)
            index = f", the index {base:g}" if base else ""
            problems.append(
                f"the replicas need {need:g} {resource}s ({parts}{index}) and Ray has {have:g}; "
                f"lower serve.{per_replica} or autoscaling.min_replicas, or add nodes"
            )
    return problems


def _first_replicas(spec: Spec) -> int:
    return spec.serve.autoscaling.min_replicas if spec.serve.autoscaling else 1
