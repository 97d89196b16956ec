"""The annotation job on a local Ray: same values as the handler, every format, bad rows, resume."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.make_corpus import make_corpus
from jobs.annotate import annotate
from jobs.layout import manifest_path
from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec
from tests.faults import driver_with_hook

REPO = Path(__file__).resolve().parents[2]


def _spec(model: str, input_path: Path, output_path: Path, **sections) -> object:
    data = {
        "task": "text-classification",
        "model": model,
        "device": "cpu",
        "batch_size": 16,
        "params": {"top_k": 2, "truncation": True},
        "input": {"path": str(input_path), **sections.pop("input", {})},
        "output": {"path": str(output_path), **sections.pop("output", {})},
        "compute": {"num_cpus": 1, "concurrency": 1, "rows_per_call": 256, **sections.pop("compute", {})},
        **sections,
    }
    return parse_spec(data)


def _read_output(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _expected(spec, texts: list) -> dict:
    handler = handler_class(spec.task)(spec)
    handler.setup()
    return dict(zip(texts, handler.predict(texts)))


def _assert_same_classification(got, want) -> None:
    assert [x["label"] for x in got] == [x["label"] for x in want]
    assert all(math.isclose(a["score"], b["score"], abs_tol=1e-4) for a, b in zip(got, want))


def test_job_output_equals_handler(local_ray, tiny_model, tmp_path):
    corpus = make_corpus(2000, seed=1)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(
        tiny_model("text-classification"),
        tmp_path / "corpus.parquet",
        tmp_path / "out",
        input={"id_column": "doc_id"},
        compute={"concurrency": 2},
    )
    manifest = annotate(spec)

    table = _read_output(tmp_path / "out")
    assert sorted(table["doc_id"]) == sorted(corpus["doc_id"].to_pylist())
    assert table["error"].isna().all()
    texts = corpus["text"].to_pylist()
    expected = _expected(spec, texts)
    for text, got in zip(table["text"], table["classification"]):
        _assert_same_classification(list(got), expected[text])
    assert manifest["rows_in"] == manifest["rows_out"] == manifest["rows_ok"] == 2000
    assert manifest["duplicate_ids"] == 0
    assert sum(manifest["this_run"]["per_actor_rows"].values()) == 2000
    on_disk = json.loads(Path(manifest_path(str(tmp_path / "out"))).read_text())
    assert on_disk["spec"]["task"] == "text-classification" and on_disk["this_run"]["rows_per_s"] > 0
    # Where the start went, in order: Ray up (joined here), the first actor ready, its first batch begun.
    run = on_disk["this_run"]
    phases = run["startup_phases"]
    assert 0 <= phases["ray_up_s"] <= phases["actor_loading_s"] <= phases["actor_ready_s"] <= run["startup_s"]
    assert run["startup_s"] <= run["wall_s"] and run["teardown_s"] >= 0

    # Typed columns: a list of {label, score} structs, readable by datasets too.
    schema = pq.read_schema(next((tmp_path / "out").glob("*.parquet")))
    assert schema.field("classification").type == pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))
    import datasets

    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "*.parquet"), split="train")
    assert loaded.num_rows == 2000 and set(loaded[0]["classification"][0]) == {"label", "score"}


def test_an_actor_of_two_cpus_runs_two_lanes_and_writes_the_handlers_outputs(local_ray, tiny_model, tmp_path):
    from jobs.annotate import summary

    corpus = make_corpus(600, seed=3)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(
        tiny_model("text-classification"),
        tmp_path / "corpus.parquet",
        tmp_path / "out",
        compute={"num_cpus": 2, "rows_per_call": 200},
    )
    manifest = annotate(spec)

    compute = manifest["this_run"]["compute"]
    assert (compute["lanes"], compute["threads_per_lane"]) == (2, 1)
    assert "on 1 actor(s) x 2 lane(s) of 1 thread(s)" in summary(manifest)
    table = _read_output(tmp_path / "out")
    assert len(table) == 600 and table["error"].isna().all()
    expected = _expected(spec, corpus["text"].to_pylist())
    for text, got in zip(table["text"], table["classification"]):
        _assert_same_classification(list(got), expected[text])


def test_common_readers_read_exactly_the_output_rows(local_ray, tiny_model, tmp_path):
    import datasets
    import duckdb
    import polars as pl
    import ray.data

    corpus = make_corpus(300, seed=3)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(tiny_model("text-classification"), tmp_path / "corpus.parquet", tmp_path / "out")
    annotate(spec)
    annotate(spec)  # a rerun: the checkpoint is there, and nothing is written twice
    out = tmp_path / "out"
    assert Path(manifest_path(str(out))).exists() and not any(p.name.startswith("_") for p in out.iterdir())
    counts = {
        "load_dataset(OUT)": datasets.load_dataset(str(out), split="train").num_rows,
        "load_dataset(parquet, data_dir=OUT)": datasets.load_dataset(
            "parquet", data_dir=str(out), split="train"
        ).num_rows,
        "pandas": len(pd.read_parquet(out)),
        "polars": pl.read_parquet(out).height,
        "duckdb OUT/**/*.parquet": duckdb.sql(f"select count(*) from '{out}/**/*.parquet'").fetchall()[0][0],
        "ray.data": ray.data.read_parquet(str(out)).count(),
    }
    assert counts == dict.fromkeys(counts, 300), counts


def test_an_older_jobs_manifest_and_checkpoint_move_beside_the_output(local_ray, tiny_model, tmp_path):
    corpus = make_corpus(200, seed=4)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(tiny_model("text-classification"), tmp_path / "corpus.parquet", tmp_path / "out")
    annotate(spec)
    state = Path(manifest_path(str(tmp_path / "out"))).parent
    state.rename(tmp_path / "state")  # lay the folder out as older jobs did: inside the output
    (tmp_path / "state" / "checkpoint").rename(tmp_path / "out" / "_checkpoint")
    (tmp_path / "state" / "manifest.json").rename(tmp_path / "out" / "_manifest.json")
    manifest = annotate(spec)
    assert manifest["this_run"]["rows"] == 0 and manifest["rows_out"] == 200  # the moved checkpoint still counts
    assert not (tmp_path / "out" / "_checkpoint").exists() and (state / "checkpoint").is_dir()


def test_a_checkpoint_without_its_output_stops_instead_of_skipping_every_row(local_ray, tiny_model, tmp_path):
    import shutil

    from pipefleet.errors import FatalError

    corpus = make_corpus(100, seed=5)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(tiny_model("text-classification"), tmp_path / "corpus.parquet", tmp_path / "out")
    annotate(spec)
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(FatalError, match="holds no output"):
        annotate(spec)


def _write_formats(folder: Path, texts: list[str]) -> dict[str, tuple[Path, dict]]:
    """The same rows in every text format the job reads; returns format -> (path, input section)."""
    import datasets

    ids = [f"r{i}" for i in range(len(texts))]
    frame = pd.DataFrame({"rid": ids, "body": texts})
    pq.write_table(pa.Table.from_pandas(frame), folder / "c.parquet")
    frame.to_json(folder / "c.jsonl", orient="records", lines=True)
    frame.to_csv(folder / "c.csv", index=False)
    (folder / "c.txt").write_text("\n".join(texts) + "\n")
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame)}).save_to_disk(str(folder / "hf"))
    mapped = {"columns": {"text": "body"}}
    return {
        "parquet": (folder / "c.parquet", mapped),  # no id column: Ray's row hash
        "jsonl": (folder / "c.jsonl", {**mapped, "id_column": "rid"}),
        "csv": (folder / "c.csv", {**mapped, "id_column": "rid"}),
        "text": (folder / "c.txt", {}),
        "hf": (folder / "hf", {**mapped, "id_column": "rid", "format": "hf", "split": "train"}),
    }


def test_every_input_format(local_ray, tiny_model, tmp_path):
    texts = make_corpus(60, seed=2)["text"].to_pylist()
    model = tiny_model("text-classification")
    expected = None
    for fmt, (path, input_section) in _write_formats(tmp_path, texts).items():
        spec = _spec(model, path, tmp_path / f"out-{fmt}", input=input_section)
        expected = expected or _expected(spec, texts)
        manifest = annotate(spec)
        table = _read_output(tmp_path / f"out-{fmt}")
        column = "text" if fmt == "text" else "body"
        assert sorted(table[column]) == sorted(texts), fmt
        for text, got in zip(table[column], table["classification"]):
            _assert_same_classification(list(got), expected[text])
        assert manifest["rows_ok"] == 60, fmt
        assert manifest["resumable"] == (fmt != "text"), fmt


# One of each kind of bad line a JSON Lines corpus meets: (line, what its error must say).
BAD_LINES = [
    ('{{"rid": {i}, "body": null}}', "missing"),
    ('{{"rid": {i}, "body": 42}}', "column 'body' holds 42, not a string"),
    ('{{"rid": {i}, "body": ["a", "list"]}}', "column 'body' holds"),
    ('{{"rid": {i}, "body": {{"nested": "object"}}}}', "column 'body' holds"),
    ('{{"rid": {i}, "body": ""}}', "empty"),
    ('{{"rid": {i}, "body": "   "}}', "empty"),
    ('{{"rid": {i}, "body": "' + "x" * 1_048_576 + '"}}', "over max_input_chars"),
    ('{{"rid": {i}, "body": "cut short', "not valid JSON"),
    ('["rid", {i}]', "not an object"),
    ("{{rid: {i}}}", "not valid JSON"),
]


def test_corrupt_rows_each_get_their_error_and_nothing_is_lost(local_ray, tiny_model, tmp_path):
    texts = make_corpus(2000, seed=3)["text"].to_pylist()
    bad = {i: BAD_LINES[n % len(BAD_LINES)] for n, i in enumerate(range(7, 2000, 100))}  # 1% of the rows
    lines = [bad[i][0].format(i=i) if i in bad else json.dumps({"rid": i, "body": t}) for i, t in enumerate(texts)]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    spec = _spec(
        tiny_model("text-classification"),
        tmp_path / "c.jsonl",
        tmp_path / "out",
        input={"columns": {"text": "body"}, "id_column": "rid"},
        output={"format": "jsonl"},
        compute={"concurrency": [1, 2], "rows_per_call": 128},
    )
    manifest = annotate(spec)
    assert (manifest["rows_out"], manifest["rows_errored"], manifest["rows_ok"]) == (2000, 20, 1980)
    # JSON lines files, as pandas reads them (the manifest and the checkpoint are in out.pipefleet/).
    files = [p for p in (tmp_path / "out").glob("*.json") if not p.name.startswith("_")]
    out = pd.concat([pd.read_json(p, lines=True) for p in files])
    # Lines with no readable id are kept too, with the line itself in their error.
    no_id = {i for i, (_, message) in bad.items() if message in ("not valid JSON", "not an object")}
    unreadable = out[out["rid"].isna()]
    assert len(unreadable) == len(no_id) == 6
    assert sorted(unreadable["error"].str.extract(r"(\d+)\D*$")[0].astype(int)) == sorted(no_id)
    out = out.dropna(subset=["rid"]).astype({"rid": int}).set_index("rid").sort_index()
    assert list(out.index) == sorted(set(range(2000)) - no_id)
    expected = _expected(spec, [t for i, t in enumerate(texts) if i not in bad])
    for rid, row in out.iterrows():
        if rid in bad:
            assert isinstance(row["error"], str) and bad[rid][1] in row["error"], (rid, row["error"][:300])
            assert not isinstance(row["classification"], list)
        else:
            assert pd.isna(row["error"])
            _assert_same_classification(list(row["classification"]), expected[texts[rid]])
    rerun = annotate(spec)  # every line, even one without an id, was committed once
    assert rerun["this_run"]["rows"] == 0 and rerun["rows_out"] == 2000


# The job's own entry point, after a local Ray whose workers all run a fault hook from tests/faults.py.
def _run_job(spec_path: Path, *extra: str, hook: str | None = None, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **(env or {})}
    env.pop("RAY_ADDRESS", None)
    command = driver_with_hook(hook, num_cpus=4, include_dashboard=False) if hook else ["-m", "jobs.annotate"]
    return subprocess.Popen(
        [sys.executable, *command, str(spec_path), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_fatal_problems_fail_fast_with_a_message(tmp_path, tiny_model):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        f"task: ner\nmodel: {tiny_model('token-classification')}\n"
        f"input: {{path: {tmp_path}/c.parquet, columns: {{txt: body}}}}\noutput: {{path: {tmp_path}/o}}\n"
    )
    job = _run_job(spec_path)
    output, _ = job.communicate(timeout=120)
    assert job.returncode == 2 and "token-classification has no input named txt" in output


def _write_spec(tmp_path: Path, model: str, rows: int, seed: int, id_column: str | None = "doc_id") -> Path:
    """A Parquet corpus of ``rows`` rows and a text-classification spec over it; returns the spec's path.

    Two actors of one CPU each fill this machine's cores: reruns must still find room for their own work.
    """
    pq.write_table(make_corpus(rows, seed=seed), tmp_path / "corpus.parquet", row_group_size=500)
    spec = {
        "task": "text-classification",
        "model": model,
        "device": "cpu",
        "batch_size": 16,
        "params": {"top_k": 2, "truncation": True},
        "input": {"path": str(tmp_path / "corpus.parquet"), **({"id_column": id_column} if id_column else {})},
        # Small files, so that the job commits often: the kills of the fault tests land between commits.
        "output": {"path": str(tmp_path / "out"), "rows_per_file": 200},
        "compute": {"num_cpus": 1, "concurrency": 2, "rows_per_call": 200},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    return path


def _wait_for_files(job: subprocess.Popen, folder: Path, count: int) -> None:
    """Wait until the running job has written ``count`` output files."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(folder.glob("*.parquet"))) < count:
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.2)
    assert len(list(folder.glob("*.parquet"))) >= count, "the job wrote too little in 240 s"


