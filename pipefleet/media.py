"""Decoding images and audio, for the handlers and for the job's decode stage.

Every image or recording is decoded here, one row at a time, so that a bad one is that
row's error. Audio is decoded with soundfile and resampled to the model's rate with scipy
here, before the pipeline sees it: the pipelines themselves would need the ffmpeg program
for bytes and torchaudio for resampling, and would fail a whole call on one bad file.
"""

from __future__ import annotations

import io
from math import gcd
from typing import Any

import numpy as np

from pipefleet.errors import BadInput

MAX_PIXELS = 50_000_000  # a decompression bomb guard: larger images are refused, not decoded
# A side of one pixel holds nothing to recognise, and image processors read a (1, 1, 3) array's
# first axis as its channels; such images are refused rather than stretched.
MIN_SIDE = 2
MAX_AUDIO_S = 4 * 3600  # longer recordings are refused, not decoded into memory


def decode_media(media: str, value: Any, task: str, sampling_rate: int | None = None) -> np.ndarray:
    """``value`` decoded to an array: RGB pixels (height x width x 3) for ``"image"``, or mono
    samples at ``sampling_rate`` for ``"audio"``. Raises BadInput naming the problem."""
    if media == "audio":
        if sampling_rate is None:
            raise ValueError("decoding audio needs the model's sampling rate")
        return to_audio(value, task, sampling_rate)
    image = to_image(value, task)
    if isinstance(image, str):  # a path or URL: the job may open it; the endpoint never gets here with one
        from transformers.image_utils import load_image

        try:
            image = load_image(image)
        except Exception as exc:
            raise BadInput(f"{task}: cannot load image {image!r}: {type(exc).__name__}: {exc}") from None
        _check_size(image.size, task)
    return np.asarray(image.convert("RGB"))


def to_image(value: Any, task: str) -> Any:
    """A PIL image from bytes, an array or a PIL image; strings (paths, URLs) pass through to the pipeline."""
    from PIL import Image

    if value is None:
        raise BadInput(f"{task}: image is missing (null)")
    if isinstance(value, dict):  # a Hugging Face datasets Image column: {bytes, path}
        value = value.get("bytes") if value.get("bytes") is not None else value.get("path")
        if value is None:
            raise BadInput(f"{task}: image has neither bytes nor a path")
    if isinstance(value, str):
        if not value.strip():
            raise BadInput(f"{task}: image path is empty")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        if not value:
            raise BadInput(f"{task}: image has zero bytes")
        try:
            with Image.open(io.BytesIO(bytes(value))) as probe:
                _check_size(probe.size, task)
                probe.load()
                return probe.convert("RGB")
        except BadInput:
            raise
        except Exception as exc:  # PIL raises many types for bad data
            raise BadInput(f"{task}: not a decodable image ({type(exc).__name__}: {exc})") from None
    if hasattr(value, "shape"):  # an array, as Ray Data's read_images gives
        try:
            image = Image.fromarray(value)
        except Exception as exc:
            raise BadInput(f"{task}: array of shape {value.shape} is not an image ({exc})") from None
        _check_size(image.size, task)
        return image.convert("RGB")
    if isinstance(value, Image.Image):
        _check_size(value.size, task)
        return value
    raise BadInput(f"{task}: an image must be bytes, an array or a path, got {type(value).__name__}")


