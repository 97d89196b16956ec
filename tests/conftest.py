"""Test tiers by folder, and the shared fixtures: tiny models built once per session, the real MiniLM, handlers.

Each test is marked with its folder's tier: ``unit`` (no Ray, no Serve), ``jobs``, ``serve``, ``clients``
(the endpoint driven by huggingface_hub's InferenceClient and the openai SDK),
``reliability``, ``cluster`` (several Ray nodes on one machine) and ``gpu`` (a CUDA GPU). A bare
``pytest`` runs the unit tier; ``pytest --tier jobs,serve`` the named ones, ``--tier all`` every
tier (the gpu tier only where CUDA is present: elsewhere it is left out, and the summary says so).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tiers import TIERS
from tests.tiny_models import build_tiny_model, minilm_path

TESTS = Path(__file__).resolve().parent


# --tier itself is declared in the repository's root conftest.py, so that pytest knows it before it reads arguments.
def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("--tier")
    tiers = set(TIERS) if wanted == "all" else {tier.strip() for tier in wanted.split(",") if tier.strip()}
    unknown = sorted(tiers - set(TIERS))
    if unknown:
        raise pytest.UsageError(f"--tier: unknown tier(s) {', '.join(unknown)}; tiers are {', '.join(TIERS)}, all")
    config.pipefleet_tiers = tiers
    config.pipefleet_left_out = []


def _tier_of(item: pytest.Item) -> str:
    relative = Path(str(item.fspath)).resolve().relative_to(TESTS)
    return relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in TIERS else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers = set(config.pipefleet_tiers)
    if "gpu" in tiers and not _has_cuda():
        tiers.discard("gpu")
        config.pipefleet_left_out.append("gpu (no CUDA GPU here)")
    kept, dropped = [], []
    for item in items:
        tier = _tier_of(item)
        item.add_marker(getattr(pytest.mark, tier))
        (kept if tier in tiers else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    ran = ", ".join(sorted(config.pipefleet_tiers - {"gpu"} if config.pipefleet_left_out else config.pipefleet_tiers))
    terminalreporter.write_line(f"tiers run: {ran}")
    for note in config.pipefleet_left_out:
        terminalreporter.write_line(f"tier left out: {note}")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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

    # address="local": a Ray of its own, even where another runs on this machine (ray.init would join that one).
    ray.init(address="local", num_cpus=3, include_dashboard=False, namespace="pipefleet", log_to_driver=False)
    yield ray
    ray.shutdown()
