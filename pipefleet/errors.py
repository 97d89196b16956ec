"""One error taxonomy for pipefleet.

The adapters map these once each: ``jobs/`` turns row-level errors into the ``error``
column, ``serve/`` turns them into HTTP statuses. Anything else that escapes a handler
is a real fault (a 500 online, a failed task offline).
"""

from __future__ import annotations

from dataclasses import dataclass


class PipefleetError(Exception):
    """Base class of every error pipefleet raises on purpose."""


class BadInput(PipefleetError):
    """The caller's input or parameters cannot be used (a 4xx online, a row error offline)."""


class BadParameter(BadInput):
    """A parameter the task does not take, or a value of the wrong type (a 400 online, a spec error offline)."""


class ServerFault(PipefleetError):
    """The server lacks something it needs for this input, such as a program: the operator's to fix (a 500)."""


class ModelError(PipefleetError):
    """The model failed on an input that looked valid (a row error offline, 500 online)."""


class FatalError(PipefleetError):
    """Nothing can proceed: a broken spec, a model that cannot load, a missing package."""


class JobFailed(PipefleetError):
    """A job stopped partway (a write failed, the cluster went away); what it committed is kept."""


class SpecError(FatalError):
    """The spec file is invalid; the message says what to change."""


@dataclass(frozen=True)
class RowError:
    """The outcome of one row that could not be processed; its neighbours are unaffected."""

    message: str
    kind: str = "bad_input"  # "bad_input" | "model_error" | "server_error"

    @classmethod
    def from_exception(cls, exc: BaseException, kind: str = "bad_input") -> "RowError":
        """A row error whose message names the exception's type unless it is one of ours."""
        if isinstance(exc, ModelError):
            kind = "model_error"
        elif isinstance(exc, ServerFault):
            kind = "server_error"
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, PipefleetError):
            text = f"{type(exc).__name__}: {text}"
        return cls(message=text, kind=kind)
