"""Rows of every image, audio and multimodal task, and the handler's outputs for them: what the job and
the endpoint must carry (tests/jobs/test_every_task_job.py, tests/serve/test_every_task_http.py).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from pipefleet.outputs import to_jsonable
from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec
from tests.audio_samples import recordings, wav_bytes
from tests.unit.test_multimodal_handlers import TABLE, invoice, video_bytes
from tests.unit.test_vision_handlers import drawn_images, png_bytes


@dataclass(frozen=True)
class Case:
    """A task with its parameters and a few rows: input name -> values (bytes where a file goes)."""

    task: str
    rows: dict[str, list[Any]]
    params: dict[str, Any] = field(default_factory=dict)


def _images() -> list[bytes]:
    return [png_bytes(image) for image in drawn_images()]


def _sounds() -> list[bytes]:
    return [wav_bytes(wave, subtype="FLOAT") for wave in recordings()[:3]]


CASES = [
    Case("image-classification", {"image": _images()}, {"top_k": 2}),
    Case("image-feature-extraction", {"image": _images()}, {"pool": True}),
    Case("object-detection", {"image": _images()}, {"threshold": 0.0}),
    Case("zero-shot-image-classification", {"image": _images(), "candidate_labels": [["a cat", "a dog"]] * 3}),
    Case(
        "zero-shot-object-detection",
        {"image": _images(), "candidate_labels": [["cat", "ball"]] * 3},
        {"threshold": 0.0},
    ),
    Case("image-segmentation", {"image": _images()}),
    Case("depth-estimation", {"image": _images()}),
    Case("mask-generation", {"image": _images()[:2]}, {"points_per_batch": 16, "pred_iou_thresh": 0.0}),
    Case("image-text-to-text", {"image": _images(), "text": ["<image> describe"] * 3}, {"max_new_tokens": 4}),
    Case("automatic-speech-recognition", {"audio": _sounds()}, {"return_timestamps": "char"}),
    Case("audio-classification", {"audio": _sounds()}, {"top_k": 2}),
    Case("zero-shot-audio-classification", {"audio": _sounds(), "candidate_labels": [["a dog", "a siren"]] * 3}),
    Case("text-to-audio", {"text": ["hello there", "a longer sentence to say"]}),
    Case(
        "document-question-answering", {"image": [png_bytes(invoice())] * 2, "question": ["What is the total?", "Who?"]}
    ),
    Case("table-question-answering", {"table": [TABLE, TABLE], "query": ["Which city is largest?", "Rome's river?"]}),
    Case("video-classification", {"video": [video_bytes(seed=0), video_bytes(seed=9)]}, {"num_frames": 4}),
]


IDS = [case.task for case in CASES]


def _inputs(case: Case) -> list[Any]:
    """The handler's raw inputs: one value per row, or an object when a task takes several."""
    names = list(case.rows)
    count = len(case.rows[names[0]])
    if len(names) == 1:
        return list(case.rows[names[0]])
    return [{name: case.rows[name][index] for name in names} for index in range(count)]


def _expected(case: Case, model: str, **spec_fields: Any) -> list[Any]:
    """The handler's outputs, computed with one torch thread as in the job's actors and the replicas:
    other thread counts sum floats in another order, which can flip a pixel of a PNG or a WAV byte."""
    import torch

    spec = parse_spec({"task": case.task, "model": model, "device": "cpu", "params": case.params, **spec_fields})
    handler = handler_class(case.task)(spec)
    handler.setup()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [_comparable(output) for output in handler.predict(_inputs(case))]
    finally:
        torch.set_num_threads(threads)


def _comparable(value: Any) -> Any:
    """JSON form without null fields (a typed column holds every field; a pipeline leaves some out).

    WAV files are compared by their samples: libsndfile stamps the time into a float WAV's header.
    """
    if isinstance(value, bytes) and value[:4] == b"RIFF":
        import io

        import soundfile

        return soundfile.read(io.BytesIO(value), dtype="float32")[0].tolist()
    if isinstance(value, str) and value.startswith("UklGR"):  # base64 of "RIFF", as the endpoint sends it
        return _comparable(base64.b64decode(value))
    value = to_jsonable(value)
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value
