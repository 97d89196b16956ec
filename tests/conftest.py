"""Shared fixtures: tiny models built once per test session, the real MiniLM, handlers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_models import build_tiny_model, minilm_path

# Nothing in the tests may reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Keep every Ray process of the tests on the loopback address: on Linux, Ray otherwise
# binds and connects to the machine's own network address even for a local cluster.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``tiny_model(task)`` -> folder of a tiny random model for that task, built once."""
    built: dict[str, Path] = {}

    def get(task: str) -> str:
        if task not in built:
            built[task] = build_tiny_model(task, tmp_path_factory.mktemp(task.replace("-", "_")))
        return str(built[task])

    return get


@pytest.fixture(scope="session")
def minilm() -> str:
    return minilm_path()


@pytest.fixture
def make_handler() -> Callable[..., Any]:
    """``make_handler(task, model, **spec)`` -> a handler whose model is loaded."""
    from pipefleet.registry import handler_class
    from pipefleet.spec import parse_spec

    def make(task: str, model: str, **spec: Any) -> Any:
        parsed = parse_spec({"task": task, "model": model, "device": "cpu", **spec})
        handler = handler_class(parsed.task)(parsed)
        handler.setup()
        return handler

    return make


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the job tests (three logical CPUs, as the job gives a 2-core laptop)."""
    import ray

    ray.init(num_cpus=3, include_dashboard=False, namespace="pipefleet", log_to_driver=False)
    yield ray
    ray.shutdown()
