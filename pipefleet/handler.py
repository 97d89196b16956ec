"""The contract every task implements, shared by the batch job and the online endpoint.

A handler is a class with declarations and three stages, modelled on ``transformers``
pipelines (``preprocess`` / ``_forward`` / ``postprocess``), LitServe's ``LitAPI`` and
infinity's ``encode_pre`` / ``encode_core`` / ``encode_post``:

- declarations, at class level: the task's name, its :class:`Input` s, its parameters (each a
  :class:`~pipefleet.params.Param` that names the stage it goes to), the Arrow type of its output
  (:meth:`TaskHandler.arrow_type`) and its :class:`Capabilities`. ``jobs/``, ``serve/`` and the
  demo page dispatch on these, never on task names;
- :meth:`~TaskHandler.setup` loads the model, once per actor or replica;
- :meth:`~TaskHandler.preprocess` (CPU: validation, the pipeline's preprocess, chunking) turns
  one input into model inputs; :meth:`~TaskHandler.forward` runs a batch of them, the only code
  that touches the accelerator; :meth:`~TaskHandler.postprocess` turns one input's model outputs
  into its answer (the structure ``pipeline()`` returns) as plain data;
- :meth:`~TaskHandler.stream` yields pieces of one answer, where the handler declares streaming.

The engine (:mod:`pipefleet.engine`) drives the stages: it groups, sorts and batches model inputs,
and returns exactly one outcome per input, in order, an output or a :class:`RowError`.
Handlers know nothing of Ray, Arrow files or HTTP. Most handlers subclass
:class:`pipefleet.pipeline_handler.PipelineHandler`, whose stages are the loaded pipeline's.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pipefleet.errors import BadInput, BadParameter, ModelError
from pipefleet.params import STAGES, Param, Params, StageParams, as_params, check_values

if TYPE_CHECKING:
    import pyarrow as pa

    from pipefleet.engine import Engine, RunStats
    from pipefleet.spec import Spec

MEDIA = ("image", "audio", "video")  # input kinds that arrive as a file's bytes
INPUT_KINDS = (*MEDIA, "text", "texts", "labels", "table", "json")  # texts: a list of strings
# How a person reads an output (the demo page draws each its own way; see TaskHandler.readable).
DISPLAYS = ("labels", "entities", "text", "boxes", "masks", "image", "audio", "json")


@dataclass(frozen=True)
class Input:
    """One named input of a task. The first of a handler's inputs is its main input; a row with one
    input passes it bare, a row with several passes ``{name: value}``."""

    name: str
    kind: str = "text"  # one of INPUT_KINDS
    required: bool = True


@dataclass(frozen=True)
class Capabilities:
    """What adapters may do with a task, declared by its handler.

    ``media`` is filled from the main input's kind (``image``, ``audio`` or ``video`` for tasks
    whose main input is such a file's bytes: pipelines would open a path or fetch a URL given as
    a string, so the endpoint refuses such strings unless the operator allows remote inputs).
    """

    display: str = "json"  # how a person reads the output: one of DISPLAYS
    streaming: bool = False  # stream() yields pieces of one answer (text as it is generated)
    chunked: bool = False  # one input may become several model inputs (windows, chunks, label pairs)
    # The OpenAI-style routes a model of this task answers beside its own: "embeddings", "rerank".
    apis: tuple[str, ...] = ()
    media: str | None = None


class TaskHandler(ABC):
    """The contract of a task: declarations, :meth:`setup` and three stages (see the module docstring).

    >>> from pipefleet.spec import parse_spec
    >>> from pipefleet.registry import handler_class
    >>> spec = parse_spec({"task": "sentiment-analysis", "model": "path/to/model"})
    >>> handler = handler_class(spec.task)(spec)   # cheap: nothing is loaded yet
    >>> handler.task, handler.inputs[0].name, handler.capabilities.display
    ('text-classification', 'text', 'labels')
    """

    task: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    hf_task: ClassVar[str | None] = None  # the transformers task name, when it differs
    inputs: ClassVar[tuple[Input, ...]] = (Input("text"),)
    parameters: ClassVar[dict[str, Param]] = {}  # bare checks are made pipeline Params
    output_column: ClassVar[str] = "output"
    capabilities: ClassVar[Capabilities] = Capabilities()
    # Programs the handler runs for some inputs -> how an operator installs them. A row that needs a
    # missing one is the server's fault (a 500 naming the fix), not the caller's.
    programs: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.parameters = as_params(cls.parameters)
        kinds = [i.kind for i in cls.inputs]
        if not cls.inputs or any(kind not in INPUT_KINDS for kind in kinds):
            raise TypeError(f"{cls.__name__}.inputs: kinds are {', '.join(INPUT_KINDS)}, got {kinds}")
        media = cls.inputs[0].kind if cls.inputs[0].kind in MEDIA else None
        cls.capabilities = dataclasses.replace(cls.capabilities, media=media)
        if cls.capabilities.display not in DISPLAYS:
            raise TypeError(f"{cls.__name__}: display {cls.capabilities.display!r} is not one of {DISPLAYS}")
        # As LitServe checks stream before the server starts: a declaration must match the code.
        overrides_stream = cls.stream is not TaskHandler.stream
        if cls.capabilities.streaming != overrides_stream:
            raise TypeError(
                f"{cls.__name__}: capabilities.streaming is {cls.capabilities.streaming} but stream() is "
                f"{'' if overrides_stream else 'not '}implemented"
            )

    def __init__(self, spec: "Spec") -> None:
        self.spec = spec
        self.batch_rows = spec.batch_size  # rows per forward pass; setup() may lower it for a model
        self._engine: "Engine | None" = None

    # ---- declarations, derived ---------------------------------------------------------

    @classmethod
    def input_names(cls) -> tuple[str, ...]:
        return tuple(i.name for i in cls.inputs)

    @classmethod
    def missing_programs(cls) -> dict[str, str]:
        """The programs of :attr:`programs` this machine lacks, with how to install each."""
        import shutil

        return {name: how for name, how in cls.programs.items() if shutil.which(name) is None}

    # ---- the contract ------------------------------------------------------------------

    @abstractmethod
    def setup(self) -> None:
        """Load the model; called once per actor or replica, never at import time."""

    @property
    @abstractmethod
    def device(self) -> Any:
        """The ``torch.device`` the model runs on (once set up)."""

    @abstractmethod
    def preprocess(self, value: Any, params: Params) -> list[Any]:
        """One raw input -> its model inputs (usually one; a chunked task's several).

        Validates the input and raises :class:`~pipefleet.errors.BadInput` naming the problem.
        """

    @abstractmethod
    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        """Model inputs -> one model output each, in one pass: the hot path."""

    @abstractmethod
    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        """One input's model outputs (in chunk order) -> its answer, as plain data."""

    def stream(self, value: Any, params: StageParams) -> Iterator[str]:
        """Pieces of one input's answer as they are produced; only where ``capabilities.streaming``."""
        raise NotImplementedError(f"{self.task} does not stream")

    @abstractmethod
    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> "pa.DataType":
        """The Arrow type of one row's output for these call parameters and input names."""

    def batch_key(self, feature: Any) -> Any:
        """Model inputs with different keys never share a forward pass (rows with equal parameters share
        by default; a zero-shot image model's input holds its row's labels, so labels are its key)."""
        return None

    def pipeline_stages(self, params: Params) -> tuple[dict, dict, dict]:
        """The pipeline's parameters split into preprocess, forward and postprocess ones.

        A handler without a pipeline declares only its own parameters, so it gets none."""
        return {}, {}, {}

    def identity(self) -> dict[str, Any]:
        """Task, model and revision as loaded."""
        return {"task": self.task, "model": self.spec.model, "revision": self.spec.revision}

    @classmethod
    def single_output(cls, output: Any, raw: Any, call_params: Params) -> Any:
        """What ``pipeline(raw, **call_params)`` returns for one input given alone.

        ``output`` is the row's output in a batch; the two differ only for tasks with a
        legacy single-input shape.
        """
        return output

    @classmethod
    def task_spec_params(cls, call_params: Params) -> dict[str, Any]:
        """A call's parameters with the task specification's defaults where they differ from ``pipeline()``'s."""
        return dict(call_params)

    @classmethod
    def task_spec_answer(cls, outputs: list[Any], inputs: list[Any], single: bool, call_params: Params) -> Any:
        """The answer to a call in the shape of Hugging Face's task specification (what
        ``huggingface_hub.InferenceClient`` parses). The default is what ``pipeline()`` answers; a task
        whose specification differs says how (a documented transform of the pipeline's answer)."""
        return cls.single_output(outputs[0], inputs[0], call_params) if single else outputs

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text is, for the usage that OpenAI-style answers report (0 without a tokenizer)."""
        return [0] * len(texts)

    @classmethod
    def readable(cls, output: Any, value: Any = None) -> Any:
        """An output in the form of :attr:`Capabilities.display` (see :mod:`pipefleet.readable`)."""
        from pipefleet.readable import readable

        return readable(cls.capabilities.display, output, value)

    # ---- parameters: checked once per call -----------------------------------------------

    @classmethod
    def check_params(cls, params: Params) -> dict[str, Any]:
        """The parameters as their checks normalise them; :class:`BadParameter` naming any parameter this task
        does not take, or a wrong value."""
        unknown = sorted(set(params) - set(cls.parameters))
        if unknown:
            accepted = ", ".join(sorted(cls.parameters)) or "none"
            raise BadParameter(f"unknown parameter(s) for {cls.task}: {', '.join(unknown)}; accepted: {accepted}")
        return check_values(cls.parameters, params)

    def resolve(self, overrides: Params | None = None) -> StageParams:
        """A call's parameters over the spec's, checked once and split by stage.

        Raises :class:`BadParameter` for a parameter the task does not take or a value of the wrong
        type, and :class:`BadInput` for a value the pipeline itself rejects.
        """
        overrides = self.check_params(overrides) if overrides else {}
        call = {**check_values(self.parameters, self.spec.params), **overrides}
        own = {name for name in call if self.parameters[name].own}
        try:
            stages = self.pipeline_stages({k: v for k, v in call.items() if k not in own})
        except (BadParameter, BadInput):
            raise
        except Exception as exc:  # e.g. a stride longer than the model's window
            raise BadInput(f"{self.task}: {type(exc).__name__}: {exc}") from None
        for stage, values in zip(STAGES, stages):
            values.update({name: call[name] for name in own if stage in self.parameters[name].stages})
        frozen = [MappingProxyType(values) for values in stages]
        return StageParams(MappingProxyType(call), *frozen)

    # ---- the batch call ----------------------------------------------------------------

    @property
    def engine(self) -> "Engine":
        """The engine that drives this handler's stages (made on first use, after setup)."""
        if self._engine is None:
            from pipefleet.engine import Engine

            self._engine = Engine(self)
        return self._engine

    @property
    def stats(self) -> "RunStats":
        """What the engine had to work around so far (batches halved after running out of memory)."""
        return self.engine.stats

    def predict(self, inputs: Sequence[Any], params: Any = None) -> list[Any]:
        """One outcome per input, in order: the output, or a :class:`~pipefleet.errors.RowError`.

        ``params`` overrides the spec's parameters for every row (a mapping, or a
        :class:`StageParams` already resolved), or row by row when it is a sequence as long as
        ``inputs`` (the endpoint batches requests that way).
        """
        if not self.ready:
            raise ModelError(f"{type(self).__name__}.setup() was not called")
        return self.engine.run(inputs, params)

    @property
    def ready(self) -> bool:
        """Whether :meth:`setup` has loaded the model."""
        return True

    @property
    def parallel_forward(self) -> bool:
        """Whether :meth:`forward` may run for several batches at once, in threads (the engine's lanes)."""
        return True
