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
  good rows still get outputs, and a batch that runs out of memory is halved and retried.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipefleet.errors import RowError

if TYPE_CHECKING:
    from transformers import Pipeline


@dataclass
class RunStats:
    """What the batch loop had to work around, for manifests and metrics."""

    oom_splits: int = 0  # batches halved after running out of memory


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
    # A copy: some pipelines write into the dicts they are given (generate_kwargs), which would
    # change the spec's parameters for every later call.
    pre, fwd, post = pipe._sanitize_parameters(**copy.deepcopy(dict(params)))
    return (
        {**pipe._preprocess_params, **pre},
        {**pipe._forward_params, **fwd},
        {**pipe._postprocess_params, **post},
    )


def _last_dim(features: Mapping[str, Any], names: Sequence[str]) -> int:
    for name in names:
        value = features.get(name) if hasattr(features, "get") else None
        if value is not None and hasattr(value, "shape"):
            return int(value.shape[-1])
    return 0


def _sequence_length(features: Mapping[str, Any]) -> int:
    """Tokens in a text feature (what the padded-token cap counts); 0 for other inputs."""
    return _last_dim(features, ("input_ids",))


def _sort_length(features: Mapping[str, Any]) -> int:
    """Length to sort by, so that a batch pads little: tokens, audio samples or audio frames."""
    return _last_dim(features, ("input_ids", "input_values", "input_features"))


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


# (length of a feature before padding, its model output from a padded batch) -> the output it has alone
Unpad = Callable[[int, Any], Any]


def run_pipeline(
    pipe: "Pipeline",
    inputs: Sequence[Any],
    row_params: Sequence[Mapping[str, Any]],
    batch_size: int,
    stats: RunStats | None = None,
    max_tokens: int | None = None,
    unpad: Unpad | None = None,
) -> list[Any]:
    """Run ``pipe`` over ``inputs``; one outcome per input: the pipeline's output or a RowError.

    ``max_tokens`` caps the padded tokens per forward pass (see :func:`run_batches`);
    ``unpad`` cuts what padding added to an output, for models whose outputs are per frame.
    """
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

        model_outputs = _forward_sorted(pipe, features, fwd, batch_size, outcomes, stats, max_tokens, unpad)
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
    stats: RunStats | None,
    max_tokens: int | None,
    unpad: Unpad | None = None,
) -> dict[int, list[tuple[int, Any]]]:
    """Forward every feature in length-sorted batches; failures become row errors in ``outcomes``."""
    ordered = sorted(features, key=lambda feature: _sort_length(feature[2]))
    # Taken before the forward pass, which may pop the inputs out of a feature it runs alone.
    own_lengths = [_sort_length(item) for _, _, item in ordered]
    results = run_batches(
        [item for _, _, item in ordered],
        batch_size,
        lambda items: forward_batch(pipe, items, forward_params),
        stats,
        lengths=[_sequence_length(item) for _, _, item in ordered],
        max_tokens=max_tokens,
    )
    per_row: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for (row, chunk, _), length, result in zip(ordered, own_lengths, results):
        if isinstance(result, RowError):
            outcomes[row] = result
        else:
            per_row[row].append((chunk, unpad(length, result) if unpad else result))
    return per_row


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA/accelerator OOM, or the CPU allocator's failure to allocate."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _release_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def batch_end(lengths: Sequence[int], start: int, size: int, max_tokens: int | None) -> int:
    """End of the batch that starts at ``start``: at most ``size`` items and, when ``max_tokens``
    is set, at most that many padded tokens (items x the longest), but never less than one item.

    ``lengths`` are ascending, so the last item of a batch is its longest.
    """
    end = min(start + size, len(lengths))
    if max_tokens is None:
        return end
    fits = start + 1
    while fits < end and (fits - start + 1) * lengths[fits] <= max_tokens:
        fits += 1
    return fits


def run_batches(
    items: Sequence[Any],
    batch_size: int,
    forward: Callable[[list[Any]], list[Any]],
    stats: RunStats | None = None,
    lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> list[Any]:
    """``forward`` over consecutive batches of ``items``; one result or RowError per item, in order.

    With ``lengths`` (ascending token counts of ``items``) and ``max_tokens``, a batch also
    stops before its padded size passes ``max_tokens``: on a CPU, long rows run faster in
    small batches, and short rows still share big ones.

    A batch that runs out of memory is retried at half the size, and the rest of this call
    keeps the smaller size (items come sorted by length, so later batches are no smaller).
    A batch that fails otherwise is retried item by item, so one bad item fails alone.
    """
    results: list[Any] = []
    size = batch_size
    if lengths is None or len(lengths) != len(items):
        lengths, max_tokens = [0] * len(items), None
    while len(results) < len(items):
        start = len(results)
        batch = list(items[start : batch_end(lengths, start, size, max_tokens)])
        try:
            results.extend(forward(batch))
        except Exception as exc:
            if is_out_of_memory(exc) and len(batch) > 1:
                _release_memory()
                size = max(1, len(batch) // 2)
                if stats is not None:
                    stats.oom_splits += 1
                continue
            if len(batch) == 1:
                results.append(_row_error(exc))
                continue
            for item in batch:
                try:
                    results.extend(forward([item]))
                except Exception as single_exc:
                    results.append(_row_error(single_exc))
    return results


def _row_error(exc: BaseException) -> RowError:
    if is_out_of_memory(exc):
        _release_memory()
        return RowError(f"out of memory on this row alone (batch size 1): {type(exc).__name__}: {exc}", "model_error")
    return RowError.from_exception(exc, kind="model_error")
