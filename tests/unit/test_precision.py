"""bfloat16 on CPUs: refused where the CPU would only emulate it, and within a stated tolerance of float32
where it runs. Whether this machine's CPU has native bfloat16 is set by each test, so both paths run
everywhere (emulated bfloat16 computes the same values, only slower)."""

from __future__ import annotations

import numpy as np
import pytest

import pipefleet.precision as precision
from pipefleet.errors import FatalError, RowError
from tests.oracle import assert_matches
from tests.unit.test_text_handlers import MASKED, TEXTS

# bfloat16 keeps 8 bits of mantissa: scores and probabilities agree with float32 to about 1e-2.
SCORE_TOLERANCE = 0.03
# MiniLM sentence vectors against float32: bfloat16 autocast (float32 weights), and bfloat16 weights.
LOWEST_COSINE = {"autocast": 0.9995, "dtype": 0.995}

TEXT_TASKS = [
    ("text-classification", {"top_k": 2}, TEXTS),
    # Every token's best score (entity spans may merge differently when two labels nearly tie).
    ("token-classification", {"ignore_labels": []}, TEXTS),
    ("zero-shot-classification", {"candidate_labels": ["sports", "politics"]}, TEXTS),
    ("fill-mask", {"top_k": 3}, MASKED),
    ("feature-extraction", {}, TEXTS),
    ("sentence-similarity", {}, [{"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}]),
]


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "avx512_bf16")


def _scores(outcome):
    """Every float in an output, in order."""
    if isinstance(outcome, (float, np.floating)):
        return [float(outcome)]
    if isinstance(outcome, np.ndarray):
        return [float(x) for x in outcome.ravel()]
    if isinstance(outcome, dict):
        return [x for value in outcome.values() for x in _scores(value)]
    if isinstance(outcome, list):
        return [x for value in outcome for x in _scores(value)]
    return []


@pytest.mark.parametrize(("task", "params", "inputs"), TEXT_TASKS, ids=[t[0] for t in TEXT_TASKS])
def test_bf16_autocast_stays_within_tolerance_of_float32(task, params, inputs, tiny_model, make_handler, native_bf16):
    exact = make_handler(task, tiny_model(task), params=params).predict(inputs)
    fast = make_handler(task, tiny_model(task), params=params, autocast="bfloat16")
    assert fast.identity()["precision"]["compute"] == "bfloat16"
    approximate = fast.predict(inputs)
    assert not any(isinstance(x, RowError) for x in approximate)
    ours, theirs = _scores(approximate), _scores(exact)
    assert len(ours) == len(theirs) and ours
    np.testing.assert_allclose(ours, theirs, atol=SCORE_TOLERANCE)


def test_bf16_sentence_vectors_keep_their_direction(minilm, make_handler, native_bf16):
    texts = TEXTS * 3
    exact = make_handler("feature-extraction", minilm).predict(texts)
    for setting, lowest in LOWEST_COSINE.items():
        fast = make_handler("feature-extraction", minilm, **{setting: "bfloat16"}).predict(texts)
        cosines = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(fast, exact)]
        assert min(cosines) >= lowest, (setting, min(cosines))


def test_a_cpu_without_native_bf16_refuses_it_saying_why(tiny_model, make_handler, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: None)
    for settings in ({"autocast": "bfloat16"}, {"dtype": "bfloat16"}):
        with pytest.raises(FatalError, match="this CPU has no native bfloat16 arithmetic .* slower than float32"):
            make_handler("text-classification", tiny_model("text-classification"), **settings)
    with pytest.raises(FatalError, match="autocast: float16 runs on a GPU"):
        make_handler("text-classification", tiny_model("text-classification"), autocast="float16")


def test_float32_is_the_default_and_equals_the_pipeline(tiny_model, make_handler, native_bf16):
    from transformers import pipeline

    model = tiny_model("text-classification")
    handler = make_handler("text-classification", model)
    described = handler.identity()["precision"]
    assert described["weights"] == described["compute"] == "float32"
    assert described["faster"].startswith("autocast: bfloat16")  # the CPU could: the summary says so
    assert_matches(handler.predict(TEXTS), pipeline("text-classification", model=model)(TEXTS))


def test_the_summary_line_names_precision_and_kernels():
    line = precision.summary(
        {"weights": "float32", "compute": "bfloat16", "device": "cpu", "cpu_kernels": "AVX512", "cpu_bf16": "amx_bf16"}
    )
    assert line == "float32 weights, bfloat16 compute (autocast), on cpu, AVX512 kernels, native bfloat16: amx_bf16"
