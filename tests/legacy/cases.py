"""Inputs and call parameters of the legacy-task goldens: the tasks transformers 5 removed.

Plain data, imported both by ``make_goldens.py`` (run under transformers 4.57, whose pipelines
write the expected outputs) and by ``tests/unit/test_legacy_handlers.py`` and its job and HTTP
twins (run under transformers 5, where pipefleet's own handlers must give the same outputs).
"""

from __future__ import annotations

from typing import Any

# Each case: (name, inputs of one row, call parameters). One golden output per case.
Case = tuple[str, Any, dict[str, Any]]

BERLIN = "My name is Wolfgang and I live in Berlin. I work as a baker near the old river."
# Long enough that, at max_seq_len 48, the context is split into several overlapping windows.
HARBOUR = (
    "The harbour town wakes early. Fishermen mend their nets while the bakers light the ovens and "
    "the market fills with crates of apples, pears and cheese from the hills. Children walk to the "
    "school beside the church, and the ferry leaves for the island at seven. Later in the morning "
    "the museum opens its doors to visitors who come to see the old maps of the coast. The lighthouse "
    "keeper, whose name is Marta, has lived in the red house at the end of the pier for forty years, "
    "and she still climbs the tower every evening to watch the boats come home."
)

QUESTION_ANSWERING: list[Case] = [
    ("short", {"question": "Where does Wolfgang live?", "context": BERLIN}, {}),
    ("top_k", {"question": "What is his job?", "context": BERLIN}, {"top_k": 3}),
    ("impossible", {"question": "Who is the mayor?", "context": BERLIN}, {"handle_impossible_answer": True}),
    (
        "tokens_not_words",
        {"question": "Where does he work?", "context": BERLIN},
        {"align_to_words": False, "max_answer_len": 3},
    ),
    ("windows", {"question": "Who keeps the lighthouse?", "context": HARBOUR}, {"max_seq_len": 48, "doc_stride": 16}),
    ("windows_top_k", {"question": "When does the ferry leave?", "context": HARBOUR}, {"top_k": 2}),
    ("default_windows", {"question": "What opens in the morning?", "context": HARBOUR}, {}),
]

ARTICLES = [
    "The city council met on Monday and agreed to build a new bridge over the river.",
    "Heavy rain flooded the market square, and the bakers moved their stalls to the church hall.",
    "A short one.",
    "The museum will open a new room of old maps of the coast next spring, the director said on Friday, "
    "and school children will visit it for free during the first month.",
]

SUMMARIZATION: list[Case] = [
    ("defaults", ARTICLES[0], {}),
    ("short_greedy", ARTICLES[1], {"max_new_tokens": 8, "num_beams": 1, "do_sample": False}),
    ("min_max_length", ARTICLES[2], {"min_length": 5, "max_length": 12}),
    ("no_repeat", ARTICLES[3], {"max_new_tokens": 16, "no_repeat_ngram_size": 2}),
    ("two_sequences", ARTICLES[0], {"max_new_tokens": 6, "num_beams": 3, "num_return_sequences": 2}),
    ("clean_up", ARTICLES[1], {"max_new_tokens": 10, "clean_up_tokenization_spaces": True}),
]

SENTENCES = [
    "How old are you?",
    "The bakers light the ovens early.",
    "Where is the ferry to the island?",
    "Children walk to the school beside the church every morning.",
]

TRANSLATION: list[Case] = [
    ("defaults", SENTENCES[0], {}),
    ("greedy", SENTENCES[1], {"max_new_tokens": 8, "num_beams": 1}),
    ("beams", SENTENCES[2], {"max_new_tokens": 12, "num_beams": 2}),
    ("long", SENTENCES[3], {"max_new_tokens": 20}),
]

# A multilingual model (NLLB) is told the languages in the call, as its model card shows.
ENGLISH_TO = {"src_lang": "eng_Latn", "tgt_lang": "fra_Latn"}
MULTILINGUAL_TRANSLATION: list[Case] = [
    ("to_french", SENTENCES[0], {**ENGLISH_TO, "max_new_tokens": 8}),
    ("to_german", SENTENCES[0], {**ENGLISH_TO, "tgt_lang": "deu_Latn", "max_new_tokens": 8}),
    ("defaults", SENTENCES[1], ENGLISH_TO),
    ("beams", SENTENCES[2], {**ENGLISH_TO, "max_new_tokens": 10, "num_beams": 3}),
]
LANGUAGES = ["eng_Latn", "fra_Latn", "deu_Latn"]

# Images are drawn by tests.legacy.images; a case names one.
VISUAL_QUESTION_ANSWERING: list[Case] = [
    ("defaults", {"image": "red_square", "question": "What colour is the square?"}, {}),
    ("top_k", {"image": "blue_circle", "question": "What shape is it?"}, {"top_k": 2}),
    ("more_than_labels", {"image": "green_lines", "question": "How many lines are there?"}, {"top_k": 50}),
]

# A generative answerer (BLIP); 4.57 took its generation parameters when the pipeline was made.
GENERATIVE_VISUAL_QUESTION_ANSWERING: list[Case] = [
    ("defaults", {"image": "red_square", "question": "What colour is the square?"}, {}),
    ("short", {"image": "blue_circle", "question": "What shape is it?"}, {"max_new_tokens": 6}),
    ("beams", {"image": "green_lines", "question": "How many lines are there?"}, {"max_new_tokens": 6, "num_beams": 2}),
    ("top_k_is_ignored", {"image": "blue_circle", "question": "What colour is it?"}, {"top_k": 3, "max_new_tokens": 5}),
]

# Golden name -> its cases. Each golden is one task on one tiny model (make_goldens.BUILDERS).
CASES: dict[str, list[Case]] = {
    "question-answering": QUESTION_ANSWERING,
    "summarization": SUMMARIZATION,
    "translation_en_to_fr": TRANSLATION,
    "translation-multilingual": MULTILINGUAL_TRANSLATION,
    "visual-question-answering": VISUAL_QUESTION_ANSWERING,
    "visual-question-answering-generative": GENERATIVE_VISUAL_QUESTION_ANSWERING,
}

VQA_ANSWERS = ["red", "blue", "green", "square", "circle", "one", "two", "three", "yes", "no"]


def texts() -> list[str]:
    """Every text of the cases, as written, for the tiny tokenizers' vocabularies."""
    found: list[str] = [BERLIN, HARBOUR, *ARTICLES, *SENTENCES, "summarize translate English to French"]
    for cases in CASES.values():
        for _, inputs, _ in cases:
            if isinstance(inputs, dict):
                found.extend(str(value) for value in inputs.values())
    return [*found, *VQA_ANSWERS]


def words() -> list[str]:
    """Every word of the cases, lower-cased, for the tiny WordPiece vocabulary."""
    import re

    return sorted({word for text in texts() for word in re.findall(r"[a-z0-9]+", text.lower())})
