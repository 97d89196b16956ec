"""Small helpers shared by the test modules."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_json(value: Any) -> Any:
    """An input as a JSON request carries it: bytes (also inside an object) as base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    return value


# Replicas that leave (scaling down, shutting down) drain for 30 s by default, so that HAProxy on
# other nodes stops sending them requests first; on one machine a second is plenty.
TEST_SERVE_ENV = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}


@contextmanager
def running_endpoint(specs: list[dict], name: str, demo: bool = False, ingress: str = "haproxy") -> Iterator[str]:
    """pipefleet's applications for ``specs`` on a local Serve at 127.0.0.1, as ``pipefleet serve``
    deploys them (HAProxy, one application per route); yields the base URL."""
    from ray import serve

    from serve.app import applications, fast_path_env, load_specs

    port = free_port()
    env = {**fast_path_env(ingress), **TEST_SERVE_ENV}
    serve.start(
        http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 60},
        controller_options={"runtime_env": {"env_vars": env}},
    )
    serve.run_many(applications(load_specs(specs, demo=demo), app_name=name))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_serve()


def stop_serve(timeout_s: float = 120) -> None:
    """Shut Serve down and wait until its controller and proxies are gone.

    ``serve.shutdown()`` returns after 30 s even while the controller is still draining replicas (a
    loaded 2-core machine can take longer); a ``serve.start`` meanwhile would find the old proxy actor,
    about to be killed, under the name it wants, and fail with ActorDiedError.
    """
    import time

    import ray
    from ray import serve

    serve.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "serve"]
        if not any(name.startswith("SERVE_") for name in names):
            return
        time.sleep(0.5)
    raise TimeoutError(f"Serve's actors were still alive {timeout_s:g} s after serve.shutdown(): {names}")


def replica_marker(app_name: str, route: str) -> str:
    """What the command line of a route's replica processes holds (Ray names them ServeReplica:<app>:<deployment>)."""
    from serve.app import route_app_name
    from serve.route import ROUTE_DEPLOYMENT

    return f"ServeReplica:{route_app_name(app_name, route)}:{ROUTE_DEPLOYMENT}"
