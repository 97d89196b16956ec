"""text-ranking against a reference computed by hand: each (query, text) pair's logit from the
text-classification pipeline, through the sigmoid, sorted."""

from __future__ import annotations

import numpy as np
from transformers import pipeline

from pipefleet.errors import RowError

ROWS = [
    {"query": "what do bakers do", "texts": ["They bake bread early.", "Stocks fell.", "Bakers light the ovens."]},
    {"query": "when does the ferry leave", "texts": ["At seven.", "A short one."]},
]


def by_hand(model: str, row: dict) -> list[tuple[int, float]]:
    classify = pipeline("text-classification", model=model)
    logits = [classify({"text": row["query"], "text_pair": t}, function_to_apply="none")["score"] for t in row["texts"]]
    scores = [1 / (1 + np.exp(-logit)) for logit in logits]
    return sorted(enumerate(scores), key=lambda pair: -pair[1])


def test_scores_are_the_sigmoid_of_the_pipelines_logits_best_first(tiny_model, make_handler):
    model = tiny_model("text-ranking")
    handler = make_handler("text-ranking", model, batch_size=3)
    for got, row in zip(handler.predict(ROWS, {"return_text": True}), ROWS):
        want = by_hand(model, row)
        assert [r["index"] for r in got] == [index for index, _ in want]
        np.testing.assert_allclose([r["score"] for r in got], [score for _, score in want], atol=1e-5)
        assert [r["text"] for r in got] == [row["texts"][r["index"]] for r in got]


def test_top_n_and_raw_scores(tiny_model, make_handler):
    model = tiny_model("text-ranking")
    handler = make_handler("text-ranking", model)
    best = handler.predict(ROWS[:1], {"top_n": 1, "raw_scores": True})[0]
    classify = pipeline("text-classification", model=model)
    logits = [
        classify({"text": ROWS[0]["query"], "text_pair": t}, function_to_apply="none")["score"]
        for t in ROWS[0]["texts"]
    ]
    assert len(best) == 1 and best[0]["index"] == int(np.argmax(logits))
    assert abs(best[0]["score"] - max(logits)) < 1e-4 and best[0]["text"] is None


def test_bad_rows_get_their_own_error(tiny_model, make_handler):
    outcomes = make_handler("text-ranking", tiny_model("text-ranking")).predict(
        [ROWS[1], {"query": "q", "texts": []}, {"query": "", "texts": ["a"]}]
    )
    assert isinstance(outcomes[0], list)
    assert outcomes[1].message == "text-ranking: texts must be a non-empty list of strings"
    assert isinstance(outcomes[2], RowError) and "query is empty" in outcomes[2].message
