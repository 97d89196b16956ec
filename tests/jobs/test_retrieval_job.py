"""sentence-similarity and text-ranking in the job: the input's columns name the query (or source) and a
list column of texts (or sentences); the output column equals the handler's answers (the unit tier
checks those against references computed by hand)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.annotate import annotate
from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec

QUERIES = ["what do bakers do", "when does the ferry leave", "who keeps the lighthouse"]
CANDIDATES = [
    ["They bake bread early.", "Stocks fell.", "Bakers light the ovens."],
    ["The ferry leaves at seven.", "A short one."],
    ["Marta keeps it.", "The museum opens late.", "Children walk to school.", "Nobody."],
]


@pytest.mark.parametrize(
    ("task", "columns", "source", "texts"),
    [
        (
            "sentence-similarity",
            {"source_sentence": "question", "sentences": "answers"},
            "source_sentence",
            "sentences",
        ),
        ("text-ranking", {"query": "question", "texts": "answers"}, "query", "texts"),
    ],
)
def test_list_columns_reach_the_handler(local_ray, tiny_model, tmp_path, task, columns, source, texts):
    corpus = pa.table({"id": list(range(3)), "question": QUERIES, "answers": CANDIDATES})
    pq.write_table(corpus, tmp_path / "corpus.parquet")
    spec = parse_spec(
        {
            "task": task,
            "model": tiny_model(task),
            "device": "cpu",
            "input": {"path": str(tmp_path / "corpus.parquet"), "id_column": "id", "columns": columns},
            "output": {"path": str(tmp_path / "out")},
            "compute": {"num_cpus": 1, "concurrency": 1},
        }
    )
    annotate(spec)
    table = pq.read_table(tmp_path / "out").to_pylist()
    handler = handler_class(task)(spec)
    handler.setup()
    expected = handler.predict([{source: q, texts: c} for q, c in zip(QUERIES, CANDIDATES)])
    by_id = {row["id"]: row for row in table}
    column = handler.output_column
    for index, want in enumerate(expected):
        got = by_id[index][column]
        assert by_id[index]["error"] is None
        if task == "sentence-similarity":
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:
            assert [r["index"] for r in got] == [r["index"] for r in want]
            np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-5)
