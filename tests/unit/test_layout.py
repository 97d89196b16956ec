"""Where a job keeps its state: beside the output folder, never inside it."""

from __future__ import annotations

import pytest

from jobs.layout import checkpoint_path, manifest_path, move_old_layout, state_folder
from pipefleet.errors import FatalError


def test_state_lives_beside_the_output_folder():
    assert state_folder("/data/out/") == "/data/out.pipefleet"
    assert manifest_path("/data/out") == "/data/out.pipefleet/manifest.json"
    assert checkpoint_path("s3://bucket/out") == "s3://bucket/out.pipefleet/checkpoint"


def test_an_older_layout_is_moved_out_of_the_output_folder(tmp_path):
    out = tmp_path / "out"
    (out / "_checkpoint").mkdir(parents=True)
    (out / "_checkpoint" / "ids.parquet").write_bytes(b"checkpoint rows")
    (out / "_manifest.json").write_text("{}")
    (out / "part-0.parquet").write_bytes(b"data")

    notes = move_old_layout(str(out))

    assert len(notes) == 2 and all(note.startswith("moved ") for note in notes)
    assert sorted(p.name for p in out.iterdir()) == ["part-0.parquet"]  # only data is left for readers
    assert (tmp_path / "out.pipefleet" / "checkpoint" / "ids.parquet").read_bytes() == b"checkpoint rows"
    assert (tmp_path / "out.pipefleet" / "manifest.json").read_text() == "{}"
    assert move_old_layout(str(out)) == []  # nothing left to move


def test_a_folder_without_old_state_is_left_alone(tmp_path):
    (tmp_path / "out").mkdir()
    assert move_old_layout(str(tmp_path / "out")) == []
    assert not (tmp_path / "out.pipefleet").exists()


def test_an_older_layout_on_remote_storage_stops_with_what_to_move(monkeypatch):
    import jobs.layout as layout

    monkeypatch.setattr(layout, "_exists", lambda output, name: name == "_checkpoint")
    with pytest.raises(FatalError, match=r"holds _checkpoint .* move them to s3://b/out\.pipefleet/"):
        move_old_layout("s3://b/out")
