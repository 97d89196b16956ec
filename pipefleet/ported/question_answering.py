"""Extractive question answering, as transformers 4.57's ``QuestionAnsweringPipeline`` did it.

A context longer than ``max_seq_len`` is split into overlapping windows (``doc_stride`` tokens of
overlap); each window is one model input, so the runner batches the windows of many rows
together. The best spans of all windows are merged into one answer list per row.
Only fast (Rust) tokenizers are supported: the slow path of 4.57 relied on the SQuAD helpers
that transformers 5 deleted.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from transformers.pipelines.base import ChunkPipeline

from pipefleet.ported import given


def decode_spans(
    start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int, undesired_tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``topk`` best (start, end) token spans of at most ``max_answer_len`` tokens, with their scores."""
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    # Score of every (start, end) pair; keep end >= start and spans no longer than max_answer_len.
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    desired = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
    starts, ends = starts[desired], ends[desired]
    return starts, ends, candidates[0, starts, ends]


def select_starts_ends(
    start,
    end,
    p_mask,
    attention_mask,
    min_null_score=1000000,
    top_k=1,
    handle_impossible_answer=False,
    max_answer_len=15,
):
    """Normalise one window's logits over its context tokens, then pick its best spans (see ``decode_spans``)."""
    # Padding and question tokens cannot be part of an answer.
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0  # the CLS token answers "no answer", never a span
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


