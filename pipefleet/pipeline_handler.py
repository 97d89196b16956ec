"""The default handler: every stage is the loaded ``transformers`` pipeline's own.

Most tasks are declarations on top of it: a handler overrides :meth:`preprocess` to check its
raw input (then calls ``super().preprocess`` with the clean value) and :meth:`postprocess` to
encode what is not plain data (masks and depth maps as PNG, audio as WAV). Its own parameters
(declared with :func:`pipefleet.params.staged`) reach its stages but never the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipefleet import hf_stages, precision
from pipefleet.errors import FatalError
from pipefleet.handler import Params, TaskHandler

if TYPE_CHECKING:
    from transformers import Pipeline


class PipelineHandler(TaskHandler):
    """A task whose stages are its ``transformers`` pipeline's (``pipe``, loaded by :meth:`setup`)."""

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.pipe: "Pipeline | None" = None

    def setup(self) -> None:
        self.pipe = self.load()
        precision.check(self.spec, self.device)
        if hf_stages.is_chunked(self.pipe) and not self.capabilities.chunked:
            # The declaration tells readers and adapters what the engine will do; keep it true. (A handler
            # may chunk inputs itself over a pipeline that does not.)
            raise FatalError(
                f"{type(self).__name__} declares chunked=False, but its pipeline {type(self.pipe).__name__} "
                "makes several model inputs of one input"
            )

    def load(self) -> "Pipeline":
        """The pipeline this handler runs (handlers of pipefleet's own pipelines load theirs)."""
        from pipefleet.models import load_pipeline

        return load_pipeline(self.spec, self.hf_task or self.task)

    @property
    def ready(self) -> bool:
        return self.pipe is not None

    @property
    def device(self) -> Any:
        return self.pipe.device

    @property
    def parallel_forward(self) -> bool:
        """Not for a model that generates: sampling with a ``seed`` draws from torch's one process-wide
        generator, which passes at once would share. Nor for rotary embeddings that rewrite their
        frequencies in the model for each pass's length (``dynamic``, ``longrope``)."""
        model = self.pipe.model
        if model.can_generate():
            return False
        rope = getattr(model.config, "rope_parameters", None) or getattr(model.config, "rope_scaling", None)
        return not (isinstance(rope, Mapping) and rope.get("rope_type", rope.get("type")) in {"dynamic", "longrope"})

    def identity(self) -> dict[str, Any]:
        from pipefleet.models import model_identity

        identity = super().identity()
        if self.pipe is None:
            return identity
        described = precision.describe(self.spec, self.pipe.model, self.device)
        return {**identity, **model_identity(self.pipe, self.spec), "precision": described}

    def token_counts(self, texts: Any) -> list[int]:
        tokenizer = getattr(self.pipe, "tokenizer", None)
        if tokenizer is None or not texts:
            return super().token_counts(texts)
        return [len(ids) for ids in tokenizer(list(texts), truncation=True)["input_ids"]]

    def pipeline_stages(self, params: Params) -> tuple[dict, dict, dict]:
        return hf_stages.sanitize(self.pipe, params)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return hf_stages.preprocess(self.pipe, value, self._for_pipeline(params))

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        return hf_stages.forward(self.pipe, batch, self._for_pipeline(params))

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        return hf_stages.postprocess(self.pipe, outputs, self._for_pipeline(params))

    def _for_pipeline(self, params: Params) -> Mapping[str, Any]:
        """A stage's parameters without the handler's own, which the pipeline does not take."""
        own = [name for name in params if name in self.parameters and self.parameters[name].own]
        return {k: v for k, v in params.items() if k not in own} if own else params
