"""Security defaults that hold without Serve: no repository code runs unless the spec says so."""

from __future__ import annotations

import json

import pytest

from pipefleet.errors import FatalError, SpecError
from pipefleet.models import load_pipeline, pipeline_kwargs
from pipefleet.spec import parse_spec

# Model code that, if it ever ran, would leave a file behind.
_CONFIG_CODE = """
from pathlib import Path
from transformers import PretrainedConfig

Path({marker!r}).write_text("repository code ran")


class RemoteConfig(PretrainedConfig):
    model_type = "pipefleet-remote"
"""


def test_trust_remote_code_is_off_unless_the_spec_says_so(tmp_path):
    marker = tmp_path / "ran.txt"
    model = tmp_path / "remote-model"
    model.mkdir()
    (model / "configuration_remote.py").write_text(_CONFIG_CODE.format(marker=str(marker)))
    (model / "config.json").write_text(
        json.dumps({"model_type": "pipefleet-remote", "auto_map": {"AutoConfig": "configuration_remote.RemoteConfig"}})
    )
    spec = parse_spec({"task": "text-classification", "model": str(model), "device": "cpu"})
    assert spec.trust_remote_code is False
    assert pipeline_kwargs(spec, "text-classification")["trust_remote_code"] is False
    with pytest.raises(FatalError, match="trust_remote_code"):
        load_pipeline(spec, "text-classification")
    assert not marker.exists(), "the repository's code ran without trust_remote_code"


def test_remote_code_cannot_be_switched_on_through_model_kwargs():
    with pytest.raises(SpecError, match="set trust_remote_code at the top level"):
        parse_spec({"task": "text-classification", "model_kwargs": {"trust_remote_code": True}})
