"""The annotation job: ``python -m jobs.annotate SPEC.yaml`` (or ``pipefleet annotate SPEC.yaml``).

Reads the corpus with Ray Data, annotates it through an actor pool in which each actor
holds one loaded handler (pinned to the GPU(s) Ray gave it), and writes the input rows
plus the typed output and ``error`` columns. Joins a running cluster when ``RAY_ADDRESS``
or ``--address`` says so (as under ``ray job submit``); otherwise starts a local Ray.

Example::

    python -m jobs.annotate examples/minilm-embeddings.yaml --output out/embeddings
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from jobs.compute import has_checkpoint, plan_actors, spare_cpus
from jobs.decode import DTYPES, add_decode_stage
from jobs.layout import checkpoint_path, manifest_path, move_old_layout, state_folder
from jobs.manifest import build_manifest, output_counts, write_manifest
from jobs.readers import id_column_of, read_corpus
from jobs.watch import StallWatch
from jobs.worker import STATS_ACTOR, AnnotateBatch, JobStats
from pipefleet.errors import FatalError, JobFailed, SpecError
from pipefleet.local_ray import start_local_ray, stop_local_ray
from pipefleet.precision import summary as precision_summary
from pipefleet.registry import handler_class
from pipefleet.spec import Spec, load_spec


def connect(address: str | None, spare_cpus: int) -> bool:
    """Join the cluster at ``address``/``RAY_ADDRESS``, or start a local Ray; True when started here.

    A local Ray gets ``spare_cpus`` logical CPUs more than the cores, for the job's own
    tasks and actors beside the annotators (see :func:`jobs.compute.spare_cpus`).
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, namespace="pipefleet")
        return False
    start_local_ray("pipefleet", spare_cpus)
    return True


