"""The KubeRay examples name real things: the job's entrypoint module and spec, Serve's import paths and
their arguments, the Ray version the project is tested with, and the Serve config pipefleet writes.
(No Kubernetes cluster runs here; these are the checks that need none.)"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import yaml

from pipefleet.spec import load_spec
from serve.app import serve_config

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "examples" / "kuberay"


def pinned_version(package: str) -> str:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return next(line.split("==")[1] for line in lines if line.startswith(f"{package}=="))


def test_the_rayjob_runs_the_annotation_job_on_a_spec_that_loads():
    job = yaml.safe_load((KUBERAY / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["apiVersion"] == "ray.io/v1"
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "jobs.annotate"]
    importlib.import_module(words[2])  # the module exists
    spec = load_spec(REPO / words[3], **{"output.path": words[words.index("--output") + 1]})
    assert spec.task == "feature-extraction"
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == pinned_version("ray")
    images = [
        c["image"]
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        for c in group["template"]["spec"]["containers"]
    ]
    assert all(image.startswith(f"rayproject/ray:{pinned_version('ray')}-py311") for image in images)
    pins = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["pip"]
    assert f"transformers=={pinned_version('transformers')}" in pins


def test_the_rayservice_deploys_what_print_config_writes(monkeypatch):
    service = yaml.safe_load((KUBERAY / "rayservice.yaml").read_text())
    assert service["kind"] == "RayService"
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    monkeypatch.chdir(REPO)  # spec paths are relative to the working directory, as on the cluster
    written = serve_config(["examples/minilm-embeddings.yaml"])
    strip = lambda app: {k: v for k, v in app.items() if k != "runtime_env"}  # noqa: E731
    assert [strip(app) for app in config["applications"]] == written["applications"]
    assert {k: config[k] for k in ("proxy_location", "http_options", "controller_options")} == {
        k: written[k] for k in ("proxy_location", "http_options", "controller_options")
    }
    for app in config["applications"]:
        module, name = app["import_path"].split(":")
        assert callable(getattr(importlib.import_module(module), name))
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == pinned_version("ray")
