"""Turning handler outcomes into JSON values and typed Arrow columns.

Both adapters use these: ``jobs/`` writes Arrow columns, ``serve/`` and the CLI print JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet.errors import RowError


def to_jsonable(value: Any) -> Any:
    """The same structure as plain JSON values: numpy arrays and scalars as lists and numbers, bytes as base64."""
    return to_python(value, bytes_as_base64=True)


def to_python(value: Any, bytes_as_base64: bool = False) -> Any:
    """The same structure with numpy arrays and scalars turned into plain Python values; bytes stay
    bytes (a binary Arrow column) unless ``bytes_as_base64`` (JSON)."""
    if isinstance(value, bytes):  # a mask or depth map as PNG, audio as WAV
        return base64.b64encode(value).decode("ascii") if bytes_as_base64 else value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: to_python(item, bytes_as_base64) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(item, bytes_as_base64) for item in value]
    if hasattr(value, "messages"):  # a transformers Chat
        return to_python(list(value.messages), bytes_as_base64)
    return value


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON bytes, as :func:`to_jsonable` would give it, without a Python float per array value.

    orjson writes numpy arrays from their buffers: for an embedding, a depth map or token states
    that is several times cheaper than ``tolist()`` plus ``json.dumps``. NaN and infinity,
    which JSON cannot hold, become null.
    """
    import orjson

    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _json_default(value: Any) -> Any:
    # What orjson does not write itself: bytes, arrays it cannot take from their buffer
    # (non-contiguous, float16, object), transformers' Chat.
    if isinstance(value, (bytes, np.ndarray, np.generic)) or hasattr(value, "messages"):
        return to_jsonable(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def split_outcomes(outcomes: Sequence[Any]) -> tuple[list[Any], list[str | None]]:
    """Outputs (None where the row failed) and error messages (None where it succeeded)."""
    values = [None if isinstance(o, RowError) else o for o in outcomes]
    errors = [o.message if isinstance(o, RowError) else None for o in outcomes]
    return values, errors


def to_arrow(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """A typed Arrow array of outputs; None stays null. Float vectors skip per-row Python objects."""
    if pa.types.is_fixed_size_list(arrow_type) and all(isinstance(v, np.ndarray) for v in values if v is not None):
        size = arrow_type.list_size
        mask = np.array([v is None for v in values])
        flat = np.zeros((len(values), size), dtype=np.float32)
        present = [i for i, v in enumerate(values) if v is not None]
        if present:
            flat[present] = np.stack([values[i] for i in present])
        values_array = pa.array(flat.reshape(-1), type=arrow_type.value_type)
        return pa.FixedSizeListArray.from_arrays(values_array, size, mask=pa.array(mask) if mask.any() else None)
    return pa.array([to_python(v) for v in values], type=arrow_type)