def _output_ids(tmp_path: Path, column: str) -> list:
    return pq.read_table(tmp_path / "out", columns=[column])[column].to_pylist()


def test_corrupt_images_each_get_their_error_and_nothing_is_lost(local_ray, tiny_model, tmp_path):
    from tests.unit.test_vision_handlers import drawn_images, png_bytes

    images = [png_bytes(image) for image in drawn_images()]
    bad = {41: images[0][:60], 142: b"GIF89a but not really an image", 243: b"", 344: None}  # 1% of 400
    blobs = [bad[i] if i in bad else images[i % len(images)] for i in range(400)]
    pq.write_table(pa.table({"pid": list(range(400)), "image": pa.array(blobs, pa.binary())}), tmp_path / "i.parquet")
    spec = parse_spec(
        {
            "task": "image-classification",
            "model": tiny_model("image-classification"),
            "device": "cpu",
            "batch_size": 8,
            "params": {"top_k": 2},
            "input": {"path": str(tmp_path / "i.parquet"), "id_column": "pid"},
            "output": {"path": str(tmp_path / "out")},
            "compute": {"rows_per_call": 64},
        }
    )
    manifest = annotate(spec)
    assert (manifest["rows_out"], manifest["rows_errored"]) == (400, 4)
    out = _read_output(tmp_path / "out").set_index("pid").sort_index()
    assert list(out.index) == list(range(400))
    assert "not a decodable image" in out["error"][41] and "not a decodable image" in out["error"][142]
    assert "zero bytes" in out["error"][243] and "missing" in out["error"][344]
    good = out.drop(list(bad))
    assert good["error"].isna().all() and good["classification"].map(len).eq(2).all()


def test_output_files_hold_rows_per_file_rows(local_ray, tiny_model, tmp_path):
    corpus = make_corpus(6000, seed=12)
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = _spec(
        tiny_model("text-classification"),
        tmp_path / "corpus.parquet",
        tmp_path / "out",
        input={"id_column": "doc_id"},
        output={"rows_per_file": 3000},
        compute={"rows_per_call": 500},
    )
    annotate(spec)
    sizes = [pq.read_metadata(path).num_rows for path in (tmp_path / "out").glob("*.parquet")]
    # 12 blocks of 500 rows, written as a few files of at least 3,000 rows (a hint to Ray Data: the last may be short).
    assert sum(sizes) == 6000 and len(sizes) <= 3 and max(sizes) >= 3000, sizes
