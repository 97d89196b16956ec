"""Faults injected on purpose, in this process or (as Ray worker setup hooks) in every Ray worker.

A hook runs in each worker process before it does any work, when the job's runtime
environment names it: ``ray.init(runtime_env={"worker_process_setup_hook": "tests.faults.NAME"})``.
The hooks' settings travel in environment variables, which Ray workers inherit.
"""

from __future__ import annotations

import errno
import json
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


def slowed(model: Any, delay_s: float) -> Any:
    """Make every forward pass of ``model`` sleep ``delay_s`` first (a sleep costs no CPU)."""
    import time

    forward = model.forward

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay_s)
        return forward(*args, **kwargs)

    model.forward = slow
    return model


def _on_every_loaded_model(change: Any) -> None:
    """Apply ``change`` (model -> model) to the model of every pipeline this worker loads from now on."""
    import pipefleet.models

    load = pipefleet.models.load_pipeline

    def load_changed(*args: Any, **kwargs: Any) -> Any:
        pipe = load(*args, **kwargs)
        change(pipe.model)
        return pipe

    pipefleet.models.load_pipeline = load_changed


def oom_in_workers() -> None:
    """Worker hook: every pipeline loaded in this worker runs out of memory above ``$OOM_ROWS_ENV`` rows."""
    max_rows = int(os.environ[OOM_ROWS_ENV])
    _on_every_loaded_model(lambda model: oom_above(model, max_rows))


def slow_forward_in_workers() -> None:
    """Worker hook: every forward pass of a pipeline loaded in this worker first sleeps ``$FORWARD_DELAY_ENV``
    seconds, so that a job lasts as long on a fast machine as on a slow one."""
    delay_s = float(os.environ[FORWARD_DELAY_ENV])
    _on_every_loaded_model(lambda model: slowed(model, delay_s))


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


# The job's driver with a hook of this module in every Ray worker: ray.init with the runtime environment and
# init arguments given as JSON, then the job's own entry point on the remaining arguments.
_DRIVER_WITH_HOOK = """
import json, sys, ray
ray.init(namespace="pipefleet", runtime_env=json.loads(sys.argv[1]), **json.loads(sys.argv[2]))
from jobs.annotate import main
sys.exit(main(sys.argv[3:]))
"""


def driver_with_hook(hook: str, env_vars: dict[str, str] | None = None, **init: Any) -> list[str]:
    """Python's arguments (before the spec) to run the job with ``tests.faults.<hook>`` in every Ray worker.

    ``env_vars`` travel in the runtime environment: on a cluster, the nodes' raylets start the workers, which
    do not inherit the driver's environment. ``init``: more ``ray.init`` arguments (a local Ray's size).
    """
    runtime_env: dict[str, Any] = {"worker_process_setup_hook": f"tests.faults.{hook}"}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return ["-c", _DRIVER_WITH_HOOK, json.dumps(runtime_env), json.dumps(init)]
