"""The actor that holds one loaded handler and annotates Arrow batches."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pyarrow as pa

from jobs.columns import DECODED, ERROR, FILE_BYTES, READ_ERROR
from jobs.compute import actor_threads
from jobs.decode import decoded_values
from jobs.readers import FILE_FORMATS, input_columns
from pipefleet.errors import RowError
from pipefleet.outputs import split_outcomes, to_arrow
from pipefleet.rows import input_from_row

STATS_ACTOR = "pipefleet-job-stats"


class JobStats:
    """Rows done per actor in this run; a named Ray actor that the workers report to."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.oom_splits: dict[str, int] = {}
        self.identity: dict[str, Any] = {}
        self.first_batch_began: float | None = None  # wall-clock time an actor first began a batch
        # Per actor, the wall-clock times its __init__ began (its process up, its class unpickled) and ended.
        self.actor_starts: dict[str, dict[str, float]] = {}

    def set_identity(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def record_start(self, worker: str, began: float, ready: float) -> None:
        self.actor_starts[worker] = {"began": began, "ready": ready}

    def record(self, worker: str, rows: int, errors: int, oom_splits_so_far: int, began_at: float) -> None:
        self.first_batch_began = min(began_at, self.first_batch_began or began_at)
        self.rows[worker] = self.rows.get(worker, 0) + rows
        self.errors[worker] = self.errors.get(worker, 0) + errors
        self.oom_splits[worker] = oom_splits_so_far

    def snapshot(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "errors": dict(self.errors),
            "oom_splits": dict(self.oom_splits),
            "identity": self.identity,
            "first_batch_began": self.first_batch_began,
            "actor_starts": dict(self.actor_starts),
        }


class AnnotateBatch:
    """``map_batches`` callable class: loads the handler once, then annotates each batch.

    Rows keep every input column; the handler's output is added as a typed column and
    any row's failure as its ``error``. The handler sorts the batch's rows by length
    before cutting it into forward passes.
    """

    def __init__(self, spec_json: str, stats_name: str | None = None) -> None:
        loading_began = time.time()  # for the manifest's startup_phases
        import ray
        import torch

        from pipefleet.registry import handler_class
        from pipefleet.spec import parse_spec, whole_cpus

        spec = parse_spec(json.loads(spec_json))
        # Every thread of the actor's CPU slot while the model loads (threads beyond the slot only fight
        # the other actors); its lanes are set once it is loaded.
        torch.set_num_threads(whole_cpus(spec.compute.num_cpus))
        self.handler = handler_class(spec.task)(spec)
        self.columns = input_columns(spec.input, type(self.handler))
        self.main_column = self.columns[self.handler.input_names()[0]]
        # Not written back: the decode stage's hidden column, and the bytes of files that stay where they are.
        self.dropped = [DECODED, READ_ERROR]
        if spec.input.resolved_format() in FILE_FORMATS:
            self.dropped.append(FILE_BYTES)
        self.output_column = spec.output.column or self.handler.output_column
        self.handler.setup()
        # Known once the model is loaded (its device; whether it generates), and set process-wide: the
        # stages around the forward passes run on one thread per lane as well.
        lanes, threads_per_lane = actor_threads(
            spec.compute, getattr(self.handler.device, "type", "cpu") == "cpu", self.handler.parallel_forward
        )
        torch.set_num_threads(threads_per_lane)
        self.handler.engine.lanes = lanes
        self.arrow_type = self.handler.arrow_type(spec.params, tuple(self.columns))
        # Named by node, so that the manifest says where each actor ran: "<node ip>/<node id>:<pid>".
        context = ray.get_runtime_context()
        self.worker = f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}:{os.getpid()}"
        self.stats = ray.get_actor(stats_name) if stats_name else None
        if self.stats is not None:
            self.stats.set_identity.remote(
                {**self.handler.identity(), "lanes": lanes, "threads_per_lane": threads_per_lane}
            )
            self.stats.record_start.remote(self.worker, loading_began, time.time())

    def __call__(self, batch: pa.Table) -> pa.Table:
        began_at = time.time()
        rows = self._rows(batch)
        inputs = [input_from_row(row, self.columns) for row in rows]
        read_errors = batch.column(READ_ERROR).to_pylist() if READ_ERROR in batch.column_names else []
        readable = [i for i in range(len(rows)) if not (read_errors and read_errors[i])]
        outcomes: list[Any] = [RowError(p) if p else None for p in read_errors] or [None] * len(rows)
        for index, outcome in zip(readable, self.handler.predict([inputs[i] for i in readable])):
            outcomes[index] = outcome
        values, errors = split_outcomes(outcomes)
        output = self._typed_column(values, errors)
        if self.stats is not None:
            self.stats.record.remote(
                self.worker, len(rows), sum(e is not None for e in errors), self.handler.stats.oom_splits, began_at
            )
        batch = _drop(batch, [self.output_column, ERROR, *self.dropped])
        return batch.append_column(self.output_column, output).append_column(ERROR, pa.array(errors, pa.string()))

    def _rows(self, batch: pa.Table) -> list[dict[str, Any]]:
        """Each row's input columns; the main input from the decode stage's arrays when it ran."""
        decoded = decoded_values(batch, self.handler.capabilities.media) if DECODED in batch.column_names else None
        needed = [
            c
            for c in dict.fromkeys(self.columns.values())
            if c in batch.column_names and not (decoded is not None and c == self.main_column)
        ]
        rows = batch.select(needed).to_pylist() if needed else [{} for _ in range(batch.num_rows)]
        if decoded is not None:
            for row, value in zip(rows, decoded):
                row[self.main_column] = value
        return rows

    def _typed_column(self, values: list[Any], errors: list[str | None]) -> pa.Array:
        try:
            return to_arrow(values, self.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            # An output that does not fit the declared type fails its row alone.
            for index, value in enumerate(values):
                try:
                    to_arrow([value], self.arrow_type)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                    values[index] = None
                    errors[index] = RowError.from_exception(exc, kind="model_error").message
            return to_arrow(values, self.arrow_type)


def _drop(table: pa.Table, names: list[str]) -> pa.Table:
    present = [n for n in names if n in table.column_names]
    return table.drop_columns(present) if present else table
