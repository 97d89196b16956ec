"""The manifest written beside a job's output, and the counts it reports."""

from __future__ import annotations

import json
import os
from typing import Any

from jobs.worker import ERROR_COLUMN

MANIFEST_NAME = "_manifest.json"  # "_" prefix: Parquet and JSON readers skip it


def output_counts(path: str, fmt: str, id_column: str | None) -> dict[str, int]:
    """Rows, ok rows, errored rows and duplicate ids over every file in the output folder."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet" if fmt == "parquet" else "json", exclude_invalid_files=False)
    except FileNotFoundError:  # nothing written yet
        return {"rows_out": 0, "rows_ok": 0, "rows_errored": 0, "duplicate_ids": 0}
    names = dataset.schema.names
    id_column = id_column if id_column in names else None
    columns = [c for c in (ERROR_COLUMN, id_column) if c]
    table = dataset.to_table(columns=columns)
    errored = table.num_rows - table[ERROR_COLUMN].null_count if ERROR_COLUMN in names else 0
    duplicates = table.num_rows - len(pc.unique(table[id_column])) if id_column else 0
    return {
        "rows_out": table.num_rows,
        "rows_ok": table.num_rows - errored,
        "rows_errored": errored,
        "duplicate_ids": duplicates,
    }


def write_manifest(path: str, manifest: dict[str, Any]) -> str:
    """Write ``manifest`` as JSON into the output folder; returns its path."""
    import pyarrow.fs

    filesystem, folder = pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
    target = f"{folder}/{MANIFEST_NAME}"
    with filesystem.open_output_stream(target) as stream:
        stream.write((json.dumps(manifest, indent=2, default=str) + "\n").encode())
    return target
