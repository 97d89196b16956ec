"""The ``--tier`` option, declared at the repository root so that pytest knows it before it reads any argument.

Declared in tests/conftest.py, ``pytest --tier serve`` (or ``jobs``) failed with "unrecognized arguments":
until the option is known, pytest takes ``serve`` for a path, finds the ``serve/`` package there, and
never reads tests/conftest.py. The tiers themselves are chosen and marked in tests/conftest.py.
"""

from __future__ import annotations

import pytest

from tests.tiers import TIERS


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        default="unit",
        help=f"comma-separated tiers to run, of {', '.join(TIERS)}, or all (default: unit)",
    )
