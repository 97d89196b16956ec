"""The engine: drives a handler's three stages over a call of many rows.

``pipeline(inputs)`` runs one input after another with one set of parameters, and one bad input
raises for the whole call. The engine runs the handler's own stages (so outputs equal the
pipeline's) and adds what a corpus or a busy endpoint needs:

- each row is preprocessed alone; one that fails is that row's :class:`~pipefleet.errors.RowError`;
- the model inputs of all rows (and all chunks of chunked tasks, such as the (text x label) pairs of
  zero-shot classification) whose parameters are equal are sorted by length and batched
  together, at most ``batch_rows`` rows and ``max_tokens`` padded tokens a pass, so padding is small;
- a batch that runs out of memory is halved and retried; one that fails otherwise is retried row by
  row, so its good rows still get outputs;
- with ``lanes`` above one (the job on a CPU), that many batches run at once, each in a thread of its own
  (and each halved on its own if it runs out of memory);
- each row is postprocessed with its own parameters; exactly one outcome per input comes back, in order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipefleet import hf_stages, precision
from pipefleet.errors import BadInput, BadParameter, ModelError, RowError
from pipefleet.params import StageParams, params_key

if TYPE_CHECKING:
    from pipefleet.handler import TaskHandler

# Padded tokens per forward pass on a CPU when the spec sets no max_batch_tokens. On a CPU the
# cost of a pass grows with its padded size, so long rows gain nothing from sharing one; 2048
# measured best for MiniLM on mixed-length text (bench/batch.py). GPUs want big passes: no cap.
CPU_BATCH_TOKENS = 2048


@dataclass
class RunStats:
    """What the engine had to work around, for manifests and metrics."""

    oom_splits: int = 0  # batches halved after running out of memory


@dataclass(frozen=True)
class _Feature:
    row: int
    chunk: int
    value: Any


class Engine:
    """Runs ``handler``'s stages over calls: ``Engine(handler).run(inputs, params)`` -> one outcome per input.

    ``lanes``: forward passes run at once, each in a thread of its own (set it with torch's threads
    divided among them), for handlers whose ``parallel_forward`` allows it. On a CPU, a pass on one
    thread wastes none of it waiting for a second thread at every operation, and one lane keeps
    working while Ray's own work takes a core (measured in the README's Benchmarks). Batches of one
    call are shared among the lanes, so the last rows of a job use every lane too (two actors of one
    thread idle one core while the other finishes the last block).
    """

    def __init__(self, handler: "TaskHandler") -> None:
        self.handler = handler
        self.stats = RunStats()
        self._pool: ThreadPoolExecutor | None = None
        self._lanes = 1  # the job sets more on a CPU (jobs/worker.py)
        spec = handler.spec
        if spec.max_batch_tokens is not None:
            self.max_tokens: int | None = spec.max_batch_tokens
        else:
            self.max_tokens = CPU_BATCH_TOKENS if getattr(handler.device, "type", None) == "cpu" else None

    @property
    def lanes(self) -> int:
        return self._lanes

    @lanes.setter
    def lanes(self, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self._lanes = lanes
        if self._pool is not None:  # made for the lanes before: the next call makes one for these
            self._pool.shutdown(wait=False)
            self._pool = None

    def run(self, inputs: Sequence[Any], params: Any = None) -> list[Any]:
        """One outcome per input, in order: the handler's output or a RowError.

        ``params``: None (the spec's), one mapping or :class:`StageParams` for every row, or a sequence
        of them as long as ``inputs``. An unknown parameter or a value of the wrong type raises
        :class:`~pipefleet.errors.BadParameter` for the whole call; a value the pipeline rejects fails
        only the rows that carry it.
        """
        per_row = self._per_row(inputs, params)
        outcomes: list[Any] = [error if isinstance(error, RowError) else None for error in per_row]
        features = self._preprocess(inputs, per_row, outcomes)
        model_outputs = self._forward(features, per_row, outcomes)
        handler = self.handler
        for row, value in enumerate(inputs):
            if outcomes[row] is not None:
                continue
            chunks = [output for _, output in sorted(model_outputs[row], key=lambda pair: pair[0])]
            try:
                outcomes[row] = handler.postprocess(chunks, value, per_row[row].postprocess)
            except BadInput as exc:  # an option this row's output cannot take (dimensions over the model's)
                outcomes[row] = RowError.from_exception(exc)
            except Exception as exc:  # the pipeline's postprocess or an encoding failed on this row alone
                outcomes[row] = RowError.from_exception(exc, kind="model_error")
        if len(outcomes) != len(inputs) or any(outcome is None for outcome in outcomes):
            raise ModelError(f"{handler.task}: {len(inputs)} inputs gave {len(outcomes)} outcomes")
        return outcomes

    # ---- parameters ----------------------------------------------------------------------

    def _per_row(self, inputs: Sequence[Any], params: Any) -> list[StageParams | RowError]:
        """Each row's stage parameters, resolved once per distinct set (or the RowError of a rejected set)."""
        if params is None or isinstance(params, (Mapping, StageParams)):
            return [self._resolve(params, {})] * len(inputs)
        if len(params) != len(inputs):
            raise ModelError(f"{len(params)} parameter sets for {len(inputs)} inputs")
        seen: dict[Any, StageParams | RowError] = {}
        return [self._resolve(p, seen) for p in params]

    def _resolve(self, params: Any, seen: dict[Any, StageParams | RowError]) -> StageParams | RowError:
        if isinstance(params, StageParams):
            return params
        key = params_key(params or {})
        if key not in seen:
            try:
                seen[key] = self.handler.resolve(params)
            except BadParameter:
                raise
            except BadInput as exc:
                seen[key] = RowError.from_exception(exc)
        return seen[key]

    # ---- the stages ------------------------------------------------------------------------

    def _preprocess(self, inputs: Sequence[Any], per_row: list, outcomes: list[Any]) -> list[_Feature]:
        features = []
        for row, value in enumerate(inputs):
            if outcomes[row] is not None:
                continue
            try:
                prepared = self.handler.preprocess(value, per_row[row].preprocess)
            except Exception as exc:  # the handler's checks or the pipeline's own validation of this input
                outcomes[row] = RowError.from_exception(exc)
                continue
            if not prepared:
                outcomes[row] = RowError("the input produced nothing to run the model on")
                continue
            features.extend(_Feature(row, chunk, item) for chunk, item in enumerate(prepared))
        return features

    def _forward(self, features: list[_Feature], per_row: list, outcomes: list[Any]) -> dict[int, list]:
        """Every feature forwarded in length-sorted batches per parameter set; failures become row errors.

        The batches of every group go to the lanes at once, so that many small groups (rows with labels of
        their own) still keep every lane busy."""
        groups: dict[tuple, list[_Feature]] = defaultdict(list)
        for feature in features:
            groups[per_row[feature.row].forward_key, self.handler.batch_key(feature.value)].append(feature)
        sorted_groups = []
        work = []
        for group in groups.values():
            forward_params = per_row[group[0].row].forward
            ordered = sorted(group, key=lambda feature: hf_stages.feature_length(feature.value))
            sorted_groups.append(ordered)
            work.append(
                (
                    [feature.value for feature in ordered],
                    lambda batch, p=forward_params: self.handler.forward(batch, p),
                    [hf_stages.token_count(feature.value) for feature in ordered],
                )
            )
        per_row_outputs: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for ordered, runs in zip(sorted_groups, self._start_batches(work)):
            results = []
            for run in runs:
                span_results, stats = run.result()
                results.extend(span_results)
                self.stats.oom_splits += stats.oom_splits
            for feature, result in zip(ordered, results):
                if isinstance(result, RowError):
                    outcomes[feature.row] = outcomes[feature.row] or result
                else:
                    per_row_outputs[feature.row].append((feature.chunk, result))
        return per_row_outputs

    def _start_batches(self, groups: list[tuple[list[Any], Callable, list[int]]]) -> list[list[Future]]:
        """:func:`run_batches` over each group's items (sorted by its lengths): each group's runs, in the
        order of its items.

        In one lane each group runs now, as one run, so that a batch halved for memory keeps the rest of
        the group small. In several, each batch goes to the lanes on its own (and is halved on its own if
        it runs out of memory), the batches of longest rows of every group first: the passes that end a
        call are then short ones, and the lanes finish it nearly together."""

        def run(items: list[Any], forward: Callable, lengths: list[int]) -> tuple[list[Any], RunStats]:
            stats = RunStats()
            # In the lane's own thread: torch.autocast, like inference mode, holds for one thread.
            with precision.autocast(self.handler.spec, self.handler.device):
                results = run_batches(items, self.handler.batch_rows, forward, stats, lengths, self.max_tokens)
            return results, stats

        if self.lanes == 1:
            return [[_finished(run(*group))] for group in groups]
        spans = []  # (group, start, end, its longest row's length) of every batch: a batch's last row is its longest
        for number, (_, _, lengths) in enumerate(groups):
            cuts = [0]
            while cuts[-1] < len(lengths):
                cuts.append(batch_end(lengths, cuts[-1], self.handler.batch_rows, self.max_tokens))
            spans.extend((number, start, end, lengths[end - 1]) for start, end in zip(cuts[:-1], cuts[1:]))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="pipefleet-lane")
        # Longest rows first, so that no lane idles at the end of a call while another runs its longest pass;
        # bench/lanes.py times shortest first against longest first.
        runs = {}
        for span in sorted(spans, key=lambda span: span[3], reverse=True):
            number, start, end, _ = span
            items, forward, lengths = groups[number]
            runs[span] = self._pool.submit(run, items[start:end], forward, lengths[start:end])
        per_group: list[list[Future]] = [[] for _ in groups]
        for span in spans:  # back in each group's order
            per_group[span[0]].append(runs[span])
        return per_group


def _finished(result: Any) -> Future:
    """A future that already holds ``result``: a run done in the caller's thread, shaped like the lanes'."""
    done: Future = Future()
    done.set_result(result)
    return done


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
            outputs = forward(batch)
            if len(outputs) != len(batch):  # LitServe's "batch size mismatch", caught where it happens
                raise ModelError(f"forward returned {len(outputs)} outputs for a batch of {len(batch)}")
            results.extend(outputs)
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


def _row_error(exc: BaseException) -> RowError:
    if is_out_of_memory(exc):
        _release_memory()
        return RowError(f"out of memory on this row alone (batch size 1): {type(exc).__name__}: {exc}", "model_error")
    return RowError.from_exception(exc, kind="model_error")
