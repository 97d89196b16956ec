"""The one spec that drives both the batch job and the online endpoint.

The model section sits at the top level; ``input``, ``output`` and ``compute`` serve the
job, ``serve`` the endpoint. Every model is frozen and forbids unknown keys, so a typo
fails at load time with a message that says what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipefleet.errors import FatalError, PipefleetError, SpecError

INPUT_FORMATS = ("parquet", "jsonl", "csv", "text", "images", "audio", "binary", "hf")
_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".txt": "text",
    ".text": "text",
    ".arrow": "hf",
}


# Keys of transformers 4 tutorials that transformers 5 renamed, with what to write instead.
RENAMED_KEYS = {
    "torch_dtype": "renamed dtype in transformers 5; write dtype: float16 (or auto, float32, bfloat16)",
    "use_auth_token": "removed in transformers 5; export the Hub token as the HF_TOKEN environment variable instead",
    "token": "never put a Hub token in a spec file; export it as the HF_TOKEN environment variable instead",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def whole_cpus(num_cpus: float) -> int:
    """The torch threads a slot of ``num_cpus`` CPUs gets: its whole CPUs, at least one."""
    return max(1, int(num_cpus))


class InputSpec(_Section):
    """Where the job reads its rows."""

    path: str | None = Field(None, description="Local path, glob, folder, or a pyarrow/fsspec URI (s3://, gs://).")
    format: Literal[INPUT_FORMATS] | None = Field(None, description="Inferred from the path's suffix when omitted.")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Handler input name -> column; default: the handler's first input name."
    )
    id_column: str | None = Field(None, description="A stable id per row; derived (file + row number) when absent.")
    limit: int | None = Field(None, ge=1, description="Read at most this many rows.")
    split: str | None = Field(None, description="Split of a saved Hugging Face DatasetDict (format: hf).")

    def resolved_format(self) -> str:
        """The explicit format, or the one the path's suffix implies."""
        if self.format:
            return self.format
        suffix = Path(self.path or "").suffix.lower()
        if suffix in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[suffix]
        raise SpecError(
            f"input.format: cannot infer the format of {self.path!r}; "
            f"set input.format to one of {', '.join(INPUT_FORMATS)}"
        )


class OutputSpec(_Section):
    """Where the job writes the input rows plus the output and error columns."""

    path: str | None = Field(None, description="Output folder (local or URI).")
    format: Literal["parquet", "jsonl"] = Field("parquet", description="parquet | jsonl")
    column: str | None = Field(None, description="Name of the output column; default: the task's own.")
    rows_per_file: int = Field(
        20_000,
        ge=1,
        description="Rows per output file, at least (Ray Data's min_rows_per_file): few big files suit data lakes "
        "and readers. A file's rows are committed with it, so a crash redoes at most the files being written.",
    )


class ComputeSpec(_Section):
    """The job's actor pool."""

    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per actor; default: 1 when the cluster has GPUs, else 0."
    )
    num_cpus: float = Field(1, gt=0, description="CPUs per actor.")
    concurrency: int | tuple[int, int] = Field(1, description="Actors: a fixed count, or [min, max] to autoscale.")
    lanes: int | None = Field(
        None,
        ge=1,
        description="Forward passes an actor on a CPU runs at once, its whole CPUs divided evenly among them; "
        "default: one per CPU (num_cpus), each on one thread. 1: one pass at a time on all its threads. "
        "An actor on a GPU, or of a model that generates, runs one.",
    )
    rows_per_call: int = Field(
        1024, ge=1, description="Rows handed to one actor call; they are sorted by length and cut into batches."
    )
    stall_warning_s: float = Field(
        300, gt=0, description="Say so when no rows finish for this long (model loading counts as no progress)."
    )
    unplaceable_timeout_s: float = Field(
        600,
        gt=0,
        description="Stop the job (exit 1) when no node of the cluster could hold even one actor for this long "
        "and no rows finished meanwhile: its nodes went away and no autoscaler brings others.",
    )

    @model_validator(mode="after")
    def _check_lanes(self) -> "ComputeSpec":
        if self.lanes is not None and self.lanes > whole_cpus(self.num_cpus):
            raise ValueError(
                f"lanes {self.lanes} > num_cpus {self.num_cpus:g}: each lane needs a CPU of its own; "
                f"raise num_cpus or lower lanes"
            )
        return self

    @field_validator("concurrency")
    @classmethod
    def _check_concurrency(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"must be at least 1, got {value}")
            return value
        low, high = value
        if low < 1:
            raise ValueError(f"min {low} must be at least 1")
        if low > high:
            raise ValueError(f"min {low} > max {high}; write [min, max] with min <= max")
        return value


