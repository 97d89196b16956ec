"""The repository's config files: the Serve config builds, cluster.yaml follows Ray's schema."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_serve_config_is_valid_and_builds(monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    from serve import app as serve_app

    config = ServeDeploySchema.model_validate(yaml.safe_load((REPO / "serve" / "config.yaml").read_text()))
    assert [a.import_path for a in config.applications] == ["serve.app:route_app", "serve.app:index_app"]
    assert [a.route_prefix for a in config.applications] == ["/embeddings", "/"]
    monkeypatch.chdir(REPO)  # spec paths are relative to the repository root, as for `serve run`
    for application in config.applications:
        builder = getattr(serve_app, application.import_path.split(":")[1])
        assert type(builder(application.args)).__name__ == "Application"


def test_serve_config_is_what_print_config_writes(monkeypatch):
    from serve.app import serve_config

    monkeypatch.chdir(REPO)
    written = yaml.safe_load((REPO / "serve" / "config.yaml").read_text())
    assert written == serve_config(["examples/minilm-embeddings.yaml"])
    assert written["controller_options"]["runtime_env"]["env_vars"]["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_cluster_yaml_follows_the_ray_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["resources"]["GPU"] >= 1 and gpu["min_workers"] < gpu["max_workers"]


def test_example_spec_loads():
    from pipefleet.spec import load_spec

    spec = load_spec(REPO / "examples" / "minilm-embeddings.yaml")
    assert spec.task == "feature-extraction" and spec.input.resolved_format() == "parquet"


def test_every_example_spec_is_valid():
    from pipefleet.spec import load_spec

    formats = {}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        spec = load_spec(path)
        formats[path.stem] = (spec.task, spec.input.resolved_format())
    assert formats["image-classification"] == ("image-classification", "images")
    assert formats["speech-recognition"] == ("automatic-speech-recognition", "audio")
    assert formats["zero-shot-images"] == ("zero-shot-image-classification", "parquet")
    assert formats["document-qa"] == ("document-question-answering", "parquet")
