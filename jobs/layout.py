"""Where a job keeps its files: the output folder holds only the output's data files.

Readers take every file under a folder they are pointed at (``datasets.load_dataset(OUT)``
and ``data_dir=OUT`` read the checkpoint's id-only Parquet files as rows, polars fails on a
JSON manifest), so the manifest and the checkpoint live in a sibling folder,
``OUT.pipefleet/``, which no reader of ``OUT`` sees.
"""

from __future__ import annotations

import os

STATE_SUFFIX = ".pipefleet"
MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint"
# Where jobs before this layout kept them, inside the output folder.
OLD_MANIFEST, OLD_CHECKPOINT = "_manifest.json", "_checkpoint"


def state_folder(output: str) -> str:
    """The folder beside ``output`` that holds the job's manifest and checkpoint: ``OUT.pipefleet``."""
    return output.rstrip("/") + STATE_SUFFIX


def manifest_path(output: str) -> str:
    """The job's manifest: ``OUT.pipefleet/manifest.json``."""
    return f"{state_folder(output)}/{MANIFEST}"


def checkpoint_path(output: str) -> str:
    """Ray Data's checkpoint of the job: ``OUT.pipefleet/checkpoint``."""
    return f"{state_folder(output)}/{CHECKPOINT}"


def move_old_layout(output: str) -> list[str]:
    """Move a manifest and checkpoint that an older job left inside a local ``output`` to their place now.

    Returns notes on what moved. On a remote filesystem they cannot be moved cheaply, so the job stops
    before any work and says what to do: without its checkpoint a rerun would write every row again.
    """
    from pipefleet.errors import FatalError

    old = [name for name in (OLD_CHECKPOINT, OLD_MANIFEST) if _exists(output, name)]
    if not old:
        return []
    if "://" in output:
        raise FatalError(
            f"{output} holds {', '.join(old)} from an older pipefleet; move them to {state_folder(output)}/ "
            f"as {CHECKPOINT} and {MANIFEST} (a rerun without the checkpoint would redo every row)"
        )
    os.makedirs(state_folder(output), exist_ok=True)
    notes = []
    for name, new in ((OLD_CHECKPOINT, CHECKPOINT), (OLD_MANIFEST, MANIFEST)):
        if name in old:
            os.replace(os.path.join(output, name), os.path.join(state_folder(output), new))
            notes.append(f"moved {os.path.join(output, name)} to {os.path.join(state_folder(output), new)}")
    return notes


def _exists(output: str, name: str) -> bool:
    import pyarrow.fs

    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(f"{output.rstrip('/')}/{name}")
        return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound
    except (OSError, ValueError):
        return False
