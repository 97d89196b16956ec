"""The demo page in a real headless Chromium: what a person sees equals what the API answers.

Each test submits an input on the page, waits for the result the page draws, and compares
it with the API's answer for the same input. A screenshot of each page is saved under
``artifacts/demo/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from serve.demo import present
from tests.audio_samples import recordings, wav_bytes
from tests.support import running_endpoint
from tests.unit.test_vision_handlers import drawn_images, png_bytes

ASR = "automatic-speech-recognition"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "demo"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless flags that keep Chromium off the network this machine does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "demo-test-token"
os.environ["PIPEFLEET_DEMO_TEST_TOKEN"] = TOKEN  # replicas inherit the environment of the Ray that starts them


def _spec(task: str, model: str, route: str, params: dict | None = None, **serve_options) -> dict:
    serve_section = {"route": route, "num_cpus": 0.1, "max_batch_size": 8, "batch_wait_timeout_s": 0.01}
    return {
        "task": task,
        "model": model,
        "device": "cpu",
        "params": params or {},
        "serve": {**serve_section, **serve_options},
    }


@pytest.fixture(scope="module")
def demo(local_ray, tiny_model):
    """An endpoint whose routes all have a tab on the demo page; yields the base URL."""

    specs = [
        _spec("text-classification", tiny_model("text-classification"), "/classify", {"top_k": 3}),
        _spec("ner", tiny_model("token-classification"), "/ner", {"aggregation_strategy": "simple"}),
        _spec("image-classification", tiny_model("image-classification"), "/image", {"top_k": 3}),
        _spec(
            "text-generation", tiny_model("text-generation"), "/generate", {"max_new_tokens": 12, "do_sample": False}
        ),
        _spec(ASR, tiny_model(ASR), "/transcribe", {"return_timestamps": "word"}),
        _spec(
            "text-classification",
            tiny_model("text-classification"),
            "/private",
            auth_token_env="PIPEFLEET_DEMO_TEST_TOKEN",
        ),
    ]
    with running_endpoint(specs, "pipefleet-demo-test", demo=True) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM}; .ci/run installs Debian's chromium package")
        pytest.skip("the demo test drives Chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, demo, request):
    """A fresh page on the demo; its screenshot is saved when the test ends, pass or fail."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{demo}/demo/", timeout=60_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    page.close()


def open_tab(page, route: str):
    page.locator(f'button[role="tab"][data-tab-id="{route}"]').click()
    return page.get_by_role("tabpanel")


def shown_labels(panel) -> dict[str, str]:
    """Label -> the percentage the page prints beside it."""
    result = panel.get_by_test_id("label")
    result.locator('[data-testid$="-confidence-set"]').first.wait_for(timeout=30_000)
    shown = {}
    for row in result.locator('[data-testid$="-confidence-set"]').all():
        label = row.get_attribute("data-testid").removesuffix("-confidence-set")
        shown[label] = row.inner_text().split()[-1]
    return shown


def percent(score: float) -> str:
    return f"{round(score * 100)}%"


def test_text_on_the_page_equals_the_api(page, demo):
    text = "what a lovely day in the park"
    # pipeline()'s shape: the labels of the one input, as the page shows them
    body = {"inputs": text, "parameters": {"top_k": 3}}
    api = httpx.post(f"{demo}/classify?shape=pipeline", json=body, timeout=60).json()
    panel = open_tab(page, "/classify")
    panel.get_by_label("text").fill(text)
    panel.get_by_role("button", name="Run").click()
    assert shown_labels(panel) == {row["label"]: percent(row["score"]) for row in api}


def test_image_upload_on_the_page_equals_the_api(page, demo, tmp_path):
    image = tmp_path / "shape.png"
    image.write_bytes(png_bytes(drawn_images()[0]))
    api = httpx.post(f"{demo}/image", files={"inputs": image.read_bytes()}, timeout=60).json()
    panel = open_tab(page, "/image")
    panel.locator("input[type=file]").set_input_files(str(image))
    panel.get_by_test_id("image").locator("img").first.wait_for(timeout=30_000)  # the upload is shown
    panel.get_by_role("button", name="Run").click()
    assert shown_labels(panel) == {row["label"]: percent(row["score"]) for row in api}


def test_audio_upload_shows_the_transcript_with_timestamps(page, demo, tmp_path):
    recording = tmp_path / "speech.wav"
    recording.write_bytes(wav_bytes(recordings()[2]))
    api = httpx.post(f"{demo}/transcribe", files={"inputs": recording.read_bytes()}, timeout=60).json()
    panel = open_tab(page, "/transcribe")
    panel.locator("input[type=file]").set_input_files(str(recording))
    panel.locator("audio").first.wait_for(state="attached", timeout=30_000)  # the upload is in place
    panel.get_by_role("button", name="Run").click()
    transcript = panel.get_by_label("transcription")
    want = present(ASR, str(recording), api)
    page.wait_for_function("([el, want]) => el.value === want", arg=[transcript.element_handle(), want], timeout=30_000)


