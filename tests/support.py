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


@contextmanager
def running_endpoint(specs: list[dict], name: str, demo: bool = False) -> Iterator[str]:
    """The pipefleet application for ``specs`` on a local Serve at 127.0.0.1; yields its base URL."""
    from ray import serve

    from serve.app import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 60})
    serve.run(build_app({"specs": specs, "demo": demo}), name=name, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
