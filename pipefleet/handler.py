"""The contract every task implements, shared by the batch job and the online endpoint.

A handler is built from a spec cheaply; :meth:`TaskHandler.setup` loads the model once
per actor or replica. :meth:`TaskHandler.predict` takes a batch of inputs and returns
exactly one outcome per input, in order: the task's output (the structure
``transformers.pipeline`` returns for that input) or a :class:`RowError`.
Handlers know nothing of Ray, Arrow files or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from pipefleet.errors import BadInput, BadParameter, ModelError, RowError, ServerFault
from pipefleet.params import Check, check_values
from pipefleet.runner import RunStats, Unpad, run_pipeline

if TYPE_CHECKING:
    from transformers import Pipeline

    from pipefleet.spec import Spec

Params = Mapping[str, Any]

# Padded tokens per forward pass on a CPU when the spec sets no max_batch_tokens. On a CPU the
# cost of a pass grows with its padded size, so long rows gain nothing from sharing one; 2048
# measured best for MiniLM on mixed-length text (bench/batch.py). GPUs want big passes: no cap.
CPU_BATCH_TOKENS = 2048
LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float64())])  # the classifiers' output item


class TaskHandler:
    """Base class of the task handlers.

    Subclasses set the class attributes and override :meth:`prepare` (validate one raw
    input) and :meth:`arrow_type`; tasks whose hot path differs from the pipeline's
    override :meth:`run`.

    >>> from pipefleet.spec import parse_spec
    >>> from pipefleet.registry import handler_class
    >>> spec = parse_spec({"task": "sentiment-analysis", "model": "path/to/model"})
    >>> handler = handler_class(spec.task)(spec)   # cheap: nothing is loaded yet
    >>> handler.task
    'text-classification'
    """

    task: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    hf_task: ClassVar[str | None] = None  # the transformers task name, when it differs
    input_names: ClassVar[tuple[str, ...]] = ("text",)  # first is the main input; the rest optional
    parameters: ClassVar[dict[str, Check]] = {}  # name -> check (see pipefleet.params)
    output_column: ClassVar[str] = "output"
    # "image", "audio" or "video" for tasks whose main input is such a file's bytes. Their pipelines would
    # open a path or fetch a URL given as a string, so the endpoint refuses such strings unless
    # the operator allows remote inputs; the demo page offers an upload of that kind.
    media: ClassVar[str | None] = None
    # Programs the handler runs for some inputs -> how an operator installs them. A row that needs a
    # missing one is the server's fault (a 500 naming the fix), not the caller's.
    programs: ClassVar[dict[str, str]] = {}

    def __init__(self, spec: "Spec") -> None:
        self.spec = spec
        self.pipe: "Pipeline | None" = None
        self.stats = RunStats()

    # ---- lifecycle -------------------------------------------------------------------

    def setup(self) -> None:
        """Load the model; called once per actor or replica, never at import time."""
        from pipefleet.models import load_pipeline

        self.pipe = load_pipeline(self.spec, self.hf_task or self.task)

    def identity(self) -> dict[str, Any]:
        """Task, model and revision as loaded."""
        from pipefleet.models import model_identity

        base = {"task": self.task, "model": self.spec.model, "revision": self.spec.revision}
        return {**base, **model_identity(self.pipe, self.spec)} if self.pipe is not None else base

    @classmethod
    def missing_programs(cls) -> dict[str, str]:
        """The programs of :attr:`programs` this machine lacks, with how to install each."""
        import shutil

        return {name: how for name, how in cls.programs.items() if shutil.which(name) is None}

    # ---- parameters ------------------------------------------------------------------

    @classmethod
    def check_params(cls, params: Params) -> None:
        """Raise :class:`BadParameter` naming any parameter this task does not take, or a wrong value."""
        unknown = sorted(set(params) - set(cls.parameters))
        if unknown:
            accepted = ", ".join(sorted(cls.parameters)) or "none"
            raise BadParameter(f"unknown parameter(s) for {cls.task}: {', '.join(unknown)}; accepted: {accepted}")
        check_values(cls.parameters, dict(params))

    def merged_params(self, overrides: Params | None) -> dict[str, Any]:
        """Spec parameters overridden by a call's, as ``pipeline(..., **kwargs)`` then ``pipe(x, **kwargs)``."""
        if overrides:
            self.check_params(overrides)
        return {**self.spec.params, **(overrides or {})}

    # ---- rows of a table (the job, ``pipefleet predict``) -----------------------------

    @classmethod
    def column_map(cls, columns: Mapping[str, str]) -> dict[str, str]:
        """Handler input name -> column, defaulting to the main input read from a column of the same name."""
        unknown = sorted(set(columns) - set(cls.input_names))
        if unknown:
            raise BadInput(
                f"input.columns: {cls.task} has no input named {', '.join(unknown)}; "
                f"its inputs are {', '.join(cls.input_names)}"
            )
        return dict(columns) or {cls.input_names[0]: cls.input_names[0]}

    @classmethod
    def input_from_row(cls, row: Mapping[str, Any], columns: Mapping[str, str]) -> Any:
        """The raw input of one row: the mapped column's value, or a dict when several inputs are mapped."""
        if len(columns) == 1:
            return row.get(next(iter(columns.values())))
        return {name: row.get(column) for name, column in columns.items()}

    # ---- the batch call --------------------------------------------------------------

    def predict(self, inputs: Sequence[Any], params: Params | Sequence[Params] | None = None) -> list[Any]:
        """One outcome per input, in order: the output, or a :class:`RowError`.

        ``params`` overrides the spec's parameters for every row, or row by row when it
        is a sequence as long as ``inputs`` (the endpoint batches requests that way).
        """
        if self.pipe is None:
            raise ModelError(f"{type(self).__name__}.setup() was not called")
        per_row = self._per_row_params(inputs, params)
        outcomes: list[Any] = [None] * len(inputs)
        ready: list[int] = []
        prepared: list[Any] = []
        prepared_params: list[dict[str, Any]] = []
        for index, raw in enumerate(inputs):
            try:
                value, row_params = self.prepare(raw, per_row[index])
            except (BadInput, ServerFault) as exc:
                outcomes[index] = RowError.from_exception(exc)
                continue
            ready.append(index)
            prepared.append(value)
            prepared_params.append(row_params)
        results = self.run(prepared, prepared_params) if prepared else []
        if len(results) != len(prepared):
            raise ModelError(f"batch size mismatch: {len(prepared)} inputs gave {len(results)} outputs")
        for index, result in zip(ready, results):
            outcomes[index] = result
        return outcomes

    def _per_row_params(self, inputs: Sequence[Any], params: Params | Sequence[Params] | None) -> list[dict]:
        if params is None or isinstance(params, Mapping):
            shared = self.merged_params(params)
            return [shared] * len(inputs)
        if len(params) != len(inputs):
            raise ModelError(f"{len(params)} parameter sets for {len(inputs)} inputs")
        return [self.merged_params(p) for p in params]

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Validate one raw input; return the pipeline's input and this row's parameters.

        Raises :class:`BadInput` with a message naming the problem. The default takes
        one non-empty string.
        """
        return self.text(raw), params

    def run(self, inputs: list[Any], row_params: list[dict[str, Any]]) -> list[Any]:
        """The hot path: the pipeline's own stages, batched across rows (see :mod:`pipefleet.runner`)."""
        outcomes = run_pipeline(
            self.pipe, inputs, row_params, self.batch_size(), self.stats, self.max_batch_tokens(), self.unpad()
        )
        return [self._finished(outcome) for outcome in outcomes]

    def _finished(self, outcome: Any) -> Any:
        if isinstance(outcome, RowError):
            return outcome
        try:
            return self.finish(outcome)
        except Exception as exc:  # an output that cannot be encoded fails its row alone
            return RowError.from_exception(exc, kind="model_error")

    def batch_size(self) -> int:
        """Rows per forward pass: the spec's, unless the model cannot batch without changing its outputs."""
        return self.spec.batch_size

    def unpad(self) -> "Unpad | None":
        """For models with an output per input frame: cut what batch padding added (see :mod:`pipefleet.runner`)."""
        return None

    def max_batch_tokens(self) -> int | None:
        """The spec's cap on padded tokens per forward pass; by default 2048 on a CPU, none on a GPU."""
        if self.spec.max_batch_tokens is not None:
            return self.spec.max_batch_tokens
        device = getattr(self.pipe, "device", None)
        return CPU_BATCH_TOKENS if getattr(device, "type", None) == "cpu" else None

    def finish(self, output: Any) -> Any:
        """A successful row's output as plain data (tasks whose pipelines return images or tensors override this)."""
        return output

    def text(self, value: Any, what: str = "input") -> str:
        """``value`` as a text input of this task: a non-empty string within the spec's ``max_input_chars``."""
        return require_text(value, self.task, what, self.spec.max_input_chars)

    @classmethod
    def single_output(cls, output: Any, raw: Any, call_params: Params) -> Any:
        """What ``pipeline(raw, **call_params)`` returns for one input given alone.

        ``output`` is the row's output in a batch; the two differ only for tasks with a
        legacy single-input shape.
        """
        return output

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> "pa.DataType":
        """The Arrow type of one row's output for these parameters and input names."""
        raise NotImplementedError


