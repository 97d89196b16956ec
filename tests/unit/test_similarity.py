"""sentence-similarity against a reference computed by hand: the cosine of mean-pooled token states
that transformers' own feature-extraction pipeline returns."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from pipefleet.errors import RowError

ROWS = [
    {
        "source_sentence": "A man is playing a guitar.",
        "sentences": ["Someone plays an instrument.", "The stock market fell today.", "A man plays guitar on stage."],
    },
    {"source_sentence": "It is raining.", "sentences": ["Rain is falling outside."]},
]


def by_hand(model: str, row: dict) -> list[float]:
    extract = pipeline("feature-extraction", model=model)
    vectors = [np.asarray(extract(text)[0]).mean(axis=0) for text in [row["source_sentence"], *row["sentences"]]]
    source, *others = (v / np.linalg.norm(v) for v in vectors)
    return [float(np.dot(source, other)) for other in others]


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_scores_are_the_cosines_of_the_pipelines_pooled_states(which, tiny_model, minilm, make_handler):
    model = tiny_model("sentence-similarity") if which == "tiny" else minilm
    handler = make_handler("sentence-similarity", model, batch_size=3)
    for got, row in zip(handler.predict(ROWS), ROWS):
        np.testing.assert_allclose(got, by_hand(model, row), atol=1e-4)


def test_a_paraphrase_ranks_above_an_unrelated_sentence(minilm, make_handler):
    scores = make_handler("sentence-similarity", minilm).predict(ROWS[:1])[0]
    paraphrase, unrelated, close = scores
    assert min(paraphrase, close) > 0.5 > unrelated


def test_bad_rows_get_their_own_error(tiny_model, make_handler):
    handler = make_handler("sentence-similarity", tiny_model("sentence-similarity"))
    outcomes = handler.predict(
        [ROWS[1], {"source_sentence": "x", "sentences": []}, {"source_sentence": "x", "sentences": ["ok", 3]}, "text"]
    )
    assert isinstance(outcomes[0], list) and len(outcomes[0]) == 1
    assert [o.message for o in outcomes[1:]] == [
        "sentence-similarity: sentences must be a non-empty list of strings",
        "sentence-similarity: sentences[1] must be a string, got int",
        "sentence-similarity: an input is an object with source_sentence, sentences, got str",
    ]
    assert all(isinstance(o, RowError) for o in outcomes[1:])
