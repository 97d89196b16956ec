"""Synthetic audio for the tests: tones, noise and silence made with numpy, saved as WAV bytes."""

from __future__ import annotations

import io

import numpy as np

from tests.tiny_models import SAMPLING_RATE


def tone(hertz: float, seconds: float, rate: int = SAMPLING_RATE, volume: float = 0.3) -> np.ndarray:
    times = np.arange(int(seconds * rate)) / rate
    return (volume * np.sin(2 * np.pi * hertz * times)).astype(np.float32)


def noise(seconds: float, rate: int = SAMPLING_RATE, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def recordings() -> list[np.ndarray]:
    """A few mono recordings at the tiny models' rate, of different lengths and kinds."""
    return [
        tone(440, 0.8),
        noise(2.1, seed=1),
        np.concatenate([tone(220, 0.6), np.zeros(8000, np.float32), noise(0.7, seed=2)]),
        tone(880, 1.3) + noise(1.3, seed=3),
    ]


def long_recording(seconds: float = 120) -> np.ndarray:
    """Minutes of alternating tones, noise and silence, for chunked transcription."""
    parts, second = [], 0
    while second < seconds:
        kind = second % 3
        part = tone(200 + 40 * (second % 7), 1) if kind == 0 else noise(1, seed=second) if kind == 1 else None
        parts.append(part if part is not None else np.zeros(SAMPLING_RATE, np.float32))
        second += 1
    return np.concatenate(parts)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLING_RATE, subtype: str = "PCM_16") -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()
