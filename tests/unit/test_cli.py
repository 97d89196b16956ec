"""The pipefleet command: tasks, predict, each subcommand's help, and serve's refusal to wait."""

from __future__ import annotations

import json

import pytest

from pipefleet_cli import main


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


@pytest.mark.parametrize(
    ("command", "option"),
    [("annotate", "--output"), ("serve", "--ingress"), ("demo", "--print-config"), ("predict", "--input")],
)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_each_subcommand_prints_its_own_help(command, option, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, flag])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"pipefleet {command}" in out and option in out


def test_the_top_level_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"pipefleet {c} -h" in out for c in ("annotate", "serve", "demo"))


def test_bad_spec_exits_2_with_message(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: sentimnt-analysis\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('"x"\n')
    assert main(["predict", str(spec), "--input", str(rows)]) == 2
    assert "did you mean 'sentiment-analysis'" in capsys.readouterr().err


def test_capacity_problems_name_what_the_replicas_need():
    from pipefleet.spec import parse_spec
    from serve.app import capacity_problems

    def spec(route: str, **serve: object):
        return parse_spec({"task": "text-classification", "model": "m", "serve": {"route": route, **serve}})

    two_cpu_routes = [spec("/a", num_cpus=1), spec("/b", num_cpus=1)]
    assert capacity_problems(two_cpu_routes, {"CPU": 3.0}) == []
    (cpu,) = capacity_problems(two_cpu_routes, {"CPU": 2.0})
    assert "need 2.1 CPUs (/a 1 x 1, /b 1 x 1, the index 0.1) and Ray has 2" in cpu
    scaled = spec("/g", num_cpus=1, num_gpus=1, autoscaling={"min_replicas": 2, "max_replicas": 4})
    (gpu,) = capacity_problems([scaled], {"CPU": 8.0, "GPU": 1.0})
    assert "need 2 GPUs (/g 2 x 1) and Ray has 1" in gpu and "min_replicas" in gpu


def test_the_replica_watch_says_when_replicas_wait_for_room_and_when_they_no_longer_do():
    from pipefleet.spec import parse_spec
    from serve.watch import ReplicaWatch

    gpu = parse_spec({"task": "text-classification", "model": "m", "serve": {"route": "/g", "num_gpus": 1}})
    watch = ReplicaWatch([gpu], autoscaler=True)
    assert watch.news({"pipefleet-g": {"RUNNING": 1}}, {"CPU": 3.0}) == []  # nothing waits: nothing to say
    (waiting,) = watch.news({"pipefleet-g": {"RUNNING": 1, "STARTING": 2}}, {"CPU": 3.0, "GPU": 0.0})
    assert waiting == (
        "waiting for the autoscaler: /g: 2 replica(s) starting, 1 running; each asks for 1 CPU and 1 GPU, "
        "and the cluster has 0 GPU free"
    )
    assert watch.news({"pipefleet-g": {"RUNNING": 1, "STARTING": 2}}, {"CPU": 3.0}) == []  # said once
    assert len(watch.news({"pipefleet-g": {"RUNNING": 2, "STARTING": 1}}, {"CPU": 3.0})) == 1  # the count moved
    (placed,) = watch.news({"pipefleet-g": {"RUNNING": 3}}, {"CPU": 1.5})
    assert placed == "/g: 3 replica(s) running; none waits for room"
    # Starting with room to spare (a model loading): no wait to report.
    assert watch.news({"pipefleet-g": {"RUNNING": 3, "STARTING": 1}}, {"CPU": 1.0, "GPU": 1.0}) == []
    local = ReplicaWatch([gpu], autoscaler=False)
    (stuck,) = local.news({"pipefleet-g": {"STARTING": 1}}, {"CPU": 1.0})
    assert "nothing brings more to a local Ray; lower serve.autoscaling.max_replicas" in stuck
