"""A catalogue of broken specs, each rejected with a message that says what to change."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipefleet.errors import SpecError
from pipefleet.spec import load_spec, parse_spec

BROKEN = [
    ({"task": "sumarization-x"}, "unknown task 'sumarization-x'"),
    ({"task": "sentiment-analysys"}, "did you mean 'sentiment-analysis'"),
    ({"task": "ner", "modle": "x"}, "modle: unknown key"),
    ({"model": "x"}, "task: required key is missing"),
    ({"task": "ner", "dtype": "float8"}, "dtype"),
    ({"task": "ner", "device": "gpu"}, "use auto, cpu, cuda, cuda:N or mps"),
    ({"task": "ner", "device_map": "everywhere"}, "device_map 'everywhere'"),
    ({"task": "ner", "device": "cpu", "device_map": "auto"}, "exclude each other"),
    ({"task": "ner", "quantization": "3bit"}, "quantization"),
    ({"task": "ner", "batch_size": 0}, "batch_size"),
    ({"task": "ner", "params": {"top_k": 3}}, "unknown parameter(s) for token-classification: top_k"),
    (
        {"task": "feature-extraction", "params": {"pooling": "max"}},
        "parameter pooling: one of mean, cls, none, got 'max'",
    ),
    ({"task": "text-generation", "params": {"max_new_tokens": "20"}}, "parameter max_new_tokens: an integer >= 1"),
    ({"task": "text-generation", "params": {"do_sample": "no"}}, "parameter do_sample: true or false"),
    ({"task": "zero-shot-classification", "params": {"candidate_labels": [1, 2]}}, "a string or a list of strings"),
    ({"task": "text-classification", "params": {"top_k": 0}}, "parameter top_k: an integer >= 1 or null"),
    ({"task": "ner", "model_kwargs": {"token": "hf_x"}}, "export HF_TOKEN"),
    ({"task": "ner", "compute": {"concurrency": [4, 2]}}, "min 4 > max 2"),
    ({"task": "ner", "compute": {"concurrency": 0}}, "must be at least 1"),
    ({"task": "ner", "compute": {"num_cpus": 2, "lanes": 3}}, "lanes 3 > num_cpus 2: each lane needs a CPU"),
    ({"task": "ner", "compute": {"lanes": 0}}, "greater than or equal to 1"),
    ({"task": "ner", "compute": {"gpus": 1}}, "compute.gpus: unknown key"),
    ({"task": "ner", "input": {"format": "xlsx"}}, "input.format"),
    ({"task": "ner", "serve": {"route": "ner"}}, "must start with '/'"),
    ({"task": "ner", "serve": {"max_batch_size": 64, "max_ongoing_requests": 8}}, "batches could never fill"),
    (
        {"task": "ner", "serve": {"autoscaling": {"min_replicas": 3, "max_replicas": 1}}},
        "min_replicas 3 > max_replicas 1",
    ),
    ({"task": "ner", "input": {"columns": {"txt": "body"}}}, "token-classification has no input named txt"),
    (["task", "ner"], "a spec is a mapping"),
]


@pytest.mark.parametrize(("data", "message"), BROKEN, ids=lambda x: str(x)[:50])
def test_broken_spec_says_what_to_change(data, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="spec.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("spec.yaml")


def test_defaults_and_aliases():
    spec = parse_spec({"task": "sentiment-analysis", "model": "some/model"})
    assert spec.task == "text-classification"
    assert (spec.dtype, spec.device, spec.batch_size, spec.trust_remote_code) == ("auto", "auto", 32, False)
    assert spec.route == "/text-classification"
    with pytest.raises(ValidationError, match="frozen"):
        spec.batch_size = 4


def test_load_spec_file_and_overrides(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("task: ner\nmodel: m\ninput:\n  path: a.parquet\n  limit: 5\n")
    spec = load_spec(path, **{"input.path": "b.jsonl", "output.path": "out"})
    assert (spec.input.path, spec.input.limit, spec.output.path) == ("b.jsonl", 5, "out")
    assert spec.input.resolved_format() == "jsonl"
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "missing.yaml")
    path.write_text("task: [ner\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_input_format_cannot_be_guessed():
    spec = parse_spec({"task": "ner", "input": {"path": "data/corpus"}})
    with pytest.raises(SpecError, match="cannot infer the format"):
        spec.input.resolved_format()


def test_model_that_cannot_load_fails_fast(tmp_path, make_handler):
    from pipefleet.errors import FatalError

    with pytest.raises(FatalError, match="cannot load .*empty-folder"):
        make_handler("text-classification", str(tmp_path / "empty-folder"))


def test_quantization_without_gpu_is_a_clear_error(monkeypatch):
    import torch

    from pipefleet.errors import FatalError
    from pipefleet.models import pipeline_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the message a CPU-only machine gives
    spec = parse_spec({"task": "ner", "model": "m", "quantization": "8bit"})
    with pytest.raises(FatalError, match="needs a CUDA GPU"):
        pipeline_kwargs(spec, "token-classification")


def test_pipeline_kwargs_honour_the_spec(monkeypatch):
    from pipefleet.models import pipeline_kwargs

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    spec = parse_spec(
        {
            "task": "ner",
            "model": "org/name",
            "revision": "v1",
            "dtype": "bfloat16",
            "device": "cpu",
            "trust_remote_code": True,
            "model_kwargs": {"attn_implementation": "eager"},
        }
    )
    kwargs = pipeline_kwargs(spec, "token-classification")
    assert kwargs["model"] == "org/name" and kwargs["revision"] == "v1" and kwargs["dtype"] == "bfloat16"
    assert kwargs["token"] == "hf_secret" and kwargs["trust_remote_code"] is True and kwargs["device"] == "cpu"
    assert kwargs["model_kwargs"] == {"attn_implementation": "eager"}
    mapped = pipeline_kwargs(parse_spec({"task": "ner", "device_map": "auto"}), "token-classification")
    assert mapped["device_map"] == "auto" and "device" not in mapped and mapped["model"] is None


RENAMED = [
    ({"task": "ner", "torch_dtype": "float16"}, "torch_dtype: renamed dtype in transformers 5; write dtype: float16"),
    ({"task": "ner", "use_auth_token": "hf_x"}, "use_auth_token: removed in transformers 5; export the Hub token as"),
    ({"task": "ner", "token": "hf_x"}, "token: never put a Hub token in a spec file"),
    ({"task": "ner", "framework": "tf"}, "transformers 5 runs PyTorch models only"),
    ({"task": "ner", "device_map": {"lm_head": "gpu"}}, "device_map['lm_head'] = 'gpu': use a GPU number, cuda:N"),
]


@pytest.mark.parametrize(("data", "message"), RENAMED, ids=lambda x: str(x)[:40])
def test_spellings_of_older_tutorials_say_what_to_write_now(data, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="spec.yaml")
    assert message in str(caught.value)


def test_every_pipeline_argument_of_the_spec_reaches_pipeline(monkeypatch, tmp_path):
    import transformers

    from pipefleet.models import load_pipeline

    seen = {}
    monkeypatch.setattr(transformers, "pipeline", lambda **kwargs: seen.update(kwargs) or "loaded")
    folders = {name: str(tmp_path / name) for name in ("config", "feature_extractor", "image_processor", "processor")}
    device_map = {"model.embeddings": 0, "classifier": "cpu"}
    spec = parse_spec(
        {"task": "ner", "model": "m", "framework": "pt", "use_fast": False, "device_map": device_map, **folders}
    )
    assert load_pipeline(spec, "token-classification") == "loaded"
    assert {name: seen[name] for name in folders} == folders
    assert seen["use_fast"] is False and seen["device_map"] == device_map and "device" not in seen
    assert "framework" not in seen  # transformers 5 has no framework argument: pt is the only one


def test_a_config_override_folder_does_what_it_does_in_pipeline(tiny_model, tmp_path, make_handler):
    # pipeline(config=...) reads the folder to choose the model class; the weights keep their own config.
    from transformers import AutoConfig, pipeline

    model = tiny_model("text-classification")
    config = AutoConfig.from_pretrained(model)
    config.architectures = ["BertForSequenceClassification"]
    config.save_pretrained(tmp_path / "config")

    handler = make_handler("text-classification", model, config=str(tmp_path / "config"))
    expected = pipeline("text-classification", model=model, config=str(tmp_path / "config"), device="cpu")

    assert type(handler.pipe.model) is type(expected.model)
    texts = ["a first text", "and a second one"]
    for got, want in zip(handler.predict(texts), expected(texts)):
        assert got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-4


def test_an_image_processor_override_folder_is_the_processor_loaded(tiny_model, tmp_path, make_handler):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(tiny_model("image-classification"))
    processor.image_mean = [0.25, 0.25, 0.25]
    processor.save_pretrained(tmp_path / "processor")

    handler = make_handler(
        "image-classification", tiny_model("image-classification"), image_processor=str(tmp_path / "processor")
    )

    assert list(handler.pipe.image_processor.image_mean) == [0.25, 0.25, 0.25]


def test_use_fast_false_loads_what_pipeline_loads_with_it(tiny_model, make_handler):
    # transformers 5 keeps a Python ("slow") backend for a few tokenizers only; for the others
    # use_fast=False loads the same Rust-backed class. Either way, the spec gives what pipeline() gives.
    from transformers import pipeline

    model = tiny_model("text-classification")
    handler = make_handler("text-classification", model, use_fast=False)
    expected = pipeline("text-classification", model=model, use_fast=False, device="cpu")
    assert type(handler.pipe.tokenizer) is type(expected.tokenizer)
    assert handler.pipe.tokenizer.is_fast == expected.tokenizer.is_fast
