"""Audio and image tasks over HTTP: base64 and multipart inputs, labels beside an image, masks, bad media."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

from tests.audio_samples import recordings, wav_bytes
from tests.oracle import assert_matches
from tests.support import running_endpoint
from tests.unit.test_vision_handlers import drawn_images, png_bytes, png_claiming

ASR = "automatic-speech-recognition"
LABELS = ["a cat", "a dog", "a red ball"]


def _route(task: str, model: str, route: str, params: dict | None = None) -> dict:
    return {
        "task": task,
        "model": model,
        "device": "cpu",
        "params": params or {},
        "serve": {"route": route, "num_cpus": 0.1, "max_batch_size": 8, "batch_wait_timeout_s": 0.01},
    }


@pytest.fixture(scope="module")
def media_endpoint(local_ray, tiny_model):

    specs = [
        _route(ASR, tiny_model(ASR), "/asr", {"return_timestamps": "word"}),
        _route("audio-classification", tiny_model("audio-classification"), "/sounds", {"top_k": 2}),
        _route("zero-shot-image-classification", tiny_model("zero-shot-image-classification"), "/zero-shot-image"),
        _route("image-segmentation", tiny_model("image-segmentation"), "/segment"),
    ]
    with running_endpoint(specs, "pipefleet-media-test") as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_speech_as_base64_and_multipart_equals_pipeline(media_endpoint, tiny_model):
    waves = recordings()[:3]
    files = [wav_bytes(wave, subtype="FLOAT") for wave in waves]  # float WAV: exactly these samples
    expected = [pipeline(ASR, model=tiny_model(ASR))(w.copy(), return_timestamps="word") for w in waves]
    assert_matches(media_endpoint.post("/asr", json={"inputs": [b64(f) for f in files]}).json(), expected)
    assert_matches(
        media_endpoint.post("/asr", json={"inputs": f"data:audio/wav;base64,{b64(files[0])}"}).json(), expected[0]
    )
    reply = media_endpoint.post("/asr", files=[("inputs", ("a.wav", files[1], "audio/wav"))])
    assert reply.status_code == 200, reply.text
    assert_matches(reply.json(), expected[1])


def test_audio_classification_multipart_with_parameters(media_endpoint, tiny_model):
    wave = recordings()[2]
    reply = media_endpoint.post(
        "/sounds",
        files=[("inputs", ("s.wav", wav_bytes(wave, subtype="FLOAT"), "audio/wav"))],
        data={"parameters": '{"top_k": 3}'},
    )
    assert reply.status_code == 200, reply.text
    assert_matches(
        reply.json(), pipeline("audio-classification", model=tiny_model("audio-classification"))(wave.copy(), top_k=3)
    )


def test_labels_beside_a_base64_image(media_endpoint, tiny_model):
    images = drawn_images()
    oracle = pipeline("zero-shot-image-classification", model=tiny_model("zero-shot-image-classification"))
    one = {"image": b64(png_bytes(images[0])), "candidate_labels": LABELS}
    assert_matches(
        media_endpoint.post("/zero-shot-image", json={"inputs": one}).json(), oracle(images[0], candidate_labels=LABELS)
    )
    many = [{"image": b64(png_bytes(image)), "candidate_labels": LABELS[:2]} for image in images]
    assert_matches(
        media_endpoint.post("/zero-shot-image", json={"inputs": many}).json(),
        [oracle(image, candidate_labels=LABELS[:2]) for image in images],
    )
    same_for_all = media_endpoint.post(
        "/zero-shot-image", json={"inputs": b64(png_bytes(images[1])), "parameters": {"candidate_labels": LABELS}}
    )
    assert_matches(same_for_all.json(), oracle(images[1], candidate_labels=LABELS))


def test_segmentation_masks_arrive_as_base64_png(media_endpoint, tiny_model):
    image = drawn_images()[2]
    expected = pipeline("image-segmentation", model=tiny_model("image-segmentation"))(image)
    segments = media_endpoint.post("/segment", json={"inputs": b64(png_bytes(image))}).json()
    assert [s["label"] for s in segments] == [s["label"] for s in expected]
    for segment, reference in zip(segments, expected):
        mask = np.array(Image.open(io.BytesIO(base64.b64decode(segment["mask"]))))
        np.testing.assert_array_equal(mask, np.array(reference["mask"]))


@pytest.mark.parametrize(
    ("route", "inputs", "message"),
    [
        ("/asr", b64(b"these bytes are not audio"), "not decodable audio"),
        ("/asr", b64(wav_bytes(np.zeros(0, np.float32))), "0 samples"),
        ("/sounds", b64(wav_bytes(recordings()[0])[:30]), "not decodable audio"),
        ("/asr", "/etc/passwd", "server paths are refused"),
        ("/zero-shot-image", b64(png_bytes(drawn_images()[0])), "candidate_labels"),
        (
            "/zero-shot-image",
            {"image": b64(png_claiming(20_000, 20_000)), "candidate_labels": LABELS},
            "decompression bomb",
        ),
        ("/segment", b64(png_bytes(Image.new("RGB", (1, 1)))), "too small"),
        ("/segment", b64(png_bytes(drawn_images()[0])[:50]), "not a decodable image"),
    ],
)
def test_bad_media_gets_a_4xx_naming_the_problem(media_endpoint, route, inputs, message):
    reply = media_endpoint.post(route, json={"inputs": inputs})
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["error"]


def test_one_bad_recording_in_a_list_names_its_index(media_endpoint):
    good = b64(wav_bytes(recordings()[0]))
    reply = media_endpoint.post("/sounds", json={"inputs": [good, b64(b"junk"), good]})
    assert reply.status_code == 422
    assert [e["index"] for e in reply.json()["errors"]] == [1]
