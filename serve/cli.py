"""``pipefleet serve SPEC.yaml [SPEC2.yaml ...]``: start the endpoint and keep it up until Ctrl-C.

``pipefleet demo SPEC.yaml ...`` is the same with the browser demo page at ``/demo`` for every route.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import yaml

from pipefleet.errors import FatalError
from pipefleet.local_ray import start_local_ray, stop_local_ray
from serve.demo import DEMO_PATH

if TYPE_CHECKING:
    from pipefleet.spec import Spec
    from serve.watch import ReplicaWatch

INGRESSES = ("haproxy", "python")
PROXY_LOCATIONS = ("EveryNode", "HeadOnly")
WATCH_EVERY_S = 2  # how often the running endpoint looks for replicas waiting for room (a status call)


def build_parser(demo: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipefleet demo" if demo else "pipefleet serve",
        description="Serve task handlers over HTTP with Ray Serve, one route per spec"
        + (", with a demo page at /demo for every route." if demo else "."),
    )
    parser.add_argument("specs", nargs="+", help="spec YAML files; one route each")
    parser.add_argument(
        "--host",
        help="address to listen on; 0.0.0.0 for every interface, which a cluster needs so that HAProxy on "
        "one node reaches replicas on the others (default: 127.0.0.1; 0.0.0.0 in --print-config)",
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument(
        "--ingress",
        choices=INGRESSES,
        default="haproxy",
        help="what answers HTTP: haproxy (Ray Serve's HAProxy ingress, the default; falls back to python when "
        "it cannot start) or python (Serve's Python proxy)",
    )
    parser.add_argument(
        "--proxy-location",
        choices=PROXY_LOCATIONS,
        default="EveryNode",
        help="where HTTP is answered: on every node that holds a replica (Serve's default), or on the head only "
        "(for a cluster whose other nodes clients cannot reach, or whose nodes share one address)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the Serve config file for these specs (for serve run / serve deploy) and exit",
    )
    return parser


def start(
    specs: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    demo: bool = False,
    ingress: str = "haproxy",
    proxy_location: str = "EveryNode",
) -> tuple[str, str, bool]:
    """Deploy the applications for ``specs``; return the base URL, the ingress that answers, and
    whether this call started the local Ray it runs on.

    When HAProxy cannot start, says so and starts Serve's Python proxy instead.
    """
    import ray

    from pipefleet.registry import handler_class
    from serve.app import applications, capacity_problems, load_specs

    loaded = load_specs(specs, demo=demo)  # fail on a bad spec before starting anything
    for spec in loaded:
        for program, how in handler_class(spec.task).missing_programs().items():
            print(
                f"pipefleet: warning: {spec.route} ({spec.task}) runs {program} for some inputs, and this machine "
                f"lacks it: such requests will get a 500 saying so; install it where the replicas run: {how}",
                file=sys.stderr,
            )
    address = address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized() and not address
    if address and not ray.is_initialized():
        ray.init(address=address, namespace="serve")
    elif started_here:
        # One logical CPU more than the cores, as the job has: the index's share then fits
        # beside replicas that take every core.
        start_local_ray("serve", spare_cpus=1)
    problems = capacity_problems(loaded, ray.cluster_resources())
    if problems and started_here:
        stop_local_ray()
        raise FatalError("the endpoint cannot start on this machine: " + "; ".join(problems))
    for problem in problems:  # a cluster's autoscaler may be bringing the nodes
        print(f"pipefleet: waiting for the autoscaler: {problem}", file=sys.stderr)
    if not started_here and host in ("127.0.0.1", "localhost") and len(ray.nodes()) > 1:
        print(
            f"pipefleet: note: --host {host} on a cluster of {len(ray.nodes())} nodes: replicas on other nodes "
            "cannot be reached; use --host 0.0.0.0",
            file=sys.stderr,
        )
    ingress = _start_serve(loaded, host, port, ingress, proxy_location)
    from ray import serve

    serve.run_many(applications(loaded))
    for spec in loaded:
        print(f"pipefleet: {spec.route}: {_loaded_as(spec)}", file=sys.stderr)
    return f"http://{host}:{port}", ingress, started_here


def _loaded_as(spec: "Spec") -> str:
    """What one of the route's replicas loaded: the model and the precision it runs in."""
    from ray import serve

    from pipefleet.precision import summary
    from serve.app import APP_NAME, route_app_name
    from serve.route import ROUTE_DEPLOYMENT

    handle = serve.get_deployment_handle(ROUTE_DEPLOYMENT, app_name=route_app_name(APP_NAME, spec.route))

    async def ask() -> dict:
        # Awaited in a loop of its own: with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 exported, this process's
        # handles route on the caller's event loop, and a blocking .result() outside one raises.
        return await asyncio.wait_for(handle.identity.remote(), timeout=60)

    identity = asyncio.run(ask())
    described = identity.get("precision")
    return f"{identity['task']} with {identity['model']}" + (f"; {summary(described)}" if described else "")


