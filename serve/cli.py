"""``pipefleet serve SPEC.yaml [SPEC2.yaml ...]``: start the endpoint and keep it up until Ctrl-C.

``pipefleet demo SPEC.yaml ...`` is the same with the browser demo page at ``/demo`` for every route.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from pipefleet.errors import FatalError
from pipefleet.spec import load_spec
from serve.demo import DEMO_PATH

APP_NAME = "pipefleet"


def build_parser(demo: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipefleet demo" if demo else "pipefleet serve",
        description="Serve task handlers over HTTP with Ray Serve"
        + (", with a demo page at /demo for every route." if demo else "."),
    )
    parser.add_argument("specs", nargs="+", help="spec YAML files; one route each")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    return parser


def start(
    specs: list[str], host: str = "127.0.0.1", port: int = 8000, address: str | None = None, demo: bool = False
) -> str:
    """Deploy the application for ``specs`` (with the demo page for every route if ``demo``); return its base URL."""
    import ray
    from ray import serve

    from serve.app import build_app, capacity_problems, load_specs

    loaded = load_specs(specs)  # fail on a bad spec before starting anything
    address = address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized() and not address
    if address and not ray.is_initialized():
        ray.init(address=address, namespace="serve")
    elif started_here:
        # One logical CPU more than the cores, as the job does: the gateway's share then fits
        # beside replicas that take every core.
        ray.init(namespace="serve", include_dashboard=False, num_cpus=(os.cpu_count() or 1) + 1)
    problems = capacity_problems(loaded, ray.cluster_resources())
    if problems and started_here:
        ray.shutdown()
        raise FatalError("the endpoint cannot start on this machine: " + "; ".join(problems))
    for problem in problems:  # a cluster's autoscaler may be bringing the nodes
        print(f"pipefleet: waiting for the autoscaler: {problem}", file=sys.stderr)
    # The proxy's own timeout sits above every route's, which the gateway enforces itself (504).
    timeout = max(s.serve.request_timeout_s for s in loaded) + 5
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": timeout})
    serve.run(build_app({"specs": specs, "demo": demo}), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}"


def main(argv: Sequence[str] | None = None, demo: bool = False) -> int:
    args = build_parser(demo).parse_args(argv)
    try:
        url = start(args.specs, args.host, args.port, args.address, demo)
    except FatalError as exc:
        print(f"pipefleet: error: {exc}", file=sys.stderr)
        return 2
    print(f"pipefleet: serving {', '.join(args.specs)} at {url} (routes: GET {url}/, docs: {url}/docs); Ctrl-C stops")
    if demo or any(load_spec(s).serve.demo for s in args.specs):
        print(f"pipefleet: demo page at {url}{DEMO_PATH}/")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
