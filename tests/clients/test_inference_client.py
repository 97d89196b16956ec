"""huggingface_hub.InferenceClient, unchanged, against the endpoint: each task method it has that
pipefleet serves, called as its docs show (default call and with parameters), its typed answer
compared with the handler's (which equals pipeline()'s: the unit tier shows that) on the same input.
Also raw file bodies as curl sends them."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec
from tests.audio_samples import recordings, wav_bytes
from tests.legacy.goldens import model_folder
from tests.oracle import SCORE_TOLERANCE, assert_matches
from tests.support import running_endpoint
from tests.tiny_models import minilm_path
from tests.unit.test_multimodal_handlers import TABLE, invoice
from tests.unit.test_text_handlers import MASKED, TEXTS
from tests.unit.test_vision_handlers import drawn_images, png_bytes

TEXT = TEXTS[0]
IMAGE = png_bytes(drawn_images()[0])
SOUND = wav_bytes(recordings()[0])


def _routes(tiny_model) -> dict[str, dict]:
    """Route name -> spec for every task with an InferenceClient method."""
    tiny = {
        task: tiny_model(task)
        for task in (
            "text-classification",
            "zero-shot-classification",
            "token-classification",
            "fill-mask",
            "text-generation",
            "image-classification",
            "object-detection",
            "image-segmentation",
            "zero-shot-image-classification",
            "audio-classification",
            "automatic-speech-recognition",
            "text-to-audio",
            "document-question-answering",
            "table-question-answering",
            "text-ranking",
        )
    }
    models = {
        **tiny,
        "feature-extraction": minilm_path(),
        "sentence-similarity": minilm_path(),
        "summarization": model_folder("summarization"),
        "translation": model_folder("translation_en_to_fr"),
        "question-answering": model_folder("question-answering"),
        "visual-question-answering": model_folder("visual-question-answering"),
    }
    extra = {"text-generation": {"max_new_tokens": 6}, "summarization": {"max_new_tokens": 8}}
    extra["translation"] = {"max_new_tokens": 8, "src_lang": "en", "tgt_lang": "fr"}
    return {
        task: {
            "task": task,
            "model": model,
            "device": "cpu",
            "params": extra.get(task, {}),
            "serve": {"route": f"/{task}", "num_cpus": 0.05, "max_batch_size": 4, "batch_wait_timeout_s": 0.01},
        }
        for task, model in models.items()
    }


@pytest.fixture(scope="module")
def endpoint(local_ray, tiny_model):
    specs = _routes(tiny_model)
    with running_endpoint(list(specs.values()), "pipefleet-clients") as url:
        yield url, specs


@pytest.fixture
def client(endpoint, monkeypatch):
    """``InferenceClient(model=URL)`` for a route; online, as a client machine would be (the tests set
    HF_HUB_OFFLINE, with which the client refuses even a local URL)."""
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    url, _ = endpoint
    return lambda task: InferenceClient(model=f"{url}/{task}", timeout=120)


@pytest.fixture(scope="module")
def handlers(endpoint):
    """The handler of each route, loaded here with one torch thread as the replicas run them."""
    import torch

    loaded = {}
    _, specs = endpoint

    def get(task: str):
        if task not in loaded:
            spec = parse_spec(specs[task])
            loaded[task] = handler_class(spec.task)(spec)
            loaded[task].setup()
        return loaded[task]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield get
    torch.set_num_threads(threads)


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= SCORE_TOLERANCE


def labels(elements) -> list[tuple[str, float]]:
    return [(e.label, round(e.score, 3)) for e in elements]


def test_text_classification_gives_one_list_per_input(client, handlers):
    want = handlers("text-classification").predict([TEXT], {"top_k": 3})[0]
    got = client("text-classification").text_classification(TEXT, top_k=3)
    assert [e.label for e in got] == [w["label"] for w in want]
    assert [e.score for e in got] == pytest.approx([w["score"] for w in want], abs=1e-4)
    default = client("text-classification").text_classification(TEXT)
    best = handlers("text-classification").predict([TEXT])[0]
    assert len(default) == 1 and default[0].label == best["label"] and close(default[0].score, best["score"])


def test_zero_shot_classification_gives_labels_with_scores(client, handlers):
    got = client("zero-shot-classification").zero_shot_classification(TEXT, candidate_labels=["sports", "politics"])
    want = handlers("zero-shot-classification").predict([TEXT], {"candidate_labels": ["sports", "politics"]})[0]
    assert [e.label for e in got] == want["labels"]
    assert all(close(e.score, s) for e, s in zip(got, want["scores"]))


def test_token_classification_and_fill_mask(client, handlers):
    got = client("token-classification").token_classification(TEXT, aggregation_strategy="simple")
    want = handlers("token-classification").predict([TEXT], {"aggregation_strategy": "simple"})[0]
    assert [(e.entity_group, e.start, e.end) for e in got] == [(w["entity_group"], w["start"], w["end"]) for w in want]
    masked = client("fill-mask").fill_mask(MASKED[0], top_k=2)
    want = handlers("fill-mask").predict([MASKED[0]], {"top_k": 2})[0]
    assert [(e.token_str, e.sequence) for e in masked] == [(w["token_str"], w["sequence"]) for w in want]


def test_feature_extraction_with_the_task_specs_options(client, handlers):
    got = client("feature-extraction").feature_extraction(TEXT, normalize=True, truncate=True)
    want = handlers("feature-extraction").predict([TEXT])[0]
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want, atol=1e-5)


def test_sentence_similarity_ranks_a_paraphrase_first(client, handlers):
    sentences = ["A man plays guitar on stage.", "The stock market fell today."]
    got = client("sentence-similarity").sentence_similarity("A man is playing a guitar.", other_sentences=sentences)
    want = handlers("sentence-similarity").predict(
        [{"source_sentence": "A man is playing a guitar.", "sentences": sentences}]
    )[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[0] > got[1]


def test_text_generation_plain_with_details_and_streamed(client, handlers):
    generate = client("text-generation")
    want = handlers("text-generation").predict([TEXT], {"do_sample": False, "return_full_text": False})[0][0]
    assert generate.text_generation(TEXT, do_sample=False) == want["generated_text"]
    detailed = generate.text_generation(TEXT, do_sample=False, details=True, seed=7, stop=["zzz"])
    assert detailed.generated_text == want["generated_text"]
    assert detailed.details.finish_reason in ("length", "eos_token") and detailed.details.seed == 7
    assert detailed.details.generated_tokens == len(detailed.details.tokens) >= 1
    assert "".join(t.text for t in detailed.details.tokens) == detailed.generated_text
    assert all(t.logprob <= 0 for t in detailed.details.tokens)
    streamed = list(generate.text_generation(TEXT, do_sample=False, stream=True, details=True))
    assert "".join(event.token.text for event in streamed) == want["generated_text"]
    assert streamed[-1].generated_text == want["generated_text"] and streamed[-1].details.generated_tokens == len(
        streamed
    )
    assert [event.token.id for event in streamed] == [t.id for t in detailed.details.tokens]


def test_summarization_translation_and_question_answering(client, handlers):
    summary = client("summarization").summarization(TEXTS[0], generate_parameters={"max_new_tokens": 5})
    want = handlers("summarization").predict([TEXTS[0]], {"generate_parameters": {"max_new_tokens": 5}})[0]
    assert summary.summary_text == want[0]["summary_text"]
    translated = client("translation").translation(TEXTS[1], src_lang="en", tgt_lang="fr")
    assert translated.translation_text == handlers("translation").predict([TEXTS[1]])[0][0]["translation_text"]
    question = {"question": "Who keeps the lighthouse?", "context": TEXTS[0]}
    answer = client("question-answering").question_answering(**question)
    want = handlers("question-answering").predict([question])[0]
    assert (answer.answer, answer.start, answer.end) == (want["answer"], want["start"], want["end"])


def test_table_and_document_question_answering(client, handlers):
    got = client("table-question-answering").table_question_answering(TABLE, "Which city is largest?")
    want = handlers("table-question-answering").predict([{"table": TABLE, "query": "Which city is largest?"}])[0]
    assert (got.answer, got.cells) == (want["answer"], want["cells"])
    page = png_bytes(invoice())
    answers = client("document-question-answering").document_question_answering(page, "What is the total?")
    want = handlers("document-question-answering").predict([{"image": page, "question": "What is the total?"}])[0]
    assert [(a.answer, a.start, a.end) for a in answers] == [(w["answer"], w["start"], w["end"]) for w in want]


def test_image_tasks_raw_and_with_parameters(client, handlers):
    assert labels(client("image-classification").image_classification(IMAGE)) == [
        (w["label"], round(w["score"], 3)) for w in handlers("image-classification").predict([IMAGE])[0]
    ]
    top = client("image-classification").image_classification(IMAGE, top_k=2)
    assert len(top) == 2
    found = client("object-detection").object_detection(IMAGE, threshold=0.0)
    want = handlers("object-detection").predict([IMAGE], {"threshold": 0.0})[0]
    assert [(o.label, o.box.xmin, o.box.ymax) for o in found] == [
        (w["label"], w["box"]["xmin"], w["box"]["ymax"]) for w in want
    ]
    segments = client("image-segmentation").image_segmentation(IMAGE)
    want = handlers("image-segmentation").predict([IMAGE])[0]
    assert [s.label for s in segments] == [w["label"] for w in want]
    zero = client("zero-shot-image-classification").zero_shot_image_classification(
        IMAGE, candidate_labels=["a cat", "a dog"]
    )
    want = handlers("zero-shot-image-classification").predict(
        [{"image": IMAGE, "candidate_labels": ["a cat", "a dog"]}]
    )[0]
    assert labels(zero) == [(w["label"], round(w["score"], 3)) for w in want]


def test_visual_question_answering_with_its_top_level_question(client, handlers):
    got = client("visual-question-answering").visual_question_answering(IMAGE, "what colour is it?")
    want = handlers("visual-question-answering").predict([{"image": IMAGE, "question": "what colour is it?"}])[0]
    assert [(a.answer, round(a.score, 3)) for a in got] == [(w["answer"], round(w["score"], 3)) for w in want]


def test_audio_tasks_raw(client, handlers):
    got = client("audio-classification").audio_classification(SOUND)
    assert labels(got) == [
        (w["label"], round(w["score"], 3)) for w in handlers("audio-classification").predict([SOUND])[0]
    ]
    transcript = client("automatic-speech-recognition").automatic_speech_recognition(SOUND)
    assert transcript.text == handlers("automatic-speech-recognition").predict([SOUND])[0]["text"]


def test_text_to_speech_answers_the_audio_file(client, handlers):
    import soundfile

    audio = client("text-to-audio").text_to_speech("hello there")
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    want = handlers("text-to-audio").predict(["hello there"])[0]
    expected, expected_rate = soundfile.read(io.BytesIO(want["audio"]), dtype="float32")
    assert rate == expected_rate and np.allclose(samples, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("task", "file", "content_type"),
    [
        ("image-classification", IMAGE, "image/png"),
        ("image-segmentation", IMAGE, "image/png"),
        ("object-detection", IMAGE, "application/octet-stream"),
        ("audio-classification", SOUND, "audio/x-wav"),
        ("automatic-speech-recognition", SOUND, "audio/wav"),
    ],
)
def test_curl_posts_the_raw_file(endpoint, handlers, task, file, content_type, tmp_path):
    url, _ = endpoint
    path = tmp_path / "upload"
    path.write_bytes(file)
    assert shutil.which("curl"), "curl is installed with the test tier's system packages (README command 2)"
    command = [
        "curl",
        "-s",
        "-S",
        "--fail-with-body",
        "--data-binary",
        f"@{path}",
        "-H",
        f"Content-Type: {content_type}",
    ]
    done = subprocess.run([*command, f"{url}/{task}?shape=pipeline"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    want = handlers(task).single_output(handlers(task).predict([file])[0], file, {})
    assert_matches(json.loads(done.stdout), want)
