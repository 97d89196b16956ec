"""sentence-similarity: how close each of several sentences is to a source sentence.

Hugging Face's ``sentence-similarity`` task: ``{"source_sentence": ..., "sentences": [...]}`` ->
one cosine similarity per sentence, from the pooled vectors of a feature-extraction model
(all-MiniLM-L6-v2 and the like). transformers has no pipeline for it; this handler is the
feature-extraction handler with one more step: a row becomes one model input per sentence (so
the sentences of every row in a call are length-sorted and batched together), and its answer is
the cosine of each sentence's vector with the source's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.registry import register
from pipefleet.tasks.common import require_text, row_fields
from pipefleet.tasks.embeddings import FeatureExtractionHandler


@register
class SentenceSimilarityHandler(FeatureExtractionHandler):
    """Cosine similarity of each sentence to the source sentence, from mean- (or CLS-) pooled vectors."""

    task = "sentence-similarity"
    hf_task = "feature-extraction"  # the pipeline it loads: the model, its tokenizer and config
    inputs = (Input("source_sentence"), Input("sentences", "texts"))
    parameters = {
        "pooling": P.staged(P.choice("mean", "cls"), "preprocess", "forward", "postprocess"),
        "max_length": P.staged(P.integer(1), "preprocess"),
    }
    output_column = "similarity"
    capabilities = Capabilities(display="labels", chunked=True)  # no /v1/embeddings: its answers are scores

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        row = row_fields(value, self.task, self.input_names())
        sentences = row.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise BadInput(f"{self.task}: sentences must be a non-empty list of strings")
        texts = [require_text(row.get("source_sentence"), self.task, "source_sentence", self.spec.max_input_chars)]
        texts += [
            require_text(s, self.task, f"sentences[{i}]", self.spec.max_input_chars) for i, s in enumerate(sentences)
        ]
        # One model input per text: the feature-extraction handler's tokenisation of each.
        tokenise = super().preprocess
        return [feature for text in texts for feature in tokenise(text, params)]

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        return super().forward(batch, {**params, "normalize": True})  # unit vectors: the cosine is a dot product

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        source, *others = outputs
        return [float(np.dot(source, other)) for other in others]

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(pa.float64())