def _start_serve(specs: list, host: str, port: int, ingress: str, proxy_location: str = "EveryNode") -> str:
    """Start Serve's controller and ingress with ``ingress``'s settings; HAProxy falls back to Python's proxy."""
    from ray import serve

    from serve.app import fast_path_env, proxy_timeout_s

    http_options = {"host": host, "port": port, "request_timeout_s": proxy_timeout_s(specs)}
    try:
        serve.start(
            proxy_location=proxy_location,
            http_options=http_options,
            controller_options={"runtime_env": {"env_vars": fast_path_env(ingress)}},
        )
        return ingress
    except Exception as exc:  # noqa: BLE001 - HAProxy missing, or it could not bind: say so and go on without it
        if ingress != "haproxy":
            raise
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        print(f"pipefleet: HAProxy could not start ({cause}); using Serve's Python proxy instead", file=sys.stderr)
        serve.shutdown()
    serve.start(
        proxy_location=proxy_location,
        http_options=http_options,
        controller_options={"runtime_env": {"env_vars": fast_path_env("python")}},
    )
    return "python"


def main(argv: Sequence[str] | None = None, demo: bool = False) -> int:
    args = build_parser(demo).parse_args(argv)
    try:
        if args.print_config:
            from serve.app import serve_config

            host = args.host or "0.0.0.0"
            config = serve_config(args.specs, host, args.port, args.ingress, demo, args.proxy_location)
            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        host = args.host or "127.0.0.1"
        url, ingress, started_here = start(
            args.specs, host, args.port, args.address, demo, args.ingress, args.proxy_location
        )
    except FatalError as exc:
        print(f"pipefleet: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"pipefleet: serving {', '.join(args.specs)} at {url} through {ingress} "
        f"(routes: GET {url}/, docs: {url}/docs); Ctrl-C stops"
    )
    specs = _specs(args.specs)
    if demo or any(s.serve.demo for s in specs):
        print(f"pipefleet: demo page at {url}{DEMO_PATH}/")
    # SIGTERM (a service manager, `kill`) stops the endpoint as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from serve.watch import ReplicaWatch

    try:
        _watch(ReplicaWatch(specs, autoscaler=not started_here))
    except KeyboardInterrupt:
        print("pipefleet: stopping", file=sys.stderr)
        _stop(started_here)
    return 0


def _watch(watch: "ReplicaWatch") -> None:
    """Until Ctrl-C: say when replicas that Serve adds (autoscaling, or one replaced) wait for room, and when
    they no longer do. A look that fails (Serve busy, or restarting its controller) is skipped."""
    import ray

    from serve.watch import replica_states

    while True:
        time.sleep(WATCH_EVERY_S)
        try:
            lines = watch.news(replica_states(), ray.available_resources())
        except Exception:  # noqa: BLE001 - only a report: the endpoint keeps serving without it
            continue
        for line in lines:
            print(f"pipefleet: {line}", file=sys.stderr, flush=True)


def _stop(started_here: bool) -> None:
    """Stop the endpoint: the whole local Ray this command started (at once: replicas need not drain), or
    only Serve on a cluster."""
    from ray import serve

    if started_here:
        stop_local_ray()
    else:
        serve.shutdown()


def _specs(paths: list[str]) -> list:
    from pipefleet.spec import load_spec

    return [load_spec(path) for path in paths]


if __name__ == "__main__":
    sys.exit(main())
