"""Checks for task parameters, so a caller's wrong type or value is a clear 4xx, not a model fault.

Each handler maps its parameter names to one of these checks; a check returns nothing or
raises :class:`BadInput` naming the parameter and what it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipefleet.errors import BadInput

Check = Callable[[str, Any], None]


def _fail(name: str, value: Any, wants: str) -> None:
    raise BadInput(f"parameter {name}: {wants}, got {value!r:.60}")


def integer(minimum: int = 0, nullable: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        if value is None and nullable:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(name, value, f"an integer >= {minimum}" + (" or null" if nullable else ""))

    return check


def number(minimum: float = 0.0) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            _fail(name, value, f"a number >= {minimum:g}")

    return check


def boolean() -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, bool):
            _fail(name, value, "true or false")

    return check


def choice(*options: str) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str) or value.lower() not in options:
            _fail(name, value, f"one of {', '.join(options)}")

    return check


def text() -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str):
            _fail(name, value, "a string")

    return check


def texts() -> Check:
    """A string or a list of strings (labels, targets, stop sequences)."""

    def check(name: str, value: Any) -> None:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return
        _fail(name, value, "a string or a list of strings")

    return check


def mapping() -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, dict):
            _fail(name, value, "an object")

    return check


def check_values(checks: dict[str, Check], params: dict[str, Any]) -> None:
    """Run the check of each given parameter."""
    for name, value in params.items():
        checks[name](name, value)
