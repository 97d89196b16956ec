"""JSON Lines input that survives bad lines.

Ray Data's ``read_json`` (pyarrow's reader) fails the whole job on one malformed line, or
on one value whose type differs from its column's (``"text": 5`` among strings); a corpus
of millions of lines nearly always holds a few. Here the lines are read as text and each
is parsed on its own, against a schema inferred once from the first lines: a line that is
not a JSON object, or a value that does not fit its column, becomes that row's error
(:data:`READ_ERROR`), and every other row goes on. Each row carries its file and
line number (:data:`LINE_ID`), which identifies it when the job resumes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.columns import LINE_ID, READ_ERROR

if TYPE_CHECKING:
    import ray.data

SAMPLE_LINES = 1000
LINES_PER_BLOCK = 10_000
_SUFFIXES = (".jsonl", ".json", ".ndjson")


def read_jsonl(path: str) -> "ray.data.Dataset":
    """The rows of the JSON Lines file(s) at ``path``, typed by :func:`infer_schema`.

    Parsing happens inside the read, so the id column exists where Ray Data's checkpoint
    filter looks for it (right after reading).
    """
    import ray.data
    from ray.data.datasource import FileBasedDatasource

    class JsonLinesDatasource(FileBasedDatasource):
        def __init__(self, paths: str, schema: pa.Schema) -> None:
            super().__init__(paths, file_extensions=[suffix.lstrip(".") for suffix in _SUFFIXES])
            self.schema = schema

        def _read_stream(self, f: "pa.NativeFile", path: str) -> Iterator[pa.Table]:
            text = f.readall().decode("utf-8", errors="replace")
            numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
            for start in range(0, len(numbered), LINES_PER_BLOCK):
                block = numbered[start : start + LINES_PER_BLOCK]
                table = parse_lines([line for _, line in block], self.schema)
                yield table.append_column(LINE_ID, pa.array([f"{path}:{n}" for n, _ in block], pa.string()))

    return ray.data.read_datasource(JsonLinesDatasource(path, infer_schema(path)))


def infer_schema(path: str, sample_lines: int = SAMPLE_LINES) -> pa.Schema:
    """Column types from the first ``sample_lines`` valid lines; a column's most common type wins."""
    values: dict[str, list[Any]] = {}
    for line in _first_lines(path, sample_lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            for key, value in row.items():
                values.setdefault(key, []).append(value)
    if not values:
        raise ValueError(f"{path}: no JSON object in its first {sample_lines} lines; is it JSON Lines?")
    return pa.schema([(key, _column_type(column)) for key, column in values.items()])


def _column_type(column: list[Any]) -> pa.DataType:
    present = [v for v in column if v is not None]
    if not present:
        return pa.string()
    common = Counter(type(v) for v in present).most_common(1)[0][0]
    try:
        return pa.array([v for v in present if type(v) is common]).type
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. lists of mixed items: every row then misfits
        return pa.string()


def _first_lines(path: str, count: int) -> list[str]:
    """Up to ``count`` non-blank lines from the start of the file(s) at ``path``, reading no more than needed."""
    import pyarrow.fs

    filesystem, target = pyarrow.fs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
    info = filesystem.get_file_info(target)
    if info.type == pyarrow.fs.FileType.Directory:
        found = filesystem.get_file_info(pyarrow.fs.FileSelector(target, recursive=True))
        files = sorted(i.path for i in found if i.type == pyarrow.fs.FileType.File and i.path.endswith(_SUFFIXES))
    else:
        files = [target]
    lines: list[str] = []
    for file in files:
        with filesystem.open_input_stream(file) as stream:
            pending = b""
            while len(lines) < count:
                chunk = stream.read(1 << 20)
                complete = (pending + chunk).split(b"\n")
                pending = complete.pop() if chunk else b""  # a cut line waits for the next chunk
                lines += [raw.decode("utf-8", errors="replace") for raw in complete if raw.strip()]
                if not chunk:
                    break
        if len(lines) >= count:
            break
    return lines[:count]


def parse_lines(lines: list[str], schema: pa.Schema) -> pa.Table:
    """Lines of text -> rows of ``schema`` plus each row's read problem (or null)."""
    rows, problems = [], []
    for line in lines:
        row, problem = _parse(line)
        rows.append(row)
        problems.append(problem)
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # some value does not fit: find which
        for index, row in enumerate(rows):
            misfits = _drop_misfits(row, schema)
            if misfits:
                problems[index] = misfits
        table = pa.Table.from_pylist(rows, schema=schema)
    return table.append_column(READ_ERROR, pa.array(problems, pa.string()))


def _parse(line: str) -> tuple[dict[str, Any], str | None]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        return {}, f"line is not valid JSON ({exc}): {line[:200]!r}"
    if not isinstance(value, dict):
        return {}, f"line is a JSON {type(value).__name__}, not an object: {line[:200]!r}"
    return value, None


def _drop_misfits(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """Null the values of ``row`` that do not fit their column; a message naming them, or None."""
    misfits = []
    for field in schema:
        value = row.get(field.name)
        try:
            pa.array([value], field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            row[field.name] = None
            misfits.append(f"column {field.name!r} holds {json.dumps(value)[:80]}, not a {field.type}")
    return "; ".join(misfits) or None
