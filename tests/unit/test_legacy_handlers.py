"""question-answering, summarization, translation and visual-question-answering: the tasks
transformers 5 removed. pipefleet's handlers must give what transformers 4.57's pipelines gave,
recorded in ``tests/legacy/goldens`` (see ``tests/legacy/make_goldens.py``), with the tiny models
saved beside the goldens. The job and HTTP tiers check the same goldens.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipefleet.errors import RowError
from pipefleet.spec import parse_spec
from tests.legacy.goldens import NAMES, golden, model_folder, png, row_input, task_of
from tests.legacy.images import draw
from tests.legacy.shared import ONE_MB, _chat_answers
from tests.oracle import assert_matches


@pytest.mark.parametrize("name", NAMES)
def test_handler_equals_the_4_57_pipeline(make_handler, name):
    cases = golden(name)["cases"]
    handler = make_handler(task_of(name), model_folder(name))
    # All cases in one call, each with its own parameters: rows that share parameters share batches.
    outputs = handler.predict([row_input(name, case["inputs"]) for case in cases], [case["params"] for case in cases])
    for case, output in zip(cases, outputs):
        assert_matches(output, case["output"], f"{name}/{case['name']}")


def test_question_answering_finds_the_answer_in_a_later_window(make_handler):
    case = next(c for c in golden("question-answering")["cases"] if c["name"] == "windows")
    handler = make_handler("question-answering", model_folder("question-answering"))
    encoded = handler.pipe.tokenizer(
        case["inputs"]["question"],
        case["inputs"]["context"],
        truncation="only_second",
        max_length=case["params"]["max_seq_len"],
        stride=case["params"]["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    windows = len(encoded["input_ids"])
    first_window_end = max(
        end for (_, end), seq in zip(encoded["offset_mapping"][0], encoded.sequence_ids(0)) if seq == 1
    )
    assert windows > 2 and case["output"]["start"] > first_window_end, (windows, first_window_end, case["output"])
    [output] = handler.predict([case["inputs"]], case["params"])
    assert_matches(output, case["output"])


def test_bad_question_answering_inputs_fail_alone(make_handler):
    handler = make_handler("question-answering", model_folder("question-answering"))
    good = {"question": "Where does Wolfgang live?", "context": "My name is Wolfgang and I live in Berlin."}
    outcomes = handler.predict(
        [
            {"context": good["context"]},
            {"question": good["question"], "context": ""},
            {"question": good["question"], "context": ONE_MB},
            "just a string",
            good,
        ]
    )
    errors = [str(outcome) for outcome in outcomes[:4]]
    assert all(isinstance(outcome, RowError) for outcome in outcomes[:4]), outcomes
    assert "question is missing" in errors[0] and "context is empty" in errors[1], errors
    assert "context is 1,000,000 characters, over max_input_chars" in errors[2], errors
    assert "an input is an object with question, context" in errors[3], errors
    assert set(outcomes[4]) == {"score", "start", "end", "answer"}


def test_translation_task_names_carry_their_languages():
    spec = parse_spec({"task": "translation_en_to_fr", "model": "some/model"})
    assert spec.task == "translation" and spec.params == {"src_lang": "en", "tgt_lang": "fr"}
    mbart = parse_spec({"task": "translation_en_to_fr", "params": {"src_lang": "en_XX", "tgt_lang": "fr_XX"}})
    assert mbart.params == {"src_lang": "en_XX", "tgt_lang": "fr_XX"}
    assert parse_spec({"task": "vqa"}).task == "visual-question-answering"


def test_bare_translation_takes_the_models_first_language_pair_as_4_57_did(make_handler):
    # 4.57's pipeline("translation") on this T5 picks translation_en_to_fr, its first translation entry
    # in task_specific_params, and so its prefix: the outputs equal that golden's.
    cases = golden("translation_en_to_fr")["cases"]
    handler = make_handler("translation", model_folder("translation_en_to_fr"))
    assert handler.pipe.legacy_task == "translation_en_to_fr"
    outputs = handler.predict([case["inputs"] for case in cases], [case["params"] for case in cases])
    for case, output in zip(cases, outputs):
        assert_matches(output, case["output"], case["name"])


def test_multilingual_translation_writes_in_the_asked_language_and_refuses_unknown_codes(make_handler):
    outputs = {case["name"]: case["output"] for case in golden("translation-multilingual")["cases"]}
    assert outputs["to_french"] != outputs["to_german"]  # the same text: the target language decides
    handler = make_handler("translation", model_folder("translation-multilingual"))
    text = "How old are you?"
    outcomes = handler.predict(
        [text] * 4,
        [
            {},
            {"src_lang": "eng_Latn", "tgt_lang": "klingon"},
            {"src_lang": "xx_Latn", "tgt_lang": "fra_Latn"},
            {"src_lang": "eng_Latn", "tgt_lang": "deu_Latn", "max_new_tokens": 8},
        ],
    )
    errors = [str(outcome) for outcome in outcomes[:3]]
    assert all(isinstance(outcome, RowError) for outcome in outcomes[:3]), outcomes
    assert "needs src_lang and tgt_lang" in errors[0], errors
    assert "tgt_lang 'klingon' is not a language code" in errors[1], errors
    assert "src_lang 'xx_Latn' is not a language code" in errors[2], errors
    assert_matches(outcomes[3], outputs["to_german"])


def test_vqa_with_a_chat_model_answers_through_image_text_to_text(tiny_model, make_handler):
    model = tiny_model("image-text-to-text")  # a LLaVA: not one of 4.57's VQA models
    handler = make_handler("vqa", model, params={"max_new_tokens": 5})
    assert handler.chat is not None and handler.arrow_type(handler.spec.params) == pa.list_(
        pa.struct([("answer", pa.string())])
    )
    cases = [("red_square", "What colour is it?", {}), ("blue_circle", "What shape?", {"max_new_tokens": 3})]
    rows = [{"image": png(image), "question": question} for image, question, _ in cases]
    outcomes = handler.predict([*rows, {"image": png("red_square"), "question": ""}], [p for *_, p in cases] + [{}])
    for (image, question, params), outcome in zip(cases, outcomes):
        assert_matches(outcome, _chat_answers(model, draw(image), question, **{"max_new_tokens": 5, **params}))
    assert isinstance(outcomes[2], RowError) and "question is empty" in str(outcomes[2])