def _check_size(size: tuple[int, int], task: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise BadInput(f"{task}: image of {width} x {height} pixels is over the limit of {MAX_PIXELS} pixels")
    if min(width, height) < MIN_SIDE:
        raise BadInput(f"{task}: image of {width} x {height} pixels is too small (at least {MIN_SIDE} a side)")


def png_bytes(image: Any) -> bytes:
    """A PIL image (a mask, a depth map) as PNG bytes: lossless, and a binary column offline, base64 online."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_audio(value: Any, task: str, sampling_rate: int) -> np.ndarray:
    """A mono float32 waveform at ``sampling_rate`` from bytes, a path, an array or ``{array, sampling_rate}``.

    An array without a rate is taken to be at ``sampling_rate`` already, as ``pipeline`` does.
    """
    if value is None:
        raise BadInput(f"{task}: audio is missing (null)")
    rate = sampling_rate
    if isinstance(value, dict):
        value, rate = _from_mapping(value, task, sampling_rate)
    if isinstance(value, str):
        value = _read_path(value, task)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value, rate = _decode(bytes(value), task)
    if isinstance(value, list):
        value = np.asarray(value, dtype=np.float32)
    if not isinstance(value, np.ndarray):
        raise BadInput(f"{task}: audio must be file bytes, an array or a path, got {type(value).__name__}")
    return _resampled(_mono(value, task), rate, sampling_rate, task)


def _from_mapping(value: dict, task: str, sampling_rate: int) -> tuple[Any, int]:
    """``{array|raw, sampling_rate}`` (pipeline, a decoded datasets Audio) or ``{bytes, path}`` (an undecoded one)."""
    if value.get("bytes") is not None:
        return value["bytes"], sampling_rate
    if value.get("path") is not None and value.get("array") is None and value.get("raw") is None:
        return value["path"], sampling_rate
    array = value.get("array", value.get("raw"))
    rate = value.get("sampling_rate")
    if array is None or not isinstance(rate, (int, float)) or rate <= 0:
        raise BadInput(f"{task}: an audio mapping needs 'array' (or 'raw') and a positive 'sampling_rate'")
    return np.asarray(array, dtype=np.float32), int(rate)


def _read_path(path: str, task: str) -> bytes:
    if not path.strip():
        raise BadInput(f"{task}: audio path is empty")
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise BadInput(f"{task}: cannot read audio file {path!r}: {exc.strerror or exc}") from None


def _decode(data: bytes, task: str) -> tuple[np.ndarray, int]:
    import soundfile

    if not data:
        raise BadInput(f"{task}: audio has zero bytes")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            if audio.frames > MAX_AUDIO_S * audio.samplerate:
                raise BadInput(f"{task}: audio of {audio.frames / audio.samplerate:.0f} s is over {MAX_AUDIO_S} s")
            return audio.read(dtype="float32", always_2d=True).T, audio.samplerate
    except BadInput:
        raise
    except Exception as exc:  # soundfile raises several types for data it cannot read
        raise BadInput(f"{task}: not decodable audio ({type(exc).__name__}: {exc})") from None


def _mono(array: np.ndarray, task: str) -> np.ndarray:
    """(samples,) or (channels, samples) -> (samples,) float32; the channels are averaged."""
    if array.size == 0:
        raise BadInput(f"{task}: audio is empty (0 samples)")
    if array.ndim == 2:  # the shorter side is the channels
        array = array.mean(axis=0) if array.shape[0] <= array.shape[1] else array.mean(axis=1)
    if array.ndim != 1:
        raise BadInput(f"{task}: audio array must have 1 or 2 dimensions, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise BadInput(f"{task}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(array, dtype=np.float32)


def _resampled(array: np.ndarray, rate: int, target: int, task: str) -> np.ndarray:
    if rate == target:
        return array
    from scipy.signal import resample_poly

    common = gcd(int(rate), int(target))
    resampled = resample_poly(array, target // common, int(rate) // common).astype(np.float32)
    if resampled.size == 0:
        raise BadInput(f"{task}: audio is too short to resample from {rate} Hz to {target} Hz")
    return resampled


def wav_bytes(samples: Any, sampling_rate: int) -> bytes:
    """Generated audio as a WAV file of 32-bit floats, so no sample changes on the way."""
    import soundfile

    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] < array.shape[1]:  # pipelines give (channels, samples); files want it turned
        array = array.T
    buffer = io.BytesIO()
    soundfile.write(buffer, array, int(sampling_rate), format="WAV", subtype="FLOAT")
    return buffer.getvalue()
