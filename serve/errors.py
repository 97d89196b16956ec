"""The one place where the endpoint picks an HTTP status: every error it answers is mapped here.

Request-level problems are raised as the exceptions below (or as the core's
:class:`~pipefleet.errors.PipefleetError` kinds) and turned into a JSON answer by
:func:`error_response`; a row's :class:`~pipefleet.errors.RowError` kind maps through
:func:`status_of_rows`. Routes, the index and the demo page all use these, so one kind of
problem gets one status everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipefleet.errors import BadInput, BadParameter, ModelError, PipefleetError, ServerFault

RETRY_AFTER_S = 1  # what a refused or orphaned request is told to wait before retrying


class RequestError(Exception):
    """A request the endpoint refuses; the subclass names why, :data:`STATUS` says with which status."""

    headers: dict[str, str] = {}

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # extra JSON fields of the answer, such as per-input errors


class MalformedRequest(RequestError):
    """The body or headers cannot be read as a request (bad JSON, unknown keys, bad form)."""


class Unauthorized(RequestError):
    """No bearer token, or the wrong one."""

    headers = {"WWW-Authenticate": "Bearer"}


class RouteNotFound(RequestError):
    """No route at this path."""


class MethodNotAllowed(RequestError):
    """The path exists but does not take this method."""


class BodyTooLarge(RequestError):
    """The body is over the route's ``max_body_mb``."""


class Overloaded(RequestError):
    """The route's queue is full."""

    headers = {"Retry-After": str(RETRY_AFTER_S)}


class ReplicaUnavailable(RequestError):
    """The replica that held the request is gone; another one will take a retry."""

    headers = {"Retry-After": str(RETRY_AFTER_S)}


class TimedOut(RequestError):
    """The request ran past the route's ``request_timeout_s``."""


class RowsFailed(RequestError):
    """Rows of a request could not be processed; ``kinds`` are their :class:`~pipefleet.errors.RowError` kinds."""

    def __init__(self, message: str, kinds: list[str], **details: Any) -> None:
        super().__init__(message, **details)
        self.kinds = kinds


STATUS: dict[type[Exception], int] = {
    MalformedRequest: 400,
    BadParameter: 400,  # a parameter unknown to the task, or of the wrong type
    Unauthorized: 401,
    RouteNotFound: 404,
    MethodNotAllowed: 405,
    BodyTooLarge: 413,
    BadInput: 422,  # a well-formed request whose input the task cannot take
    ModelError: 500,
    ServerFault: 500,  # the server lacks a program or file: the operator's to fix, not the caller's
    Overloaded: 503,
    ReplicaUnavailable: 503,
    TimedOut: 504,
}
ROW_KIND_STATUS = {"bad_input": 422, "model_error": 500, "server_error": 500}


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc``: its rows' worst kind, or its nearest class's in :data:`STATUS`, else 500."""
    if isinstance(exc, RowsFailed):
        return status_of_rows(exc.kinds)
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def status_of_rows(kinds: Iterable[str]) -> int:
    """The status of an answer whose rows failed with these :class:`~pipefleet.errors.RowError` kinds."""
    return max(ROW_KIND_STATUS.get(kind, 500) for kind in kinds)


def error_body(message: str, **details: Any) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"error": message, ...details}``."""
    return {"error": message, **details}


def error_message(exc: BaseException) -> str:
    """What the caller is told: our own errors' messages as they are, anything else with its type."""
    if isinstance(exc, (RequestError, PipefleetError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def error_response(exc: BaseException) -> Any:
    """The JSON answer for ``exc``, with its status and headers (``Retry-After``, ``WWW-Authenticate``)."""
    from fastapi.responses import JSONResponse

    body = error_body(error_message(exc), **getattr(exc, "details", {}))
    return JSONResponse(body, status_code=status_of(exc), headers=getattr(exc, "headers", None) or None)
