"""text-ranking: texts ordered by their relevance to a query, by a cross-encoder.

Hugging Face's ``text-ranking`` task (``{query, texts}`` -> ``[{index, score}]``, best first), as
TEI, Infinity and fastembed serve it to retrieval systems. A cross-encoder is a sequence
classifier over (query, text) pairs, so this handler runs the text-classification pipeline's
stages on each pair: a row becomes one model input per text, and the pairs of every row in a
call are length-sorted and batched together. A text's score is the probability of relevance:
the sigmoid of the pair's logit for a one-label model (ms-marco, bge-reranker), else the softmax
probability of the last label; ``raw_scores: true`` gives the logit itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import TRUNCATION, require_text, row_fields

_RANKED = pa.list_(pa.struct([("index", pa.int64()), ("score", pa.float64()), ("text", pa.string())]))


@register
class TextRankingHandler(PipelineHandler):
    """Texts ranked by a cross-encoder's relevance to the query: ``[{index, score, text?}]``, best first."""

    task = "text-ranking"
    aliases = ("rerank",)
    hf_task = "text-classification"  # the pipeline whose stages score a (query, text) pair
    inputs = (Input("query"), Input("texts", "texts"))
    parameters = {
        "top_n": P.staged(P.integer(1), "postprocess"),
        "return_text": P.staged(P.boolean(), "postprocess"),
        "raw_scores": P.staged(P.boolean(), "postprocess"),
        "truncation": TRUNCATION,
    }
    output_column = "ranking"
    capabilities = Capabilities(display="labels", chunked=True, apis=("rerank",))

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        row = row_fields(value, self.task, self.input_names())
        query = require_text(row.get("query"), self.task, "query", self.spec.max_input_chars)
        texts = row.get("texts")
        if not isinstance(texts, list) or not texts:
            raise BadInput(f"{self.task}: texts must be a non-empty list of strings")
        features = []
        for index, text in enumerate(texts):
            text = require_text(text, self.task, f"texts[{index}]", self.spec.max_input_chars)
            features += super().preprocess({"text": query, "text_pair": text}, {"truncation": True, **params})
        return features

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        scores = [
            _relevance(output["logits"][0].float().numpy(), params.get("raw_scores", False)) for output in outputs
        ]
        order = sorted(range(len(scores)), key=lambda index: -scores[index])[: params.get("top_n")]
        texts = value["texts"]
        return [
            {"index": index, "score": scores[index], "text": texts[index] if params.get("return_text") else None}
            for index in order
        ]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return _RANKED


def _relevance(logits: np.ndarray, raw: bool) -> float:
    """A pair's relevance from its logits: the sigmoid of a single logit, else the last label's probability."""
    if len(logits) == 1:
        return float(logits[0]) if raw else float(1 / (1 + np.exp(-logits[0])))
    if raw:
        return float(logits[-1])
    shifted = np.exp(logits - logits.max())
    return float(shifted[-1] / shifted.sum())
