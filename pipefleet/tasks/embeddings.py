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
from pipefleet.errors import BadInput
from pipefleet.handler import Capabilities, Params
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import TRUNCATION, require_text

POOLINGS = ("mean", "cls", "none")
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@register
class FeatureExtractionHandler(PipelineHandler):
    """Sentence embeddings (``pooling: mean | cls``, ``normalize``) or raw hidden states (``pooling: none``)."""

    task = "feature-extraction"
    parameters = {
        "pooling": P.staged(P.choice(*POOLINGS), "preprocess", "forward", "postprocess"),
        "normalize": P.staged(P.boolean(), "forward", "postprocess"),
        "max_length": P.staged(P.integer(1), "preprocess"),
        # Embedding options of sentence-transformers, TEI and the OpenAI API:
        "dimensions": P.staged(P.integer(1), "postprocess"),  # Matryoshka: the first N, normalised again
        "prompt": P.staged(P.text(), "preprocess"),  # put before the text: "query: ", "passage: "
        "prompt_name": P.staged(P.text(), "preprocess"),  # one of the model's named prompts
        "truncate": P.staged(P.boolean(), "preprocess"),  # false: a text over the limit is its row's error
        "truncation_direction": P.staged(P.choice("right"), "preprocess"),
        # The pipeline's own, for pooling: none.
        "truncation": TRUNCATION,
        "tokenize_kwargs": P.mapping(),
        "return_tensors": P.boolean(),
    }
    output_column = "embedding"
    capabilities = Capabilities(display="json", apis=("embeddings",))

    def setup(self) -> None:
        super().setup()
        config = self.pipe.model.config
        self.hidden_size = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0))
        limits = [self.pipe.tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
        self.max_tokens = min(int(x) for x in limits if x and x < 1_000_000) if any(limits) else 512
        self.pad_id = self.pipe.tokenizer.pad_token_id or 0
        self.prompts = _named_prompts(self.spec.model and self.pipe.model.config._name_or_path)

    @property
    def device(self) -> Any:
        return self.pipe.model.device

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        if _pooling(params) != "none" and _is_token_ids(value):
            return [self._from_ids(value, int(params.get("max_length") or self.max_tokens), params)]
        text = self._prompt(params) + require_text(value, self.task, max_chars=self.spec.max_input_chars)
        if _pooling(params) == "none":
            return super().preprocess(text, params)
        max_length = int(params.get("max_length") or self.max_tokens)
        truncate = params.get("truncate", True)
        encoded = self.pipe.tokenizer(text, truncation=truncate, max_length=max_length, padding=False)
        if not truncate and len(encoded["input_ids"]) > max_length:
            raise BadInput(
                f"{self.task}: the text is {len(encoded['input_ids'])} tokens, over the limit of {max_length}; "
                "send truncate: true to embed its first tokens"
            )
        return [{name: encoded[name] for name in _TOKEN_INPUTS if name in encoded}]

    def _from_ids(self, ids: list[int], max_length: int, params: Params) -> dict[str, list[int]]:
        """A model input from token ids of this model's tokenizer, special tokens included (as OpenAI's
        embeddings API takes them)."""
        vocabulary = self.pipe.tokenizer.vocab_size
        if any(i < 0 or i >= vocabulary for i in ids):
            raise BadInput(f"{self.task}: token ids must lie in 0..{vocabulary - 1}, this model's vocabulary")
        if len(ids) > max_length and params.get("truncate") is False:
            raise BadInput(f"{self.task}: {len(ids)} token ids, over the limit of {max_length}")
        ids = ids[:max_length]
        feature = {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids)}
        return {name: feature[name] for name in self.pipe.tokenizer.model_input_names if name in feature}

    def _prompt(self, params: Params) -> str:
        """The text put before each input: ``prompt``, or the model's prompt named ``prompt_name``."""
        if params.get("prompt_name") is None:
            return params.get("prompt") or ""
        if params.get("prompt") is not None:
            raise BadInput(f"{self.task}: give prompt or prompt_name, not both")
        name = params["prompt_name"]
        if name not in self.prompts:
            known = (
                ", ".join(sorted(self.prompts)) or "none (the model's config_sentence_transformers.json has no prompts)"
            )
            raise BadInput(f"{self.task}: prompt_name {name!r} is not one of the model's prompts: {known}")
        return self.prompts[name]

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
            return _shortened(outputs[0], params.get("dimensions"), params.get("normalize", True), self.task)
        # Batched, the pipeline's states include padding positions, so its raw output would depend on
        # which rows shared a pass; cut to the row's own tokens, every row gets its batch-size-1 answer.
        states, tokens = outputs[0]
        return [super().postprocess([states], value, params)[0][:tokens]]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        if _pooling(params) == "none":
            return pa.list_(pa.list_(pa.list_(pa.float32())))  # [1][tokens][hidden], as pipeline() returns
        size = params.get("dimensions") or getattr(self, "hidden_size", 0)
        return pa.list_(pa.float32(), size) if size else pa.list_(pa.float32())


def _is_token_ids(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    )


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


def _shortened(vector: np.ndarray, dimensions: int | None, normalize: bool, task: str) -> np.ndarray:
    """The first ``dimensions`` values of a (Matryoshka) vector, normalised again when the vector was."""
    if dimensions is None:
        return vector
    if dimensions > len(vector):
        raise BadInput(f"{task}: dimensions {dimensions} is more than the model's {len(vector)}")
    short = vector[:dimensions]
    return short / max(float(np.linalg.norm(short)), 1e-12) if normalize else short


def _named_prompts(folder: str | None) -> dict[str, str]:
    """The prompts a sentence-transformers model names in its folder (``{"query": "query: "}``), if any."""
    import json
    import os

    path = os.path.join(folder, "config_sentence_transformers.json") if folder else ""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as file:
        prompts = json.load(file).get("prompts") or {}
    return {name: text for name, text in prompts.items() if isinstance(text, str)}
