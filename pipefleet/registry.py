"""Task name -> handler class. Unknown or duplicate names fail loudly and list the valid ones."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from pipefleet.errors import FatalError

if TYPE_CHECKING:
    from pipefleet.handler import TaskHandler

_HANDLERS: dict[str, type["TaskHandler"]] = {}
_ALIASES: dict[str, str] = {}
# translation_en_to_fr and the like: the translation task with its languages in the name, as pipeline() took them.
# A code may hold one underscore, as NLLB's and mBART's do: translation_eng_Latn_to_fra_Latn.
_TRANSLATION = re.compile(r"translation_([A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)?)_to_([A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)?)")


def translation_languages(name: str) -> tuple[str, str] | None:
    """(source, target) for a task named ``translation_xx_to_yy``, else None."""
    match = _TRANSLATION.fullmatch(name)
    return (match[1], match[2]) if match else None


def register(cls: type["TaskHandler"]) -> type["TaskHandler"]:
    """Class decorator: register a handler under its ``task`` and ``aliases``."""
    for name in (cls.task, *cls.aliases):
        if name in _HANDLERS or name in _ALIASES:
            raise FatalError(f"task name {name!r} is registered twice")
    _HANDLERS[cls.task] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.task
    return cls


def _load_builtin_tasks() -> None:
    # Imported for its side effect of registering every built-in handler; lazily, so that
    # importing the registry stays cheap and free of cycles.
    import pipefleet.tasks  # noqa: F401


def canonical_task(name: str) -> str:
    """The registered task name for ``name`` (a task or an alias); raises with suggestions."""
    _load_builtin_tasks()
    if name in _HANDLERS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    if translation_languages(name) and "translation" in _HANDLERS:
        return "translation"
    known = sorted([*_HANDLERS, *_ALIASES])
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise FatalError(f"unknown task {name!r}{hint} Known tasks: {', '.join(sorted(_HANDLERS))}")


def handler_class(name: str) -> type["TaskHandler"]:
    """The handler class for a task name or alias."""
    return _HANDLERS[canonical_task(name)]


def tasks() -> dict[str, tuple[str, ...]]:
    """Every registered task with its aliases, sorted by name."""
    _load_builtin_tasks()
    return {task: tuple(sorted(a for a, t in _ALIASES.items() if t == task)) for task in sorted(_HANDLERS)}
