"""Fitting the spec's actor pool to the cluster it runs on, so a job never waits silently."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipefleet.errors import FatalError
from pipefleet.spec import ComputeSpec, whole_cpus

if TYPE_CHECKING:
    import ray.data


@dataclass(frozen=True)
class Plan:
    """What each actor asks for, how many run, and what was changed to make it fit."""

    num_gpus: float
    num_cpus: float
    concurrency: int | tuple[int, int]
    notes: tuple[str, ...] = ()

    def strategy(self) -> "ray.data.ActorPoolStrategy":
        """The Ray Data compute strategy: a fixed pool, or one that autoscales between min and max."""
        from ray.data import ActorPoolStrategy

        if isinstance(self.concurrency, int):
            return ActorPoolStrategy(size=self.concurrency)
        return ActorPoolStrategy(min_size=self.concurrency[0], max_size=self.concurrency[1])


def actor_threads(compute: ComputeSpec, on_cpu: bool, parallel_forward: bool = True) -> tuple[int, int]:
    """(lanes, torch threads per lane) of one actor: the forward passes it runs at once
    (:attr:`pipefleet.engine.Engine.lanes`) and the threads each gets.

    ``compute.lanes``, by default one per whole CPU, on a CPU; the whole CPUs are divided evenly, so
    ``num_cpus: 3, lanes: 2`` leaves one idle. One lane of every thread on an accelerator, which runs
    one pass at a time anyway, and for a handler whose passes must not run at once."""
    cpus = whole_cpus(compute.num_cpus)
    lanes = (compute.lanes or cpus) if on_cpu and parallel_forward else 1
    return lanes, cpus // lanes


def spare_cpus(resuming: bool) -> int:
    """CPU slots the job needs beside its annotating actors.

    One for the read and write tasks, which otherwise starve behind actors that hold every
    core; one more when resuming, for Ray Data's checkpoint-filter actor. Without them a
    pool that fills the machine waits forever.
    """
    return 2 if resuming else 1


def has_checkpoint(path: str) -> bool:
    """Whether an earlier run left checkpoint files at ``path`` (a local folder or a URI)."""
    import pyarrow.fs

    try:
        filesystem, folder = pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
        infos = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    except (OSError, ValueError):
        return False
    return any(info.type == pyarrow.fs.FileType.File for info in infos)


def plan_actors(compute: ComputeSpec, resources: dict[str, float], fixed_cluster: bool, spare_cpus: int = 1) -> Plan:
    """Resolve ``num_gpus: null`` and check the pool against ``resources`` (``ray.cluster_resources()``).

    On a fixed cluster (a local Ray this job started) a pool that cannot fit fails fast,
    and one that would leave fewer than ``spare_cpus`` CPUs free is shrunk, since the
    job's other tasks need them to make progress. On a cluster that may autoscale the
    same findings are only notes: the nodes may be on their way.
    """
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    num_gpus = compute.num_gpus if compute.num_gpus is not None else (1.0 if gpus else 0.0)
    low, high = (
        (compute.concurrency, compute.concurrency) if isinstance(compute.concurrency, int) else compute.concurrency
    )
    notes: list[str] = []

    problems = []
    if num_gpus > gpus:
        problems.append(
            f"each actor asks for {num_gpus:g} GPU(s) but the cluster has {gpus:g}; "
            "set compute.num_gpus: 0 to run on CPU"
        )
    if compute.num_cpus > cpus:
        problems.append(
            f"each actor asks for {compute.num_cpus:g} CPUs but the cluster has {cpus:g}; lower compute.num_cpus"
        )
    if problems:
        if fixed_cluster:
            raise FatalError("the actor pool cannot start: " + "; ".join(problems))
        notes.extend(f"waiting for the autoscaler: {p}" for p in problems)
        return Plan(num_gpus, compute.num_cpus, compute.concurrency, tuple(notes))

    fits = math.floor(max(cpus - spare_cpus, compute.num_cpus) / compute.num_cpus)
    if num_gpus:
        fits = min(fits, math.floor(gpus / num_gpus))
    if fixed_cluster and high > fits:
        notes.append(
            f"compute.concurrency lowered to at most {fits} actor(s): {cpus:g} CPUs and {gpus:g} GPUs here, "
            f"{compute.num_cpus:g} CPU and {num_gpus:g} GPU per actor, one CPU kept for reading and writing"
        )
        low, high = min(low, fits), fits
    concurrency: int | tuple[int, int] = low if low == high else (low, high)
    return Plan(num_gpus, compute.num_cpus, concurrency, tuple(notes))