def require_text(value: Any, task: str, what: str = "input", max_chars: int | None = None) -> str:
    """``value`` if it is a non-empty string of at most ``max_chars`` characters, else BadInput naming the problem."""
    if value is None:
        raise BadInput(f"{task}: {what} is missing (null)")
    if not isinstance(value, str):
        raise BadInput(f"{task}: {what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadInput(f"{task}: {what} is empty")
    if max_chars is not None and len(value) > max_chars:
        raise BadInput(f"{task}: {what} is {len(value):,} characters, over max_input_chars ({max_chars:,})")
    return value


def split_row_labels(raw: Any, params: dict[str, Any], main: str, task: str) -> tuple[Any, dict[str, Any]]:
    """The main input and this row's parameters for zero-shot tasks.

    A row may carry its own labels (``{main: ..., "candidate_labels": [...]}``), which replace the
    spec's; labels given as one string are split on commas, as ``pipeline`` does. Raises
    BadInput when a row ends up with no labels.
    """
    if isinstance(raw, dict):
        unknown = set(raw) - {main, "candidate_labels"}
        if unknown:
            raise BadInput(f"{task}: an input has keys {main} and candidate_labels, got {sorted(unknown)}")
        if raw.get("candidate_labels") is not None:
            params = {**params, "candidate_labels": raw["candidate_labels"]}
        raw = raw.get(main)
    labels = params.get("candidate_labels")
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not labels or not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x for x in labels):
        raise BadInput(f"{task}: candidate_labels must be a non-empty list of strings (in params or per row)")
    return raw, {**params, "candidate_labels": list(labels)}
