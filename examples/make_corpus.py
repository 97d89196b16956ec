"""Write a sample corpus of short texts of mixed length (a few words to a few hundred tokens).

    python examples/make_corpus.py examples/corpus.parquet --rows 3000

Deterministic for a given seed; the README's first command annotates the file this writes.
"""

from __future__ import annotations

import argparse
import random

SUBJECTS = [
    "The new phone",
    "Our hotel room",
    "This library",
    "The city council",
    "My neighbour's dog",
    "The quarterly report",
    "A small bakery in Lyon",
    "The train to Berlin",
    "The film",
    "The museum",
]
VERBS = ["surprised", "disappointed", "delighted", "confused", "impressed", "bored", "annoyed", "reassured"]
OBJECTS = [
    "everyone who tried it",
    "the critics",
    "the local residents",
    "most of the reviewers",
    "the engineering team",
    "the visiting students",
    "our whole family",
    "the shareholders",
]
TAILS = [
    "because the details were handled with care",
    "although the price was higher than expected",
    "after a long delay at the start",
    "thanks to friendly and patient staff",
    "despite the rainy weather",
    "and nobody could quite explain why",
    "which made the evening memorable",
    "so we will come back soon",
]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}."


def text(rng: random.Random) -> str:
    """Mostly short texts, some paragraphs, a few long documents: a realistic length mix."""
    kind = rng.random()
    if kind < 0.15:
        return " ".join(rng.choice(SUBJECTS).split()[: rng.randint(1, 3)])
    sentences = rng.randint(1, 2) if kind < 0.7 else rng.randint(3, 8) if kind < 0.95 else rng.randint(10, 20)
    return " ".join(sentence(rng) for _ in range(sentences))


def make_corpus(rows: int, seed: int = 0) -> "pyarrow.Table":  # noqa: F821
    import pyarrow as pa

    rng = random.Random(seed)
    return pa.table({"doc_id": [f"doc-{i:06d}" for i in range(rows)], "text": [text(rng) for _ in range(rows)]})


def main() -> None:
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pq.write_table(make_corpus(args.rows, args.seed), args.path)


if __name__ == "__main__":
    main()
