"""Faults injected on purpose, in this process or (as Ray worker setup hooks) in every Ray worker.

A hook runs in each worker process before it does any work, when the job's runtime
environment names it: ``ray.init(runtime_env={"worker_process_setup_hook": "tests.faults.NAME"})``.
The hooks' settings travel in environment variables, which Ray workers inherit.
"""

from __future__ import annotations

import errno
import os
from typing import Any

OOM_ROWS_ENV = "PIPEFLEET_TEST_OOM_ABOVE_ROWS"
WRITE_FAIL_ENV = "PIPEFLEET_TEST_FAIL_WRITES_AFTER_FILES"
FORWARD_DELAY_ENV = "PIPEFLEET_TEST_FORWARD_DELAY_S"


def oom_above(model: Any, max_rows: int) -> Any:
    """Make ``model`` raise the CUDA out-of-memory error on any forward pass over more than ``max_rows`` rows."""
    import torch

    forward = model.forward

    def limited(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > max_rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {ids.shape[0]} rows > {max_rows})")
        return forward(*args, **kwargs)

    model.forward = limited
    return model


def oom_in_workers() -> None:
    """Worker hook: every pipeline loaded in this worker runs out of memory above ``$OOM_ROWS_ENV`` rows."""
    import pipefleet.models

    max_rows = int(os.environ[OOM_ROWS_ENV])
    load = pipefleet.models.load_pipeline

    def load_with_fault(*args: Any, **kwargs: Any) -> Any:
        pipe = load(*args, **kwargs)
        oom_above(pipe.model, max_rows)
        return pipe

    pipefleet.models.load_pipeline = load_with_fault


def slow_forward_in_workers() -> None:
    """Worker hook: every forward pass of a pipeline loaded in this worker first sleeps ``$FORWARD_DELAY_ENV``
    seconds, so that a job lasts as long on a fast machine as on a slow one (and the sleep costs no CPU)."""
    import time

    import pipefleet.models

    delay_s = float(os.environ[FORWARD_DELAY_ENV])
    load = pipefleet.models.load_pipeline

    def load_slowed(*args: Any, **kwargs: Any) -> Any:
        pipe = load(*args, **kwargs)
        forward = pipe.model.forward

        def slowed(*args: Any, **kwargs: Any) -> Any:
            time.sleep(delay_s)
            return forward(*args, **kwargs)

        pipe.model.forward = slowed
        return pipe

    pipefleet.models.load_pipeline = load_slowed


def disk_full_in_workers() -> None:
    """Worker hook: Parquet writes fail with ENOSPC once the output folder holds ``$WRITE_FAIL_ENV`` data files."""
    import pyarrow.dataset

    after = int(os.environ[WRITE_FAIL_ENV])
    write_dataset = pyarrow.dataset.write_dataset

    def write_until_full(data: Any, base_dir: str, *args: Any, **kwargs: Any) -> Any:
        written = [name for name in os.listdir(base_dir) if name.endswith(".parquet")]
        if len(written) >= after:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", base_dir)
        return write_dataset(data, base_dir, *args, **kwargs)

    pyarrow.dataset.write_dataset = write_until_full
