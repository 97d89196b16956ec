"""The CPU stage that decodes images and audio before the model's actors.

Decoding (and resampling audio to the model's rate) costs CPU time that a GPU actor would
otherwise spend idle, so it runs as plain Ray tasks between the read and the actor pool.
Each row's decoded value travels in one hidden column, plain Arrow (raw bytes and a shape),
so blocks of any shapes concatenate; a row that cannot be decoded gets its reason in the
read-error column, which the actor turns into that row's error. The actors drop both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from jobs.columns import DECODED, READ_ERROR
from jobs.readers import input_columns
from pipefleet.errors import BadInput, RowError
from pipefleet.media import decode_media

if TYPE_CHECKING:
    import ray.data

    from pipefleet.handler import TaskHandler
    from pipefleet.spec import Spec

DECODED_TYPE = pa.struct([("data", pa.large_binary()), ("shape", pa.list_(pa.int64()))])
DTYPES = {"image": np.uint8, "audio": np.float32}  # RGB pixels; mono samples at the model's rate
DECODE_BATCH_ROWS = 32  # decoded images are large: keep each task's batch small


def add_decode_stage(dataset: "ray.data.Dataset", spec: "Spec", handler: type["TaskHandler"]) -> "ray.data.Dataset":
    """``dataset`` with the main input of each row decoded by CPU tasks (audio at the model's rate)."""
    from pipefleet.models import sampling_rate

    column = input_columns(spec.input, handler)[handler.input_names()[0]]
    rate = sampling_rate(spec, handler.hf_task or handler.task) if handler.capabilities.media == "audio" else None
    return dataset.map_batches(
        decode_batch,
        fn_kwargs={"media": handler.capabilities.media, "task": handler.task, "column": column, "sampling_rate": rate},
        batch_size=DECODE_BATCH_ROWS,
        batch_format="pyarrow",
    )


def decode_batch(batch: pa.Table, media: str, task: str, column: str, sampling_rate: int | None) -> pa.Table:
    """``map_batches`` function: ``column`` decoded into :data:`DECODED`, failures into the read errors."""
    values = batch.column(column).to_pylist() if column in batch.column_names else [None] * batch.num_rows
    errors = _read_errors(batch)
    decoded: list[dict[str, Any] | None] = []
    for index, value in enumerate(values):
        if errors[index] is not None:
            decoded.append(None)
            continue
        try:
            array = decode_media(media, value, task, sampling_rate)
        except BadInput as exc:
            errors[index] = RowError.from_exception(exc).message
            decoded.append(None)
            continue
        decoded.append({"data": np.ascontiguousarray(array, DTYPES[media]).tobytes(), "shape": list(array.shape)})
    kept = batch.drop_columns([c for c in (DECODED, READ_ERROR) if c in batch.column_names])
    return kept.append_column(DECODED, pa.array(decoded, DECODED_TYPE)).append_column(
        READ_ERROR, pa.array(errors, pa.string())
    )


def decoded_values(batch: pa.Table, media: str) -> list[np.ndarray | None]:
    """The arrays of :data:`DECODED` (None where a row could not be decoded)."""
    arrays: list[np.ndarray | None] = []
    for item in batch.column(DECODED).to_pylist():
        if item is None:
            arrays.append(None)
        else:
            arrays.append(np.frombuffer(item["data"], dtype=DTYPES[media]).reshape(item["shape"]))
    return arrays


def _read_errors(batch: pa.Table) -> list[str | None]:
    if READ_ERROR in batch.column_names:
        return batch.column(READ_ERROR).to_pylist()
    return [None] * batch.num_rows