class QuestionAnsweringPipeline(ChunkPipeline):
    """``{question, context}`` -> ``{score, start, end, answer}``, or a list of them when ``top_k`` > 1."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.tokenizer.is_fast:
            raise ValueError(
                f"question-answering needs a fast (Rust) tokenizer; {type(self.tokenizer).__name__} is not one"
            )

    def _sanitize_parameters(
        self,
        padding=None,
        top_k=None,
        doc_stride=None,
        max_answer_len=None,
        max_seq_len=None,
        max_question_len=None,
        handle_impossible_answer=None,
        align_to_words=None,
        **kwargs,
    ):
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            if value is not None and value < 1:
                raise ValueError(f"{name} parameter should be >= 1 (got {value})")
        # max_question_len is read by 4.57's slow-tokenizer path only; accepted for compatibility.
        preprocess_params = given(
            padding=padding, doc_stride=doc_stride, max_question_len=max_question_len, max_seq_len=max_seq_len
        )
        postprocess_params = given(
            top_k=top_k,
            max_answer_len=max_answer_len,
            handle_impossible_answer=handle_impossible_answer,
            align_to_words=align_to_words,
        )
        return preprocess_params, {}, postprocess_params

    def __call__(self, question: str | None = None, context: str | None = None, **kwargs: Any) -> Any:
        """``pipe(question=..., context=...)`` or ``pipe({"question": ..., "context": ...})``."""
        example = question if isinstance(question, dict) else {"question": question, "context": context}
        return super().__call__(example, **kwargs)

    def preprocess(self, example, padding="do_not_pad", doc_stride=None, max_question_len=64, max_seq_len=None):
        for key in ("question", "context"):
            if example.get(key) is None:
                raise ValueError(f"`{key}` cannot be None")
            if isinstance(example[key], str) and not example[key]:
                raise ValueError(f"`{key}` cannot be empty")
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length, 384)
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")

        # The side we truncate and pad on decides which text comes first.
        question_first = self.tokenizer.padding_side == "right"
        encoded = self.tokenizer(
            text=example["question"] if question_first else example["context"],
            text_pair=example["context"] if question_first else example["question"],
            padding=padding,
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        # A long context comes back as several windows ("spans") that overlap by doc_stride tokens.
        num_spans = len(encoded["input_ids"])
        # p_mask: 1 for tokens that cannot be in the answer (question, special tokens), 0 for the context.
        p_mask = [
            [tok != 1 if question_first else 0 for tok in encoded.sequence_ids(span)] for span in range(num_spans)
        ]
        model_input_names = [*self.tokenizer.model_input_names, "p_mask", "token_type_ids"]
        for span in range(num_spans):
            input_ids = encoded["input_ids"][span]
            # Keep the CLS token unmasked: some models point at it for "no answer".
            if self.tokenizer.cls_token_id is not None:
                for cls_index in np.nonzero(np.array(input_ids) == self.tokenizer.cls_token_id)[0]:
                    p_mask[span][cls_index] = 0
            values = {
                "input_ids": input_ids,
                "attention_mask": encoded["attention_mask"][span] if "attention_mask" in encoded else None,
                "token_type_ids": encoded["token_type_ids"][span] if "token_type_ids" in encoded else None,
                "p_mask": p_mask[span],
            }
            tensors = {}
            for key, value in values.items():
                if key in model_input_names and value is not None:
                    tensor = torch.tensor(value)
                    tensors[key] = (tensor.long() if tensor.dtype == torch.int32 else tensor).unsqueeze(0)
            yield {
                "example": example,
                "is_last": span == num_spans - 1,
                "encoding": encoded[span],
                **tensors,
            }

    def _forward(self, inputs):
        model_inputs = {k: inputs[k] for k in self.tokenizer.model_input_names}
        # Classification-style heads must not be asked for a cache.
        if "use_cache" in inspect.signature(self.model.forward).parameters:
            model_inputs["use_cache"] = False
        output = self.model(**model_inputs)
        if isinstance(output, dict):
            return {"start": output["start_logits"], "end": output["end_logits"], **inputs}
        start, end = output[:2]
        return {"start": start, "end": end, **inputs}

    def postprocess(
        self, model_outputs, top_k=1, handle_impossible_answer=False, max_answer_len=15, align_to_words=True
    ):
        min_null_score = 1000000  # large and positive
        answers: list[dict[str, Any]] = []
        for output in model_outputs:
            start_, end_ = output["start"], output["end"]
            if start_.dtype == torch.bfloat16:
                start_, end_ = start_.to(torch.float32), end_.to(torch.float32)
            example = output["example"]
            attention_mask = output["attention_mask"].numpy() if output.get("attention_mask") is not None else None
            # Aligning to words may merge candidates, so ask for more than top_k.
            pre_topk = top_k * 2 + 10 if align_to_words else top_k
            starts, ends, scores, min_null_score = select_starts_ends(
                start_,
                end_,
                output["p_mask"],
                attention_mask,
                min_null_score,
                pre_topk,
                handle_impossible_answer,
                max_answer_len,
            )
            question_first = self.tokenizer.padding_side == "right"
            encoding = output["encoding"]
            # The encoding was not padded; input_ids may be, which shifts positions when padding is on the left.
            offset = (
                (output["input_ids"] == self.tokenizer.pad_token_id).numpy().sum()
                if self.tokenizer.padding_side == "left"
                else 0
            )
            sequence_index = 1 if question_first else 0
            for s, e, score in zip(starts, ends, scores):
                start_index, end_index = self.get_indices(
                    encoding, s - offset, e - offset, sequence_index, align_to_words
                )
                target = example["context"][start_index:end_index]
                same = next((a for a in answers if a["answer"].lower() == target.lower()), None)
                if same:  # the same text found in two windows: their scores add up
                    same["score"] += score.item()
                else:
                    answers.append({"score": score.item(), "start": start_index, "end": end_index, "answer": target})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def get_indices(encoding, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
        """Character span of tokens ``s``..``e``, widened to whole words when ``align_to_words``."""
        if align_to_words:
            try:
                start_word = encoding.token_to_word(s)
                end_word = encoding.token_to_word(e)
                start_index = encoding.word_to_chars(start_word, sequence_index=sequence_index)[0]
                end_index = encoding.word_to_chars(end_word, sequence_index=sequence_index)[1]
                return start_index, end_index
            except Exception:  # some tokenizers have no words: keep to the token offsets
                pass
        return encoding.offsets[s][0], encoding.offsets[e][1]
