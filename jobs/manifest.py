"""The manifest written beside a job's output, and the counts it reports."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from jobs.columns import ERROR

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.compute import Plan
    from pipefleet.spec import Spec


def output_counts(path: str, fmt: str, id_column: str | None) -> dict[str, int]:
    """Rows, ok rows, errored rows and duplicate ids over every output file in the folder."""
    import pyarrow.compute as pc

    table = _read_columns(path, fmt, [ERROR, *([id_column] if id_column else [])])
    if table is None:
        return {"rows_out": 0, "rows_ok": 0, "rows_errored": 0, "duplicate_ids": 0}
    names = table.column_names
    errored = table.num_rows - table[ERROR].null_count if ERROR in names else 0
    ids = table[id_column].drop_null() if id_column in names else None
    duplicates = len(ids) - len(pc.unique(ids)) if ids is not None else 0
    return {
        "rows_out": table.num_rows,
        "rows_ok": table.num_rows - errored,
        "rows_errored": errored,
        "duplicate_ids": duplicates,
    }


def _read_columns(path: str, fmt: str, columns: list[str]) -> "pa.Table | None":
    """``columns`` (those present) of every output file under ``path``; None when nothing is written."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs
    import pyarrow.json as pj

    filesystem, folder = pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    files = [i.path for i in infos if i.type == pyarrow.fs.FileType.File and not i.base_name.startswith(("_", "."))]
    if not files:
        return None
    if fmt == "parquet":
        dataset = ds.dataset(files, format="parquet", filesystem=filesystem)
        return dataset.to_table(columns=[c for c in columns if c in dataset.schema.names])
    # JSON types are inferred from each file's first block: an error column that is null
    # there and a string later would not parse, so its type is given. (The dataset API's
    # JSON format ignores an explicit schema, hence read_json file by file.)
    options = pj.ParseOptions(explicit_schema=pa.schema([(ERROR, pa.string())]), unexpected_field_behavior="infer")
    tables = []
    for file in files:
        with filesystem.open_input_stream(file) as stream:
            table = pj.read_json(stream, parse_options=options)
        tables.append(table.select([c for c in columns if c in table.column_names]))
    return pa.concat_tables(tables, promote_options="permissive")


def build_manifest(
    spec: "Spec",
    output: str,
    id_column: str | None,
    plan: "Plan",
    done_before: int,
    this_run: dict[str, Any],
    timing: dict[str, float],
) -> dict[str, Any]:
    """The manifest of a run: what ran, the output's counts, and this run's share and speed.

    ``this_run`` is the :class:`jobs.worker.JobStats` snapshot; ``done_before`` the rows
    the output held before this run (which the checkpoint skipped); ``timing`` the wall-clock
    times the job started, its output was written and its Ray stopped.
    """
    counts = output_counts(output, spec.output.format, id_column)
    # Rows this run wrote, from the output itself; the actors' own count is higher when a lost node's
    # rows were done again elsewhere (or missing, when the stats were lost with their node).
    rows = max(counts["rows_out"] - done_before, 0)
    counted = sum(this_run["rows"].values())
    wall_s = timing["written"] - timing["started"]
    startup_s, steady = _startup(this_run.get("first_batch_began"), rows, wall_s, timing["started"])
    identity = this_run.get("identity") or {}
    return {
        "task": spec.task,
        "model": identity.get("model") or spec.model,
        "revision": identity.get("revision") or spec.revision,
        "precision": identity.get("precision"),
        "input": spec.input.path,
        "output": output,
        "output_format": spec.output.format,
        "id_column": id_column,
        "resumable": id_column is not None,
        "rows_in": done_before + rows,
        **counts,
        "this_run": {
            "rows": rows,
            "errored": sum(this_run["errors"].values()) if not this_run.get("lost") else None,
            # Worker nodes that went away during the run, and the rows done twice because of it.
            "nodes_lost": this_run.get("nodes_lost", []),
            "rows_redone": max(counted - rows, 0),
            "stats_lost": bool(this_run.get("lost")),
            # Batches halved after running out of memory: their rows were retried, not lost.
            "oom_splits": sum(this_run.get("oom_splits", {}).values()),
            # From the job's start (Ray's start included) until its output was written.
            "wall_s": round(wall_s, 3),
            "rows_per_s": round(rows / wall_s, 2) if wall_s else None,
            # Until the first batch began (Ray starting, actors starting, models loading, the first read),
            # then the pace from there: a short run is mostly the first, a long one mostly the second.
            "startup_s": startup_s,
            "startup_phases": start_phases(timing, this_run.get("actor_starts") or {}),
            "steady_rows_per_s": steady,
            # After the output was written: stopping the job's own Ray (nothing to stop on a cluster).
            "teardown_s": round(timing["stopped"] - timing["written"], 3),
            "per_actor_rows": this_run["rows"],
            "compute": {
                "num_cpus": plan.num_cpus,
                "num_gpus": plan.num_gpus,
                "concurrency": plan.concurrency,
                # Forward passes each actor ran at once, and torch threads for each (jobs/compute.actor_threads).
                "lanes": identity.get("lanes"),
                "threads_per_lane": identity.get("threads_per_lane"),
            },
            "notes": list(plan.notes),
        },
        "spec": json.loads(spec.model_dump_json()),
    }


def start_phases(timing: dict[str, float], actor_starts: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """Where the start went, in seconds from the job's start: Ray up (started here or joined), then the actor
    that was ready first, from its ``__init__`` (its process up, its class unpickled) to its model loaded.

    An actor's times come from its node's clock: on a cluster, read them to within the nodes' clock skew.
    """
    started = timing["started"]
    first = min(actor_starts.values(), key=lambda times: times["ready"], default={})

    def since(moment: float | None) -> float | None:
        return None if moment is None else round(max(moment - started, 0.0), 3)

    return {
        "ray_up_s": since(timing.get("connected")),
        "actor_loading_s": since(first.get("began")),
        "actor_ready_s": since(first.get("ready")),
    }


def _startup(first_began: float | None, rows: int, wall_s: float, started_at: float) -> tuple[float, float | None]:
    """Seconds until an actor began its first batch, and rows/s from then to the end."""
    if first_began is None:
        return 0.0, None
    startup = min(max(first_began - started_at, 0.0), wall_s)
    rest = wall_s - startup
    return round(startup, 3), (round(rows / rest, 2) if rest > 0 and rows else None)


def write_manifest(output: str, manifest: dict[str, Any]) -> str:
    """Write ``manifest`` as JSON beside the output folder (:func:`jobs.layout.manifest_path`); returns its path."""
    import pyarrow.fs

    from jobs.layout import manifest_path, state_folder

    filesystem, target = pyarrow.fs.FileSystem.from_uri(manifest_path(_uri(output)))
    filesystem.create_dir(pyarrow.fs.FileSystem.from_uri(state_folder(_uri(output)))[1], recursive=True)
    with filesystem.open_output_stream(target) as stream:
        stream.write((json.dumps(manifest, indent=2, default=str) + "\n").encode())
    return target


def _uri(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)
