"""Audio tasks. Inputs are audio file bytes, decoded arrays, ``{array, sampling_rate}`` mappings or paths.

Every input is decoded (soundfile) and resampled to the model's rate (scipy) here, before the
pipeline sees it: the pipelines themselves would need the ffmpeg program for bytes and
torchaudio for resampling, and would fail a whole call on one bad file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from math import gcd
from typing import Any

import numpy as np
import pyarrow as pa

from pipefleet import params as P
from pipefleet.errors import BadInput
from pipefleet.handler import Params, TaskHandler
from pipefleet.registry import register
from pipefleet.runner import Unpad

MAX_AUDIO_S = 4 * 3600  # longer recordings are refused, not decoded into memory
_LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float64())])


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


class AudioHandler(TaskHandler):
    """Shared by the audio tasks: decode and resample each input to the model's rate."""

    input_names = ("audio",)
    media = "audio"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return to_audio(raw, self.task, self.pipe.feature_extractor.sampling_rate), params


@register
class AudioClassificationHandler(AudioHandler):
    """Labels with scores for a recording."""

    task = "audio-classification"
    parameters = {"top_k": P.integer(1), "function_to_apply": P.choice("sigmoid", "softmax", "none")}
    output_column = "classification"

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(_LABEL_SCORE)


@register
class SpeechRecognitionHandler(AudioHandler):
    """Transcripts, with char or word timestamps (CTC) or segment timestamps (Whisper).

    With ``chunk_length_s``, a long recording is cut into overlapping chunks, and the chunks
    of every row in a call are batched together.
    """

    task = "automatic-speech-recognition"
    parameters = {
        "return_timestamps": P.flag_or_choice("char", "word"),
        "chunk_length_s": P.number(0),
        "stride_length_s": P.number_or_pair(0),
        "return_language": P.boolean(),
        "generate_kwargs": P.mapping(),
        "max_new_tokens": P.integer(1),
        "num_beams": P.integer(1),
    }
    output_column = "transcription"

    def unpad(self) -> Unpad | None:
        """CTC models give a token per audio frame, padding's frames too; keep the frames of the row's own audio."""
        if self.pipe.type not in ("ctc", "ctc_with_lm"):
            return None
        frames_of = self.pipe.model._get_feat_extract_output_lengths
        key = "logits" if self.pipe.type == "ctc_with_lm" else "tokens"

        def cut(samples: int, output: dict[str, Any]) -> dict[str, Any]:
            return {**output, key: output[key][:, : int(frames_of(samples))]}

        return cut

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        fields = [("text", pa.string())]
        if params.get("return_timestamps"):
            chunk = pa.struct([("text", pa.string()), ("timestamp", pa.list_(pa.float64()))])
            fields.append(("chunks", pa.list_(chunk)))
        if params.get("return_language"):
            fields.append(("language", pa.string()))
        return pa.struct(fields)
