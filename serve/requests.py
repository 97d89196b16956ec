"""Reading an HTTP request into (inputs, parameters), in the shape of the Hugging Face inference API.

Everything here is plain Python over bytes and headers, so it is tested without Serve.
Each problem is raised as one of the kinds of :mod:`serve.errors`, which picks its status.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipefleet.errors import BadInput
from serve.errors import BodyTooLarge, MalformedRequest, Unauthorized

if TYPE_CHECKING:
    from pipefleet.handler import TaskHandler
    from pipefleet.params import StageParams

_TOP_LEVEL_KEYS = {"inputs", "parameters", "stream", "options"}
_URL = re.compile(r"^(https?|ftp|s3|gs|file)://", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class Call:
    """A parsed request: its inputs, whether it sent one input or a list, and its parameters
    (as sent, and once checked, ``resolved`` for the handler's stages)."""

    inputs: list[Any]
    single: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    resolved: "StageParams | None" = None


def check_auth(header: str | None, token: str | None) -> None:
    """401 unless ``header`` is ``Bearer <token>``; no check when no token is configured."""
    if token is None:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong bearer token")


def check_declared_size(content_length: str | None, max_bytes: int) -> None:
    """413 before anything is read when Content-Length already says the body is too big."""
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError:
        raise MalformedRequest("Content-Length is not a number") from None
    if size > max_bytes:
        raise BodyTooLarge(f"request body of {size} bytes is over the limit of {max_bytes} bytes")


def parse_json_body(body: bytes) -> Call:
    """``{"inputs": ..., "parameters": {...}, "stream": false}`` -> :class:`Call`."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedRequest(f'request body must be a JSON object {{"inputs": ...}}, got {type(payload).__name__}')
    unknown = sorted(set(payload) - _TOP_LEVEL_KEYS)
    if unknown:
        raise MalformedRequest(f"unknown key(s) {unknown} in the body; use inputs, parameters, stream")
    if "inputs" not in payload:
        raise MalformedRequest('request body has no "inputs"')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise MalformedRequest(f'"parameters" must be an object, got {type(parameters).__name__}')
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise MalformedRequest('"stream" must be true or false')
    inputs, single = split_inputs(payload["inputs"])
    return Call(inputs, single, parameters, stream)


def parse_multipart(fields: list[tuple[str, Any]]) -> Call:
    """Multipart form fields: ``inputs`` (files or text, repeatable) and ``parameters`` (JSON text)."""
    inputs: list[Any] = []
    parameters: dict[str, Any] = {}
    for name, value in fields:
        if name == "inputs":
            inputs.append(value)
        elif name == "parameters":
            try:
                parameters = json.loads(value)
            except (TypeError, json.JSONDecodeError) as exc:
                raise MalformedRequest(f'form field "parameters" is not valid JSON: {exc}') from None
            if not isinstance(parameters, dict):
                raise MalformedRequest('form field "parameters" must be a JSON object')
        else:
            raise MalformedRequest(f"unknown form field {name!r}; use inputs and parameters")
    if not inputs:
        raise MalformedRequest('the form has no "inputs" field')
    return Call(inputs, len(inputs) == 1, parameters)


def split_inputs(value: Any) -> tuple[list[Any], bool]:
    """One input or a list of them, as ``pipeline()`` reads them: a list of chat messages is one input."""
    if isinstance(value, list):
        if not value:
            raise MalformedRequest('"inputs" is an empty list')
        if all(isinstance(item, dict) and "role" in item for item in value):
            return [value], True
        return value, False
    return [value], True


def binary_input(value: Any, allow_remote: bool) -> Any:
    """A binary task's input from JSON: base64 (plain or a data: URL) becomes bytes.

    A URL or a path on this server would be fetched or opened by the pipeline, so such
    strings pass through only when the operator allowed remote inputs; otherwise they
    are refused, with what to send instead.
    """
    if not isinstance(value, str):
        return value
    if allow_remote and (_URL.match(value) or value.startswith(("/", "./", "~"))):
        return value
    is_data_url = bool(_DATA_URL.match(value))
    payload = value.split(",", 1)[1] if is_data_url else value
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if data:
        return data
    if is_data_url:
        raise BadInput("the data: URL does not hold valid base64")
    what = "a URL" if _URL.match(value) else "not valid base64 (a server path?)"
    raise BadInput(
        f"input is {what}: send the bytes as base64 or as a multipart upload; URLs and server "
        "paths are refused unless serve.allow_remote_inputs is true"
    )


def binary_inputs(inputs: list[Any], allow_remote: bool, field: str) -> list[Any]:
    """:func:`binary_input` for each input, or for its ``field`` when it is an object
    (``{"image": "<base64>", "candidate_labels": [...]}``); a refused one is raised with its position.
    """
    decoded = []
    for index, value in enumerate(inputs):
        try:
            if isinstance(value, dict) and field in value:
                decoded.append({**value, field: binary_input(value[field], allow_remote)})
            else:
                decoded.append(binary_input(value, allow_remote))
        except BadInput as exc:
            raise BadInput(f"input {index}: {exc}") from None
    return decoded


def checked_call(handler: "TaskHandler", call: Call) -> Call:
    """``call`` once its parameters are checked (once: the batch runs them as resolved here) and its
    binary inputs decoded (base64 -> bytes).

    The API and the demo page both pass here, so a caller meets the same rules either way.
    """
    resolved = handler.resolve(call.parameters)
    if call.stream and not (handler.capabilities.streaming and call.single):
        raise MalformedRequest(f'"stream": true works for {" or ".join(streaming_tasks())} with one input')
    inputs = call.inputs
    if handler.capabilities.media:
        allow_remote = handler.spec.serve.allow_remote_inputs
        inputs = binary_inputs(inputs, allow_remote, handler.input_names()[0])
    return replace(call, inputs=inputs, resolved=resolved)


def streaming_tasks() -> list[str]:
    """The tasks whose handlers declare streaming."""
    from pipefleet.registry import handler_class, tasks

    return [task for task in tasks() if handler_class(task).capabilities.streaming]
