"""Reading a corpus with Ray Data's own readers, with a stable id per row where one can be had."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.columns import FILE_BYTES, LINE_ID, PATH, ROW_HASH
from jobs.jsonl import read_jsonl
from pipefleet.errors import SpecError
from pipefleet.rows import column_map

if TYPE_CHECKING:
    import ray.data

    from pipefleet.handler import TaskHandler
    from pipefleet.spec import InputSpec


@dataclass(frozen=True)
class Corpus:
    """A dataset to annotate and the column that identifies each row."""

    dataset: "ray.data.Dataset"
    id_column: str | None  # None: no stable id, so the run cannot be resumed


FILE_FORMATS = ("binary", "images", "audio")  # one row per file: the path is its id, the file's bytes its input
IMAGE_SUFFIXES = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"]
AUDIO_SUFFIXES = ["wav", "flac", "mp3", "ogg", "opus", "aiff", "aif", "au", "caf", "m4a", "aac", "wma"]


def id_column_of(spec: "InputSpec") -> str | None:
    """The column that identifies rows for resuming.

    JSON Lines rows always use their file and line (a line too broken to hold its own id
    still has one); otherwise the spec's column, Ray's row hash for Parquet, the path for
    file folders.
    """
    fmt = spec.resolved_format()
    if fmt == "jsonl":
        return LINE_ID
    if spec.id_column:
        return spec.id_column
    return ROW_HASH if fmt == "parquet" else PATH if fmt in FILE_FORMATS else None


def input_columns(spec: "InputSpec", handler: type["TaskHandler"]) -> dict[str, str]:
    """Handler input name -> column: the spec's mapping; for file folders, the main input is the file's bytes."""
    if not spec.columns and spec.resolved_format() in FILE_FORMATS:
        return {handler.input_names()[0]: FILE_BYTES}
    return column_map(handler, spec.columns)


def read_corpus(spec: "InputSpec") -> Corpus:
    """Read ``spec.path`` in its format with Ray Data's own reader.

    Set the DataContext (checkpointing) before calling: a Dataset keeps the context it
    was created under.
    """
    import ray.data

    if not spec.path:
        raise SpecError("input.path is not set: give it in the spec or with --input")
    fmt, path = spec.resolved_format(), spec.path
    if fmt == "parquet":
        dataset = ray.data.read_parquet(path, include_row_hash=spec.id_column is None)
    elif fmt == "jsonl":
        dataset = read_jsonl(path)  # line by line: a bad line is its row's error, not the job's end
    elif fmt == "csv":
        dataset = ray.data.read_csv(path)
    elif fmt == "text":
        dataset = ray.data.read_text(path, drop_empty_lines=False)
    elif fmt in FILE_FORMATS:
        # Files are read as bytes and decoded in the job's decode stage, one by one: Ray's
        # read_images and read_audio would stop the whole job at the first corrupt file.
        suffixes = {"images": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}.get(fmt)
        dataset = ray.data.read_binary_files(path, include_paths=True, file_extensions=suffixes)
    elif fmt == "hf":
        dataset = _read_saved_hf_dataset(path, spec.split)
    else:  # the spec's Literal makes this unreachable; kept so a new format cannot slip through
        raise SpecError(f"input.format {fmt!r} has no reader")
    if spec.limit:
        dataset = dataset.limit(spec.limit)
    return Corpus(dataset, id_column_of(spec))


def _read_saved_hf_dataset(path: str, split: str | None) -> "ray.data.Dataset":
    import datasets
    import ray.data

    try:
        loaded = datasets.load_from_disk(path)
    except FileNotFoundError as exc:
        raise SpecError(f"input.path {path!r} is not a saved Hugging Face dataset: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise SpecError(f"input.split: the dataset has splits {sorted(loaded)}; name one")
            split = next(iter(loaded))
        if split not in loaded:
            raise SpecError(f"input.split {split!r} is not one of {sorted(loaded)}")
        loaded = loaded[split]
    return ray.data.from_huggingface(loaded)
