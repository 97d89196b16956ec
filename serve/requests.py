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
_FILE_TYPES = ("image/", "audio/", "video/", "application/octet-stream")  # a media task's raw file
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
    shape: str = "task"  # the answer's shape: the task specification's, or pipeline()'s (?shape=pipeline)


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


def parse_body(content_type: str | None, body: bytes, handler: "type[TaskHandler] | None" = None) -> Call:
    """A JSON body, or for a media task a raw file (``image/*``, ``audio/*``, ``video/*``,
    ``application/octet-stream``, or no content type and a body that is not JSON), as
    ``huggingface_hub.InferenceClient`` posts an image or a recording without parameters."""
    media = handler.capabilities.media if handler is not None else None
    kind = (content_type or "").split(";")[0].strip().lower()
    if media and (kind.startswith(_FILE_TYPES) or (not kind and not _looks_like_json(body))):
        if not body:
            raise BadInput(f"the {media} file is empty (0 bytes)")
        return Call([body], True)
    return parse_json_body(body, handler)


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[", b'"')


def parse_json_body(body: bytes, handler: "type[TaskHandler] | None" = None) -> Call:
    """``{"inputs": ..., "parameters": {...}, "stream": false}`` -> :class:`Call`.

    As the Hugging Face task specifications allow, a task's parameter may also stand at the top
    level (feature-extraction's ``normalize``, ``truncate``), and so may its named inputs beside
    ``inputs`` (visual-question-answering's ``question``); a named input given in ``parameters``
    (document-question-answering's ``word_boxes``) joins the input too.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedRequest(f'request body must be a JSON object {{"inputs": ...}}, got {type(payload).__name__}')
    parameter_names = set(handler.parameters) if handler is not None else set()
    # Named inputs stand beside "inputs", never instead of it: {"text": ...} alone is a mistake to name.
    input_names = set(handler.input_names()) if handler is not None and "inputs" in payload else set()
    unknown = sorted(set(payload) - _TOP_LEVEL_KEYS - parameter_names - input_names)
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
    parameters = {
        **parameters,
        **{k: v for k, v in payload.items() if k in parameter_names and k not in _TOP_LEVEL_KEYS},
    }
    named = {k: v for k, v in payload.items() if k in input_names and k not in parameter_names}
    named |= {k: parameters.pop(k) for k in list(parameters) if k in input_names and k not in parameter_names}
    inputs, single = split_inputs(payload["inputs"])
    if named:
        if not single:
            raise MalformedRequest(f"{', '.join(sorted(named))} beside a list of inputs: give each input as an object")
        main = handler.input_names()[0]
        first = inputs[0] if isinstance(inputs[0], dict) else {main: inputs[0]}
        inputs = [{**first, **named}]
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
