"""Drive a ``transformers`` pipeline's own stages over many rows at once.

``Pipeline.__call__`` runs preprocess -> forward -> postprocess over inputs in file order,
with one set of parameters, and one bad input raises for the whole call. This driver
reuses the very same stage methods (so outputs equal the pipeline's), and adds what a
corpus needs:

- rows with different parameters run in separate groups, never mixed;
- the model inputs of all rows (and all chunks of chunked tasks, such as the
  (text x label) pairs of zero-shot classification) are sorted by length and batched
  together, so padding is small;
- a row whose preprocess, forward or postprocess fails becomes that row's
  :class:`~pipefleet.errors.RowError`; a failing batch is retried row by row so that its
  good rows still get outputs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipefleet.errors import RowError

if TYPE_CHECKING:
    from transformers import Pipeline


def params_key(params: Mapping[str, Any]) -> str:
    """A hashable key under which rows with equal parameters share batches."""
    return json.dumps(params, sort_keys=True, default=repr)


def group_rows(row_params: Sequence[Mapping[str, Any]]) -> Iterator[list[int]]:
    """Indices of rows that share parameters, one list per distinct set, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, params in enumerate(row_params):
        groups.setdefault(params_key(params), []).append(index)
    yield from groups.values()


def stage_params(pipe: "Pipeline", params: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """The preprocess/forward/postprocess parameters, merged over the pipeline's own as ``__call__`` does."""
    pre, fwd, post = pipe._sanitize_parameters(**params)
    return (
        {**pipe._preprocess_params, **pre},
        {**pipe._forward_params, **fwd},
        {**pipe._postprocess_params, **post},
    )


def _sequence_length(features: Mapping[str, Any]) -> int:
    ids = features.get("input_ids") if hasattr(features, "get") else None
    return int(ids.shape[-1]) if ids is not None and hasattr(ids, "shape") else 0


def forward_batch(pipe: "Pipeline", features: list[Mapping[str, Any]], forward_params: Mapping[str, Any]) -> list:
    """One forward pass over ``features``; returns one model output per feature, batch size 1 each."""
    from transformers.pipelines.base import no_collate_fn, pad_collate_fn
    from transformers.pipelines.pt_utils import PipelineIterator

    if len(features) == 1:
        batch = no_collate_fn(features)
    else:
        extractor = pipe.feature_extractor if pipe.feature_extractor is not None else pipe.image_processor
        batch = pad_collate_fn(pipe.tokenizer, extractor)(features)
    outputs = pipe.forward(batch, **forward_params)
    # PipelineIterator's unbatching is what pipeline() uses; reusing it keeps outputs identical.
    unbatched = list(PipelineIterator([outputs], lambda x: x, {}, loader_batch_size=len(features)))
    if len(unbatched) != len(features):
        raise RuntimeError(f"forward returned {len(unbatched)} outputs for a batch of {len(features)}")
    return unbatched


def run_pipeline(
    pipe: "Pipeline", inputs: Sequence[Any], row_params: Sequence[Mapping[str, Any]], batch_size: int
) -> list[Any]:
    """Run ``pipe`` over ``inputs``; one outcome per input: the pipeline's output or a RowError."""
    from transformers.pipelines.base import ChunkPipeline

    chunked = isinstance(pipe, ChunkPipeline)
    outcomes: list[Any] = [None] * len(inputs)
    for rows in group_rows(row_params):
        try:
            pre, fwd, post = stage_params(pipe, row_params[rows[0]])
        except Exception as exc:  # e.g. a value the pipeline rejects; other groups still run
            for row in rows:
                outcomes[row] = RowError.from_exception(exc)
            continue
        features: list[tuple[int, int, Any]] = []  # (row, chunk index, model inputs)
        for row in rows:
            try:
                prepared = (
                    list(pipe.preprocess(inputs[row], **pre)) if chunked else [pipe.preprocess(inputs[row], **pre)]
                )
            except Exception as exc:  # the pipeline's own validation of this one input
                outcomes[row] = RowError.from_exception(exc)
                continue
            if not prepared:
                outcomes[row] = RowError("the input produced nothing to run the model on")
                continue
            features.extend((row, chunk, item) for chunk, item in enumerate(prepared))

        model_outputs = _forward_sorted(pipe, features, fwd, batch_size, outcomes)
        for row in rows:
            if outcomes[row] is not None:
                continue
            chunks = [out for _, out in sorted(model_outputs[row], key=lambda pair: pair[0])]
            try:
                outcomes[row] = pipe.postprocess(chunks if chunked else chunks[0], **post)
            except Exception as exc:
                outcomes[row] = RowError.from_exception(exc, kind="model_error")
    return outcomes


def _forward_sorted(
    pipe: "Pipeline",
    features: list[tuple[int, int, Any]],
    forward_params: Mapping[str, Any],
    batch_size: int,
    outcomes: list[Any],
) -> dict[int, list[tuple[int, Any]]]:
    """Forward every feature in length-sorted batches; failures become row errors in ``outcomes``."""
    ordered = sorted(features, key=lambda feature: _sequence_length(feature[2]))
    per_row: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        try:
            results = forward_batch(pipe, [item for _, _, item in batch], forward_params)
        except Exception as exc:
            if len(batch) == 1:
                outcomes[batch[0][0]] = RowError.from_exception(exc, kind="model_error")
                continue
            # Isolate the row that broke the batch: retry one by one, so the others still succeed.
            results = []
            for row, _, item in batch:
                try:
                    results.append(forward_batch(pipe, [item], forward_params)[0])
                except Exception as single_exc:
                    outcomes[row] = RowError.from_exception(single_exc, kind="model_error")
                    results.append(None)
        for (row, chunk, _), result in zip(batch, results):
            if result is not None:
                per_row[row].append((chunk, result))
    return per_row
