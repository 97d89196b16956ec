"""The pipefleet command: tasks and predict."""

from __future__ import annotations

import json

from pipefleet.cli import main


def test_tasks_lists_tasks_with_aliases(capsys):
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "text-classification\tsentiment-analysis" in lines
    assert "token-classification\tner" in lines
    assert {"feature-extraction", "fill-mask", "text-generation", "zero-shot-classification"} <= set(lines)


def test_predict_prints_json_lines(tmp_path, tiny_model, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"task: sentiment-analysis\nmodel: {tiny_model('text-classification')}\ndevice: cpu\n"
        "input: {columns: {text: body}}\nparams: {top_k: 2}\n"
    )
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": 1, "body": "great film"}\n{"id": 2, "body": null}\n')
    assert main(["predict", str(spec), "--input", str(rows)]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["id"] == 1 and len(first["classification"]) == 2 and first["error"] is None
    assert second["classification"] is None and "missing" in second["error"]


def test_bad_spec_exits_2_with_message(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: sentimnt-analysis\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('"x"\n')
    assert main(["predict", str(spec), "--input", str(rows)]) == 2
    assert "did you mean 'sentiment-analysis'" in capsys.readouterr().err
