"""feature-extraction: one pooled vector per text, or the pipeline's raw per-token states.

The pipeline returns every token's hidden state as nested Python lists, which is slow and
not what a corpus annotation wants. The pooled path tokenises a whole call at once, sorts
the rows by token count, and runs length-bucketed batches straight through the model,
returning float32 vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import RowError
from pipefleet.handler import Params, TaskHandler
from pipefleet.registry import register
from pipefleet.runner import group_rows, run_batches, run_pipeline

POOLINGS = ("mean", "cls", "none")
_PIPELINE_PARAMS = ("truncation", "tokenize_kwargs", "return_tensors")


@register
class FeatureExtractionHandler(TaskHandler):
    """Sentence embeddings (``pooling: mean | cls``, ``normalize``) or raw hidden states (``pooling: none``)."""

    task = "feature-extraction"
    parameters = {
        "pooling": P.choice(*POOLINGS),
        "normalize": P.boolean(),
        "max_length": P.integer(1),
        "truncation": P.boolean(),
        "tokenize_kwargs": P.mapping(),
        "return_tensors": P.boolean(),
    }
    output_column = "embedding"

    def setup(self) -> None:
        super().setup()
        config = self.pipe.model.config
        self.hidden_size = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0))
        limits = [self.pipe.tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
        self.max_tokens = min(int(x) for x in limits if x and x < 1_000_000) if any(limits) else 512

    def run(self, inputs: list[Any], row_params: list[dict[str, Any]]) -> list[Any]:
        outcomes: list[Any] = [None] * len(inputs)
        for rows in group_rows(row_params):
            params = row_params[rows[0]]
            texts = [inputs[row] for row in rows]
            if params.get("pooling", "mean") == "none":
                results = self.token_states(texts, params)
            else:
                results = self.embed(
                    texts,
                    params.get("pooling", "mean"),
                    bool(params.get("normalize", True)),
                    int(params.get("max_length") or self.max_tokens),
                )
            for row, result in zip(rows, results):
                outcomes[row] = result
        return outcomes

    def token_states(self, texts: list[str], params: dict[str, Any]) -> list[Any]:
        """The pipeline's raw output per text, cut to the text's own tokens.

        Batched, ``pipeline()`` returns padding positions too, so its raw output depends on
        which rows shared a batch; cutting them gives every row its batch-size-1 answer.
        """
        pipeline_params = {k: v for k, v in params.items() if k in _PIPELINE_PARAMS}
        results = run_pipeline(
            self.pipe, texts, [pipeline_params] * len(texts), self.spec.batch_size, self.stats, self.max_batch_tokens()
        )
        tokenize_kwargs = dict(pipeline_params.get("tokenize_kwargs") or {})
        if "truncation" in pipeline_params:
            tokenize_kwargs["truncation"] = pipeline_params["truncation"]
        lengths = [len(ids) for ids in self.pipe.tokenizer(texts, **tokenize_kwargs)["input_ids"]]
        return [r if isinstance(r, RowError) else [r[0][:n]] for r, n in zip(results, lengths)]

    def embed(self, texts: list[str], pooling: str, normalize: bool, max_length: int) -> list[Any]:
        """Pooled float32 vectors (or a row's RowError), in length-sorted batches; longer texts are truncated."""
        import torch

        encoded = self.pipe.tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        device = self.pipe.model.device
        pad_id = self.pipe.tokenizer.pad_token_id or 0

        def forward(rows: list[int]) -> list[np.ndarray]:
            rows = np.asarray(rows)
            batch = _pad(encoded, rows, int(lengths[rows].max()), pad_id)
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            hidden = self.pipe.model(**batch)[0]
            pooled = _pool(hidden, batch["attention_mask"], pooling)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return list(pooled.float().cpu().numpy())

        with torch.inference_mode():
            results = run_batches(
                order.tolist(),
                self.spec.batch_size,
                forward,
                self.stats,
                lengths=lengths[order].tolist(),
                max_tokens=self.max_batch_tokens(),
            )
        outcomes: list[Any] = [None] * len(texts)
        for row, result in zip(order, results):
            outcomes[row] = result
        return outcomes

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        if params.get("pooling", "mean") == "none":
            return pa.list_(pa.list_(pa.list_(pa.float32())))  # [1][tokens][hidden], as pipeline() returns
        size = getattr(self, "hidden_size", 0)
        return pa.list_(pa.float32(), size) if size else pa.list_(pa.float32())


def _pad(encoded: Any, rows: np.ndarray, width: int, pad_id: int) -> dict[str, Any]:
    import torch

    batch = {}
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        if name not in encoded:
            continue
        fill = pad_id if name == "input_ids" else 0
        array = np.full((len(rows), width), fill, dtype=np.int64)
        for i, row in enumerate(rows):
            values = encoded[name][row]
            array[i, : len(values)] = values
        batch[name] = torch.from_numpy(array)
    return batch


def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