def _local(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def annotate(spec: Spec, address: str | None = None) -> dict[str, Any]:
    """Run the job described by ``spec``; returns the manifest it wrote beside the output."""
    import ray
    import ray.data
    from ray.data.checkpoint import CheckpointConfig

    if not spec.output.path:
        raise SpecError("output.path is not set: give it in the spec or with --output")
    job_started = time.time()  # start-up counts from here: Ray's start is part of it
    output = _local(spec.output.path)
    for note in move_old_layout(output):
        print(f"pipefleet: {note}", file=sys.stderr)
    resuming = has_checkpoint(checkpoint_path(output))
    if resuming and output_counts(output, spec.output.format, None)["rows_out"] == 0:
        # Its rows would all be skipped as done, into an empty output.
        raise FatalError(
            f"{checkpoint_path(output)} records rows as written, but {output} holds no output: restore the output, "
            f"or delete {state_folder(output)} to start over"
        )
    spare = spare_cpus(resuming)
    started_here = connect(address, spare)
    connected = time.time()
    plan = plan_actors(spec.compute, ray.cluster_resources(), fixed_cluster=started_here, spare_cpus=spare)
    for note in plan.notes:
        print(f"pipefleet: {note}", file=sys.stderr)

    input_spec = spec.input.model_copy(update={"path": _local(spec.input.path or "")})
    id_column = id_column_of(input_spec)
    context = ray.data.DataContext.get_current()
    if id_column:
        # Rows whose output was committed are skipped on a rerun; the checkpoint is kept
        # after success, so rerunning a finished job writes nothing twice.
        context.checkpoint_config = CheckpointConfig(
            id_column=id_column,
            checkpoint_path=checkpoint_path(output),
            delete_checkpoint_on_success=False,
        )
        # One filter actor (1 CPU each, not configurable) is plenty for a sorted-id lookup,
        # and spare_cpus() keeps a slot for it.
        context.checkpoint_config.checkpoint_actor_pool_max_size = 1
    else:
        context.checkpoint_config = None
        print(
            "pipefleet: resume is off: the input has no stable row id; set input.id_column "
            "(Parquet, JSON Lines and file folders get one)",
            file=sys.stderr,
        )
    corpus = read_corpus(input_spec)
    handler = handler_class(spec.task)
    # Images and audio are decoded by CPU tasks before the actors; videos are too large to carry decoded.
    dataset = (
        add_decode_stage(corpus.dataset, spec, handler) if handler.capabilities.media in DTYPES else corpus.dataset
    )

    stats_name = f"{STATS_ACTOR}-{uuid.uuid4().hex[:8]}"
    stats = start_stats(stats_name)
    nodes_at_start = alive_nodes()
    # Blocks of rows_per_call rows spread one file's rows over the whole actor pool.
    annotated = dataset.repartition(target_num_rows_per_block=spec.compute.rows_per_call).map_batches(
        AnnotateBatch,
        fn_constructor_kwargs={"spec_json": spec.model_dump_json(), "stats_name": stats_name},
        batch_size=spec.compute.rows_per_call,
        batch_format="pyarrow",
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
        compute=plan.strategy(),
    )
    done_before = output_counts(output, spec.output.format, corpus.id_column)["rows_out"]
    try:
        need = {"CPU": plan.num_cpus, "GPU": plan.num_gpus}
        with StallWatch(stats, spec.compute.stall_warning_s, need, spec.compute.unplaceable_timeout_s) as watch:
            if spec.output.format == "parquet":
                annotated.write_parquet(output, min_rows_per_file=spec.output.rows_per_file)
            else:
                annotated.write_json(output, min_rows_per_file=spec.output.rows_per_file)
    except KeyboardInterrupt:
        if watch.reason is None:
            raise
        ray.kill(stats)
        raise JobFailed(_stopped_message(RuntimeError(watch.reason), output, resumable=id_column is not None)) from None
    except Exception as exc:  # a write, a worker or the cluster failed; say what, and how to go on
        ray.kill(stats)
        raise JobFailed(_stopped_message(exc, output, resumable=id_column is not None)) from exc
    written = time.time()
    this_run = stats_snapshot(stats)
    this_run["nodes_lost"] = sorted(set(nodes_at_start) - set(alive_nodes()))
    ray.kill(stats)
    if started_here:  # the job's own local Ray: stopped now, so that its shutdown is measured too
        stop_local_ray()
    timing = {"started": job_started, "connected": connected, "written": written, "stopped": time.time()}

    manifest = build_manifest(spec, output, corpus.id_column, plan, done_before, this_run, timing)
    write_manifest(output, manifest)
    return manifest


def start_stats(name: str) -> Any:
    """The job's stats actor, on the head node: a worker node that goes away (a reclaimed spot node)
    cannot take it with it. On a local Ray the head is the only node."""
    import ray

    head = {"node:__internal_head__": 0.001}
    return ray.remote(num_cpus=0, resources=head, max_restarts=0)(JobStats).options(name=name).remote()


def stats_snapshot(stats: Any) -> dict[str, Any]:
    """What the stats actor counted; if it is gone, empty counts that say so (the output's own counts stand)."""
    import ray

    try:
        return ray.get(stats.snapshot.remote(), timeout=60)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
        print(f"pipefleet: warning: the job's stats were lost ({type(exc).__name__}); counts come from the output")
        return {**JobStats().snapshot(), "lost": True}  # a fresh, empty snapshot: one place for its shape


def alive_nodes() -> list[str]:
    """The cluster's live nodes, as ``ip/node-id``."""
    import ray

    return [f"{n['NodeManagerAddress']}/{n['NodeID'][:8]}" for n in ray.nodes() if n.get("Alive")]


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of ``exc``: Ray wraps a worker's exception in its own, often more than once."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _stopped_message(exc: BaseException, output: str, resumable: bool) -> str:
    cause = root_cause(exc)
    first_line = (str(cause).strip().splitlines() or [""])[0]
    then = (
        "rerun the same command once the cause is fixed; it keeps the committed rows, removes any file "
        "whose rows were not committed, and does the rest without duplicates"
        if resumable
        else "this input has no stable row id (input.id_column), so delete the output folder and rerun"
    )
    return f"the job stopped: {type(cause).__name__}: {first_line}\n  output so far: {output}\n  then: {then}"


def summary(manifest: dict[str, Any]) -> str:
    """The lines printed at the end of a run."""
    run = manifest["this_run"]
    errored = run["errored"] if run["errored"] is not None else "?"  # "?": the stats were lost with their node
    this_run = (
        f"{run['rows']} rows ({errored} errored) in {run['wall_s']:.1f} s, "
        f"{run['rows_per_s'] or 0:.1f} rows/s on {len(run['per_actor_rows'])} actor(s){_lanes(run['compute'])}"
        if run["rows"]
        else "nothing left to do: every input row already had its output"
    )
    timing = (
        f"first batch after {run['startup_s']:.1f} s ({_start_phases(run.get('startup_phases') or {})}), "
        f"then {run['steady_rows_per_s'] or 0:.1f} rows/s; shut down in {run['teardown_s']:.1f} s"
    )
    precision = manifest.get("precision")
    splits = run.get("oom_splits")
    memory = [f"  memory:    {splits} batch(es) ran out of memory and were halved; no row was lost"] if splits else []
    lost = run.get("nodes_lost") or []
    cluster = (
        [
            f"  cluster:   {len(lost)} node(s) went away during the run ({', '.join(lost)}); "
            f"{run.get('rows_redone', 0)} row(s) were done again on the others, and each row is in the output once"
        ]
        if lost
        else []
    )
    return "\n".join(
        [
            f"pipefleet: {manifest['task']} with {manifest['model']}",
            f"  this run:  {this_run}",
            *([f"  timing:    {timing}"] if run["rows"] else []),
            *([f"  precision: {precision_summary(precision)}"] if precision else []),
            *memory,
            *cluster,
            f"  output:    {manifest['rows_out']} rows ({manifest['rows_ok']} ok, {manifest['rows_errored']} errored), "
            f"{manifest['duplicate_ids']} duplicate ids",
            f"  written:   {manifest['output']} ({manifest['output_format']}); "
            f"manifest {manifest_path(manifest['output'])}",
        ]
    )


def _start_phases(phases: dict[str, float | None]) -> str:
    """``Ray up at 2.8 s; first actor loading from 6.0 s, ready at 11.0 s``: where the start went."""
    if phases.get("actor_ready_s") is None:  # no actor said (its stats were lost)
        return "Ray, actors, model"
    return (
        f"Ray up at {phases['ray_up_s']:.1f} s; first actor loading from {phases['actor_loading_s']:.1f} s, "
        f"ready at {phases['actor_ready_s']:.1f} s"
    )


def _lanes(compute: dict[str, Any]) -> str:
    """`` x 2 lane(s) of 1 thread(s)``: how each actor ran its forward passes, when it said so."""
    lanes, threads = compute.get("lanes"), compute.get("threads_per_lane")
    if not lanes:
        return ""
    return f" x {lanes} lane(s) of {threads} thread(s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipefleet annotate", description="Annotate a corpus with a task handler.")
    parser.add_argument("spec", help="the spec YAML file")
    parser.add_argument("--input", help="override input.path")
    parser.add_argument("--output", help="override output.path")
    parser.add_argument("--limit", type=int, help="override input.limit")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, run, print the summary; exit 2 on a fatal error."""
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(args.spec, **{"input.path": args.input, "output.path": args.output, "input.limit": args.limit})
        manifest = annotate(spec, address=args.address)
    except FatalError as exc:
        print(f"pipefleet: error: {exc}", file=sys.stderr)
        return 2
    except JobFailed as exc:
        print(f"pipefleet: error: {exc}", file=sys.stderr)
        return 1
    print(summary(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
