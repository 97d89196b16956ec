"""Each text handler equals transformers.pipeline on the same model and inputs."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from pipefleet.errors import BadInput, RowError
from tests.oracle import assert_matches

TEXTS = [
    "I love this movie, it was wonderful",
    "bad",
    "The quick brown fox jumps over the lazy dog near the river bank in Paris, France",
    "Angela Merkel met Emmanuel Macron in Berlin",
    "ok",
]
MASKED = ["Paris is the [MASK] of France.", "hello [MASK]", "the [MASK] sat on the mat and looked out of the window"]

# (task, spec params, per-call override, inputs)
CASES = [
    ("text-classification", {}, {"top_k": 2}, TEXTS),
    ("text-classification", {"function_to_apply": "sigmoid"}, {"top_k": None}, TEXTS),
    ("sentiment-analysis", {"top_k": 1}, {"function_to_apply": "none"}, TEXTS),
    ("token-classification", {}, {"aggregation_strategy": "simple"}, TEXTS),
    ("ner", {"aggregation_strategy": "first"}, {"ignore_labels": ["O", "B-PER"]}, TEXTS),
    (
        "zero-shot-classification",
        {"candidate_labels": ["sports", "politics", "food"]},
        {"candidate_labels": ["cinema", "travel"], "multi_label": True},
        TEXTS,
    ),
    (
        "zero-shot-classification",
        {"candidate_labels": "sports, politics", "hypothesis_template": "It is about {}."},
        {"multi_label": True},
        TEXTS,
    ),
    ("fill-mask", {}, {"top_k": 2}, MASKED),
    ("fill-mask", {"top_k": 3}, {"targets": ["capital", "cat", "world"]}, MASKED),
    ("feature-extraction", {"pooling": "none"}, {"truncation": True}, TEXTS),
    (
        "text-generation",
        {"max_new_tokens": 6, "do_sample": False},
        {"max_new_tokens": 3, "return_full_text": False},
        TEXTS,
    ),
    (
        "text-generation",
        {"max_new_tokens": 4, "num_return_sequences": 2, "num_beams": 2, "do_sample": False},
        {"max_new_tokens": 2},
        TEXTS,
    ),
]
HANDLER_ONLY = {"pooling"}  # pipefleet parameters that pipeline() does not take


def _pipeline_params(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in HANDLER_ONLY}


def _task_model(tiny_model, task: str) -> str:
    from pipefleet.registry import canonical_task

    return tiny_model(canonical_task(task))


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize(("task", "spec_params", "override", "inputs"), CASES, ids=lambda c: str(c)[:40])
def test_handler_equals_pipeline(tiny_model, make_handler, task, spec_params, override, inputs, batch_size):
    model = _task_model(tiny_model, task)
    handler = make_handler(task, model, batch_size=batch_size, params=spec_params)
    oracle = pipeline(task, model=model, device="cpu", **_pipeline_params(spec_params))
    # Batched, pipeline() returns padding positions as raw feature tokens; pipefleet returns
    # each text's own tokens, which is what pipeline() gives one text at a time.
    oracle_batch = 1 if spec_params.get("pooling") == "none" else batch_size

    # Spec parameters alone, then a per-call override on top of them (pipeline semantics).
    assert_matches(handler.predict(inputs), oracle(list(inputs), batch_size=oracle_batch))
    expected = oracle(list(inputs), batch_size=oracle_batch, **_pipeline_params(override))
    assert_matches(handler.predict(inputs, params=override), expected)


@pytest.mark.parametrize(("task", "spec_params", "override", "inputs"), CASES, ids=lambda c: str(c)[:40])
def test_handler_in_lanes_equals_pipeline(tiny_model, make_handler, task, spec_params, override, inputs):
    # Three forward passes at once (the job on a CPU of three cores), each in a thread of its own.
    model = _task_model(tiny_model, task)
    handler = make_handler(task, model, batch_size=2, params=spec_params)
    handler.engine.lanes = 3
    oracle = pipeline(task, model=model, device="cpu", **_pipeline_params(spec_params))
    texts = list(inputs) * 2
    oracle_batch = 1 if spec_params.get("pooling") == "none" else 2  # as in test_handler_equals_pipeline
    expected = oracle(texts, batch_size=oracle_batch, **_pipeline_params(override))
    assert_matches(handler.predict(texts, params=override), expected)


def test_text_pairs_equal_pipeline(tiny_model, make_handler):
    model = tiny_model("text-classification")
    pairs = [{"text": "A man is eating.", "text_pair": "Someone eats food."}, {"text": "It rains", "text_pair": "Sun"}]
    handler = make_handler("text-classification", model, batch_size=2)
    assert_matches(handler.predict(pairs), pipeline("text-classification", model=model)(pairs, batch_size=2))


def test_zero_shot_labels_per_row(tiny_model, make_handler):
    model = tiny_model("zero-shot-classification")
    handler = make_handler("zero-shot-classification", model, batch_size=4)
    oracle = pipeline("zero-shot-classification", model=model)
    rows = [{"text": TEXTS[0], "candidate_labels": ["a", "b"]}, {"text": TEXTS[1], "candidate_labels": ["x", "y", "z"]}]
    ours = handler.predict(rows)
    assert_matches(ours[0], oracle(TEXTS[0], candidate_labels=["a", "b"]))
    assert_matches(ours[1], oracle(TEXTS[1], candidate_labels=["x", "y", "z"]))


def test_chat_generation_equals_pipeline(tiny_model, make_handler):
    model = tiny_model("text-generation")
    chats = [
        [{"role": "user", "content": "hello there"}],
        [{"role": "user", "content": "what is the capital of France?"}],
    ]
    handler = make_handler("text-generation", model, batch_size=2, params={"max_new_tokens": 4, "do_sample": False})
    oracle = pipeline("text-generation", model=model)
    assert_matches(handler.predict(chats), oracle(chats, max_new_tokens=4, do_sample=False, batch_size=2))


def test_pooled_embedding_is_mean_of_token_states(tiny_model, make_handler):
    model = tiny_model("feature-extraction")
    handler = make_handler("feature-extraction", model, batch_size=2, params={"normalize": False})
    raw = pipeline("feature-extraction", model=model)(TEXTS)
    for vector, tokens in zip(handler.predict(TEXTS), raw):
        assert vector.dtype == np.float32 and vector.shape == (32,)
        np.testing.assert_allclose(vector, np.mean(tokens[0], axis=0), atol=1e-5)
    cls = make_handler("feature-extraction", model, params={"pooling": "cls", "normalize": True}).predict(TEXTS)
    for vector, tokens in zip(cls, raw):
        first = np.array(tokens[0][0])
        np.testing.assert_allclose(vector, first / np.linalg.norm(first), atol=1e-5)


def test_minilm_embedding_by_hand_and_quality(minilm, make_handler):
    import torch
    from transformers import AutoModel, AutoTokenizer

    sentences = ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply."]
    handler = make_handler("feature-extraction", minilm, batch_size=2)
    ours = np.stack(handler.predict(sentences))

    tokenizer, model = AutoTokenizer.from_pretrained(minilm), AutoModel.from_pretrained(minilm)
    with torch.no_grad():
        batch = tokenizer(sentences, padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    similarity = ours @ ours.T
    assert similarity[0, 1] > 0.5 > similarity[0, 2]


@pytest.mark.parametrize(
    ("task", "bad", "message"),
    [
        ("text-classification", None, "missing"),
        ("text-classification", 42, "must be a string, got int"),
        ("text-classification", "   ", "empty"),
        ("text-classification", {"text": "x", "other": "y"}, "text and text_pair"),
        ("token-classification", ["a", "list"], "must be a string, got list"),
        ("zero-shot-classification", {"text": "no labels here", "candidate_labels": []}, "candidate_labels"),
        ("fill-mask", "no mask token at all", "exactly one [MASK]"),
        ("fill-mask", "[MASK] and [MASK]", "found 2"),
        ("feature-extraction", "", "empty"),
        ("text-generation", [{"content": "no role"}], "'role' and 'content'"),
    ],
)
def test_bad_rows_get_their_own_error(tiny_model, make_handler, task, bad, message):
    params = {"candidate_labels": ["a", "b"]} if task == "zero-shot-classification" else {}
    if task == "text-generation":
        params = {"max_new_tokens": 2, "do_sample": False}
    good = MASKED[:2] if task == "fill-mask" else TEXTS[:2]
    handler = make_handler(task, tiny_model(task), batch_size=4, params=params)
    alone = handler.predict(good)
    mixed = handler.predict([good[0], bad, good[1]])
    assert isinstance(mixed[1], RowError) and message in mixed[1].message, mixed[1]
    assert_matches([mixed[0], mixed[2]], alone)


def test_model_failure_on_one_row_spares_the_batch(tiny_model, make_handler):
    # 400 words exceed the tiny model's 128 positions: the batch fails, the retry isolates the row.
    model = tiny_model("text-classification")
    handler = make_handler("text-classification", model, batch_size=4)
    outcomes = handler.predict([TEXTS[0], "word " * 400, TEXTS[1]])
    assert isinstance(outcomes[1], RowError) and outcomes[1].kind == "model_error"
    assert_matches([outcomes[0], outcomes[2]], handler.predict([TEXTS[0], TEXTS[1]]))


def test_unknown_call_parameter_is_bad_input(tiny_model, make_handler):
    handler = make_handler("text-classification", tiny_model("text-classification"))
    with pytest.raises(BadInput, match="unknown parameter.*topk.*accepted: .*top_k"):
        handler.predict(TEXTS, params={"topk": 2})


def test_parameters_the_pipeline_rejects_fail_only_their_rows(tiny_model, make_handler):
    # A stride of at least the model's 128 positions is refused when the pipeline prepares its parameters.
    handler = make_handler("token-classification", tiny_model("token-classification"), batch_size=4)
    outcomes = handler.predict([TEXTS[0], TEXTS[1]], params=[{"stride": 500, "aggregation_strategy": "simple"}, {}])
    assert isinstance(outcomes[0], RowError) and "stride" in outcomes[0].message
    assert_matches(outcomes[1], handler.predict([TEXTS[1]])[0])


@pytest.mark.parametrize(
    ("task", "params"),
    [("text-classification", {"top_k": 2}), ("feature-extraction", {}), ("feature-extraction", {"pooling": "none"})],
)
@pytest.mark.parametrize(("lanes", "splits"), [(1, 2), (2, 5)])
def test_out_of_memory_halves_the_batch_and_loses_nothing(tiny_model, make_handler, task, params, lanes, splits):
    from tests.faults import oom_above

    texts = TEXTS * 8  # 40 rows: batches of 16, 16 and 8
    handler = make_handler(task, tiny_model(task), batch_size=16, params=params)
    expected = handler.predict(texts)
    handler.engine.lanes = lanes
    oom_above(handler.pipe.model, max_rows=5)
    got = handler.predict(texts)
    assert not any(isinstance(x, RowError) for x in got)
    assert_matches(got, expected)
    # One lane: 16 rows -> 8 -> 4, then the rest at 4. Two lanes halve each batch on its own: 2 + 2 + 1.
    assert handler.stats.oom_splits == splits


def test_models_that_generate_run_one_pass_at_a_time(tiny_model, make_handler):
    # Sampling with a seed draws from torch's one process-wide generator: passes at once would share it.
    assert make_handler("text-classification", tiny_model("text-classification")).parallel_forward
    assert make_handler("feature-extraction", tiny_model("feature-extraction")).parallel_forward
    assert not make_handler("text-generation", tiny_model("text-generation")).parallel_forward


def test_out_of_memory_on_a_single_row_is_that_rows_error(tiny_model, make_handler):
    from tests.faults import oom_above

    handler = make_handler("text-classification", tiny_model("text-classification"), batch_size=4)
    oom_above(handler.pipe.model, max_rows=0)
    outcomes = handler.predict(TEXTS[:3])
    assert all(isinstance(x, RowError) and x.kind == "model_error" for x in outcomes)
    assert "out of memory on this row alone" in outcomes[0].message


def test_text_over_max_input_chars_is_refused_before_tokenising(tiny_model, make_handler):
    handler = make_handler("text-classification", tiny_model("text-classification"), max_input_chars=1000)
    outcomes = handler.predict([TEXTS[0], "x" * 1_000_001, TEXTS[1]])
    assert (
        isinstance(outcomes[1], RowError)
        and "1,000,001 characters, over max_input_chars (1,000)" in outcomes[1].message
    )
    assert_matches([outcomes[0], outcomes[2]], handler.predict([TEXTS[0], TEXTS[1]]))


def test_batches_stop_at_the_token_budget_but_take_one_row_at_least():
    from pipefleet.engine import run_batches

    lengths = [1, 1, 1, 1, 1, 10, 10, 10, 50]
    seen: list[list[int]] = []

    def forward(items: list[int]) -> list[int]:
        seen.append(items)
        return [item * 2 for item in items]

    results = run_batches(list(range(len(lengths))), 4, forward, lengths=lengths, max_tokens=20)
    assert results == [2 * i for i in range(len(lengths))]
    # 4 rows at most; 2 x 10 tokens fit in 20, 3 x 10 do not; a row over the budget runs alone.
    assert seen == [[0, 1, 2, 3], [4, 5], [6, 7], [8]]


@pytest.mark.parametrize(
    ("task", "params"),
    [("text-classification", {}), ("feature-extraction", {}), ("feature-extraction", {"pooling": "none"})],
)
def test_max_batch_tokens_caps_every_forward_pass_and_keeps_outputs(tiny_model, make_handler, task, params):
    texts = TEXTS * 4  # 20 rows of 2 to about 25 tokens
    uncapped = make_handler(task, tiny_model(task), batch_size=16, params=params, max_batch_tokens=10**6)
    capped = make_handler(task, tiny_model(task), batch_size=16, params=params, max_batch_tokens=48)
    shapes: list[tuple[int, int]] = []
    forward = capped.pipe.model.forward

    def recording(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        shapes.append(tuple(ids.shape))
        return forward(*args, **kwargs)

    capped.pipe.model.forward = recording
    assert_matches(capped.predict(texts), uncapped.predict(texts))
    assert shapes and all(rows * width <= 48 or rows == 1 for rows, width in shapes)
    assert max(rows for rows, _ in shapes) > 1  # short rows still share a pass


def test_max_batch_tokens_defaults_to_a_cap_on_cpu_only(tiny_model, make_handler):
    from pipefleet.engine import CPU_BATCH_TOKENS

    handler = make_handler("text-classification", tiny_model("text-classification"))
    assert handler.engine.max_tokens == CPU_BATCH_TOKENS
    assert (
        make_handler("text-classification", tiny_model("text-classification"), max_batch_tokens=64).engine.max_tokens
        == 64
    )