def test_entities_are_highlighted_in_the_text(page, demo):
    text = "Alice Smith flew from Paris to Berlin with Bob"
    api = httpx.post(f"{demo}/ner", json={"inputs": text}, timeout=60).json()
    assert api, "the tiny model finds no entity in this text; pick another"
    panel = open_tab(page, "/ner")
    panel.get_by_label("text").fill(text)
    panel.get_by_role("button", name="Run").click()
    highlighted = panel.locator(".token-container:has(span.label)")  # a highlighted span and its label
    highlighted.first.wait_for(timeout=30_000)
    spans = [span.inner_text() for span in highlighted.all()]
    for entity in api:
        assert any(text[entity["start"] : entity["end"]] in span and entity["entity_group"] in span for span in spans)


def test_generated_text_is_streamed_onto_the_page(page, demo):
    prompt = "The quick brown fox"
    body = {"inputs": prompt, "parameters": {"return_full_text": False}}
    api = httpx.post(f"{demo}/generate", json=body, timeout=60).json()
    panel = open_tab(page, "/generate")
    panel.get_by_label("text").first.fill(prompt)
    panel.get_by_role("button", name="Run").click()
    output = panel.get_by_label("generated")
    page.wait_for_function(
        "([el, want]) => el.value.trim() === want",
        arg=[output.element_handle(), api[0]["generated_text"].strip()],
        timeout=30_000,
    )


def test_errors_appear_as_readable_messages(page):
    panel = open_tab(page, "/classify")
    panel.get_by_label("text").fill("   ")
    panel.get_by_role("button", name="Run").click()
    shows_message(page, "text-classification: input is empty (HTTP 422)")

    panel = open_tab(page, "/private")
    panel.get_by_label("text").fill("a text")
    panel.get_by_role("button", name="Run").click()
    shows_message(page, "missing or wrong bearer token (HTTP 401)")
    panel.get_by_role("button", name="parameters").click()
    panel.get_by_label("bearer token").fill(TOKEN)
    panel.get_by_role("button", name="Run").click()
    assert shown_labels(panel)


def shows_message(page, text: str) -> None:
    """Wait until the page shows an error message holding ``text`` (fails after 30 s)."""
    page.get_by_test_id("toast-body").filter(has_text=text).first.wait_for(timeout=30_000)


@pytest.mark.parametrize(
    ("task", "raw", "output", "shown"),
    [
        ("text-classification", "t", {"label": "POS", "score": 0.9}, {"POS": 0.9}),
        (
            "zero-shot-classification",
            "t",
            {"sequence": "t", "labels": ["a", "b"], "scores": [0.7, 0.3]},
            {"a": 0.7, "b": 0.3},
        ),
        ("fill-mask", "t", [{"score": 0.5, "token": 1, "token_str": "x", "sequence": "a x"}], {"a x": 0.5}),
        (
            "token-classification",
            "Ann met Bo",
            [{"entity_group": "PER", "score": 0.9, "word": "ann", "start": 0, "end": 3}],
            {"text": "Ann met Bo", "entities": [{"entity": "PER", "start": 0, "end": 3}]},
        ),
        ("feature-extraction", "t", [0.1, 0.2], [0.1, 0.2]),
        (
            "image-text-to-text",
            "a.png",
            [{"input_text": "<image> hi", "generated_text": "<image> hi there"}],
            "<image> hi there",
        ),
        ("zero-shot-image-classification", "a.png", [{"label": "a cat", "score": 0.8}], {"a cat": 0.8}),
        ("visual-question-answering", "a.png", [{"score": 0.7, "answer": "red"}], {"red": 0.7}),
        ("visual-question-answering", "a.png", [{"answer": "a red square"}], {"a red square": 1.0}),
        (
            "question-answering",
            "Where?",
            [
                {"score": 0.5, "start": 3, "end": 9, "answer": "Berlin"},
                {"score": 0.25, "start": 0, "end": 2, "answer": "In"},
            ],
            "'Berlin' (score 0.500, characters 3-9)\n'In' (score 0.250, characters 0-2)",
        ),
        ("summarization", "a long text", [{"summary_text": "short"}], "short"),
        ("translation", "hello", [{"translation_text": "salut"}, {"translation_text": "bonjour"}], "salut\n\nbonjour"),
        (
            "automatic-speech-recognition",
            "a.wav",
            {
                "text": "hi there",
                "chunks": [{"text": "hi", "timestamp": [0.0, 0.4]}, {"text": "there", "timestamp": [0.5, None]}],
            },
            "hi there\n\n[0.00 - 0.40] hi\n[0.50 - ?] there",
        ),
        (
            "object-detection",
            "a.png",
            [{"score": 0.9, "label": "cat", "box": {"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}}],
            ("a.png", [((1, 2, 30, 40), "cat")]),
        ),
    ],
)
def test_outputs_are_drawn_in_their_widgets_form(task, raw, output, shown):
    assert present(task, raw, output) == shown
