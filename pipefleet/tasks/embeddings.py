"""feature-extraction: one pooled vector per text, or the pipeline's raw per-token states.

The pipeline returns every token's hidden state as nested Python lists, which is slow and
not what a corpus annotation wants. With ``pooling: mean`` or ``cls`` this handler's stages are
its own: preprocess tokenises a text (truncated to the model's length), forward pads a
length-sorted batch, runs the model and pools (and normalises) each row's states, and the
answer is a float32 vector. ``pooling: none`` runs the pipeline's stages and cuts each row's
states to its own tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import hf_stages
from pipefleet import params as P
from pipefleet.handler import Capabilities, Params
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import require_text

POOLINGS = ("mean", "cls", "none")
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@register
class FeatureExtractionHandler(PipelineHandler):
    """Sentence embeddings (``pooling: mean | cls``, ``normalize``) or raw hidden states (``pooling: none``)."""

    task = "feature-extraction"
    parameters = {
        "pooling": P.staged(P.choice(*POOLINGS), "preprocess", "forward", "postprocess"),
        "normalize": P.staged(P.boolean(), "forward"),
        "max_length": P.staged(P.integer(1), "preprocess"),
        # The pipeline's own, for pooling: none.
        "truncation": P.boolean(),
        "tokenize_kwargs": P.mapping(),
        "return_tensors": P.boolean(),
    }
    output_column = "embedding"
    capabilities = Capabilities(display="json")

    def setup(self) -> None:
        super().setup()
        config = self.pipe.model.config
        self.hidden_size = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0))
        limits = [self.pipe.tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
        self.max_tokens = min(int(x) for x in limits if x and x < 1_000_000) if any(limits) else 512
        self.pad_id = self.pipe.tokenizer.pad_token_id or 0

    @property
    def device(self) -> Any:
        return self.pipe.model.device

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        text = require_text(value, self.task, max_chars=self.spec.max_input_chars)
        if _pooling(params) == "none":
            return super().preprocess(text, params)
        max_length = int(params.get("max_length") or self.max_tokens)
        encoded = self.pipe.tokenizer(text, truncation=True, max_length=max_length, padding=False)
        return [{name: encoded[name] for name in _TOKEN_INPUTS if name in encoded}]

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        if _pooling(params) == "none":
            tokens = [hf_stages.feature_length(feature) for feature in batch]  # before forward pops the inputs
            return [(states, n) for states, n in zip(super().forward(batch, params), tokens)]
        import torch

        padded = _pad(batch, self.pad_id)
        inputs = {name: tensor.to(self.device) for name, tensor in padded.items()}
        with torch.inference_mode():
            hidden = self.pipe.model(**inputs)[0]
            pooled = _pool(hidden, inputs["attention_mask"], _pooling(params))
            if params.get("normalize", True):
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return list(pooled.float().cpu().numpy())

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        if _pooling(params) != "none":
            return outputs[0]
        # Batched, the pipeline's states include padding positions, so its raw output would depend on
        # which rows shared a pass; cut to the row's own tokens, every row gets its batch-size-1 answer.
        states, tokens = outputs[0]
        return [super().postprocess([states], value, params)[0][:tokens]]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        if _pooling(params) == "none":
            return pa.list_(pa.list_(pa.list_(pa.float32())))  # [1][tokens][hidden], as pipeline() returns
        size = getattr(self, "hidden_size", 0)
        return pa.list_(pa.float32(), size) if size else pa.list_(pa.float32())


def _pooling(params: Params) -> str:
    return str(params.get("pooling", "mean")).lower()


def _pad(batch: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Token lists padded on the right to the longest, as int64 tensors."""
    import torch

    width = max(len(feature["input_ids"]) for feature in batch)
    padded = {}
    for name in batch[0]:
        fill = pad_id if name == "input_ids" else 0
        array = np.full((len(batch), width), fill, dtype=np.int64)
        for i, feature in enumerate(batch):
            array[i, : len(feature[name])] = feature[name]
        padded[name] = torch.from_numpy(array)
    return padded


def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
