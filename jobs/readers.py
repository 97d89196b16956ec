"""Reading a corpus with Ray Data's own readers, with a stable id per row where one can be had."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
        with footer_readers_sized_for(path):
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


FOOTER_ACTORS = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"


@contextmanager
def footer_readers_sized_for(path: str) -> Iterator[None]:
    """As many Parquet footer-reading actors as a local input has batches of files, while the read is planned.

    Ray Data 2.60 reads Parquet footers on a pool of 32 actors (``FooterReader``, 1 CPU each to
    place) whatever the file count, and gives each batch of 10 files to one of them: for the
    one-file sample corpus, 31 actors do nothing. On 2 cores the few that fit cost about 1 s of
    CPU each while the annotating actor imports torch, and the first batch came 1 to 4 s later
    (9.1-9.2 s against 9.9-13.3 s for README command 1's job). Remote inputs keep Ray's pool (listing
    them here would cost a second listing), and so does a value the user exported.
    """
    actors = None if FOOTER_ACTORS in os.environ else _footer_actors_for(path)
    if actors is not None:
        os.environ[FOOTER_ACTORS] = str(actors)
    try:
        yield  # the reader takes its pool size when it is built, in read_parquet
    finally:
        if actors is not None:
            del os.environ[FOOTER_ACTORS]


def _footer_actors_for(path: str) -> int | None:
    """Footer readers for a local Parquet path: one per batch of files, up to Ray's pool; None to keep Ray's."""
    if "://" in path and not path.startswith("file://"):
        return None
    try:
        from ray.data._internal.datasource_v2.formats.parquet import footer_file_indexer as indexer
    except ImportError:  # a Ray without the footer-reading pool
        return None
    # Ray's own defaults, read where Ray keeps them (10 files a batch, 32 actors in 2.60).
    per_actor, most = getattr(indexer, "_DEFAULT_BATCH_SIZE", 10), getattr(indexer, "_DEFAULT_NUM_ACTORS", 32)
    path = path.removeprefix("file://")
    if not os.path.isdir(path):
        return 1
    # Counting stops once the pool would be full: a folder of a million files is not listed here twice.
    files = (name for _, _, names in os.walk(path) for name in names if not name.startswith((".", "_")))
    count = sum(1 for _ in itertools.islice(files, per_actor * most))
    return max(1, min(most, math.ceil(count / per_actor)))


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