class AutoscalingSpec(_Section):
    """Ray Serve autoscaling; the delay fields map to ``autoscaling_config`` one to one."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(8, gt=0)
    upscale_delay_s: float = Field(30.0, ge=0)
    downscale_delay_s: float = Field(600.0, ge=0)

    @model_validator(mode="after")
    def _check_bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class ServeSpec(_Section):
    """The online endpoint for this model."""

    route: str | None = Field(None, description='HTTP route; default "/" + task.')
    max_batch_size: int = Field(32, ge=1, description="Rows per forward pass (@serve.batch).")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="How long a batch waits to fill.")
    num_gpus: float = Field(0, ge=0, description="GPUs per replica.")
    num_cpus: float = Field(1, gt=0, description="CPUs per replica.")
    autoscaling: AutoscalingSpec | None = Field(None, description="Omitted: one replica.")
    max_ongoing_requests: int = Field(64, ge=1, description="Requests in flight per replica.")
    max_queued_requests: int = Field(256, ge=1, description="Beyond this many waiting requests: 503 + Retry-After.")
    request_timeout_s: float = Field(30, gt=0, description="A request running longer gets 504.")
    max_body_mb: float = Field(20, gt=0, description="Largest request body accepted.")
    allow_remote_inputs: bool = Field(False, description="Let callers name URLs or server paths as inputs.")
    auth_token_env: str | None = Field(None, description="Env var holding a bearer token; unset: no auth.")
    demo: bool = Field(False, description="Show this route on the browser demo page at /demo (needs pipefleet[demo]).")

    @field_validator("route")
    @classmethod
    def _check_route(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or value == "/" or value.startswith("/-/")):
            raise ValueError(f"route {value!r} must start with '/', not be '/', and not start with '/-/' (reserved)")
        return value

    @model_validator(mode="after")
    def _check_batching(self) -> "ServeSpec":
        # Batches never fill when fewer requests may be in flight than a batch holds (ray #43288).
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests {self.max_ongoing_requests} < max_batch_size {self.max_batch_size}: "
                "batches could never fill; raise max_ongoing_requests or lower max_batch_size"
            )
        return self


class Spec(_Section):
    """One model, how to load it, its task parameters, and how to run it offline and online."""

    task: str = Field(description="A registered task or alias, e.g. feature-extraction, ner.")
    model: str | None = Field(None, description="Hub id or local folder; omitted: the task's default model.")
    tokenizer: str | None = Field(None, description="Tokenizer override (Hub id or folder).")
    config: str | None = Field(None, description="Model config override (Hub id or folder), as pipeline(config=...).")
    feature_extractor: str | None = Field(None, description="Feature extractor override (Hub id or folder).")
    image_processor: str | None = Field(None, description="Image processor override (Hub id or folder).")
    processor: str | None = Field(None, description="Processor override (Hub id or folder), for multimodal models.")
    use_fast: bool = Field(True, description="Use the fast (Rust) tokenizer and image processor where there is one.")
    framework: Literal["pt"] | None = Field(None, description='"pt" (PyTorch), the only one transformers 5 runs.')
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description="Model weights' dtype.")
    autocast: Literal["bfloat16", "float16"] | None = Field(
        None,
        description="Run forward passes in this dtype with the weights as loaded (torch.autocast): bfloat16 on a "
        "CPU that computes it natively (AVX512-BF16, AMX), float16 or bfloat16 on a GPU; null: as loaded.",
    )
    device: str = Field("auto", description='"auto": the GPU this process was given, else CPU; or "cpu", "cuda:0".')
    device_map: str | dict[str, int | str] | None = Field(
        None,
        description='"auto" spreads a large model over the visible GPUs; or a map of module name -> device '
        '(accelerate\'s form, e.g. {"model.embed_tokens": 0, "lm_head": "cpu"}).',
    )
    quantization: Literal["8bit", "4bit"] | None = Field(None, description="bitsandbytes quantization (GPU only).")
    trust_remote_code: bool = Field(False, description="Run model code from the Hub repository.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Passed to from_pretrained.")
    batch_size: int = Field(32, ge=1, description="Rows per forward pass.")
    max_batch_tokens: int | None = Field(
        None,
        ge=1,
        description="Cap on padded tokens (rows x longest row) per forward pass; long rows then share a pass "
        "with fewer others. Default: 2048 when the model runs on CPU, no cap on a GPU.",
    )
    max_input_chars: int = Field(
        100_000, ge=1, description="A longer text input is refused as its row's error, before tokenisation."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Task call parameters; calls may override.")
    input: InputSpec = Field(default_factory=InputSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    serve: ServeSpec = Field(default_factory=ServeSpec)

    @model_validator(mode="before")
    @classmethod
    def _languages_from_task_name(cls, data: Any) -> Any:
        # translation_en_to_fr means the translation task with src_lang en and tgt_lang fr, unless params say otherwise.
        from pipefleet.registry import translation_languages

        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            return data
        languages = translation_languages(data["task"])
        if languages is None:
            return data
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        params = {"src_lang": languages[0], "tgt_lang": languages[1], **params}
        return {**data, "task": "translation", "params": params}

    @field_validator("task")
    @classmethod
    def _check_task(cls, value: str) -> str:
        from pipefleet.registry import canonical_task

        try:
            return canonical_task(value)
        except FatalError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        head = value.split(":", 1)[0]
        if head not in {"auto", "cpu", "cuda", "mps"} or (":" in value and not value.split(":", 1)[1].isdigit()):
            raise ValueError(f"device {value!r}: use auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("device_map")
    @classmethod
    def _check_device_map(cls, value: str | dict | None) -> str | dict | None:
        if isinstance(value, dict):
            for module, device in value.items():
                if not (isinstance(device, int) and device >= 0) and device not in ("cpu", "disk", "meta", "mps"):
                    if not (isinstance(device, str) and device.startswith("cuda")):
                        raise ValueError(
                            f"device_map[{module!r}] = {device!r}: use a GPU number, cuda:N, cpu, mps or disk"
                        )
            return value
        if value not in (None, "auto", "balanced", "balanced_low_0", "sequential"):
            raise ValueError(
                f"device_map {value!r}: use auto, balanced, balanced_low_0, sequential, or a map of module -> device"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        # Spellings of transformers 4 tutorials, which transformers 5 renamed or removed.
        if isinstance(data, dict):
            for key, message in RENAMED_KEYS.items():
                if key in data:
                    raise ValueError(f"{key}: {message}")
            if data.get("framework") not in (None, "pt"):
                raise ValueError(
                    f"framework {data['framework']!r}: transformers 5 runs PyTorch models only (TensorFlow and "
                    "Flax support was removed); drop framework or set it to pt"
                )
        return data

    @field_validator("model_kwargs")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("token", "use_auth_token"):
            if key in value:
                raise ValueError(f"model_kwargs.{key}: never put a Hub token in a spec file; export HF_TOKEN instead")
        if "trust_remote_code" in value:  # one visible switch for running a repository's code
            raise ValueError("model_kwargs.trust_remote_code: set trust_remote_code at the top level of the spec")
        return value

    @model_validator(mode="after")
    def _check_params(self) -> "Spec":
        from pipefleet.registry import handler_class
        from pipefleet.rows import column_map

        handler = handler_class(self.task)
        try:
            handler.check_params(self.params)
        except PipefleetError as exc:
            raise ValueError(f"params: {exc}") from None
        try:
            column_map(handler, self.input.columns)
        except PipefleetError as exc:
            raise ValueError(str(exc)) from None
        if self.device_map and self.device not in ("auto",):
            raise ValueError(f"device_map {self.device_map!r} and device {self.device!r} exclude each other; drop one")
        return self

    @property
    def route(self) -> str:
        """The HTTP route of this model."""
        return self.serve.route or f"/{self.task}"


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid spec"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """Validate a mapping (parsed YAML) into a :class:`Spec`; raises :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping of keys (task, model, ...), got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(source, exc)) from None
    except FatalError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(path: str | Path, **overrides: Any) -> Spec:
    """Load and validate a YAML spec file.

    ``overrides`` replace whole top-level keys or, given as ``"section.key"``, one key
    of a section (used for command-line overrides such as ``input.path``).

    >>> load_spec("examples/minilm-embeddings.yaml").task
    'feature-extraction'
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    data = dict(data) if isinstance(data, dict) else data
    for dotted, value in overrides.items():
        if value is None or not isinstance(data, dict):
            continue
        section, _, key = dotted.partition(".")
        if key:
            data[section] = {**(data.get(section) or {}), key: value}
        else:
            data[section] = value
    return parse_spec(data, source=str(path))
