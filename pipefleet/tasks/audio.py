"""Audio tasks. Inputs are audio file bytes, decoded arrays, ``{array, sampling_rate}`` mappings or paths,
decoded and resampled to the model's rate by :func:`pipefleet.media.to_audio`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import params as P
from pipefleet.handler import LABEL_SCORE, Params, TaskHandler, split_row_labels
from pipefleet.media import to_audio, wav_bytes
from pipefleet.registry import register
from pipefleet.runner import Unpad


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
        return pa.list_(LABEL_SCORE)


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


@register
class ZeroShotAudioClassificationHandler(AudioHandler):
    """Scores for caller-given labels (CLAP-style models), from params or per row."""

    task = "zero-shot-audio-classification"
    input_names = ("audio", "candidate_labels")
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text()}
    output_column = "zero_shot"

    def prepare(self, raw: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raw, params = split_row_labels(raw, params, "audio", self.task)
        return super().prepare(raw, params)

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


@register
class TextToAudioHandler(TaskHandler):
    """Speech or music for a text: a WAV file (32-bit float, the model's samples exactly) and its rate."""

    task = "text-to-audio"
    aliases = ("text-to-speech",)
    parameters = {"forward_params": P.mapping(), "generate_kwargs": P.mapping(), "preprocess_params": P.mapping()}
    output_column = "speech"

    def batch_size(self) -> int:
        # VITS-style models return one padded waveform per batch and no lengths to cut it by,
        # so each text runs alone; models that generate (MusicGen, Bark) batch as usual.
        return 1 if getattr(self.pipe.model.config, "model_type", "") == "vits" else self.spec.batch_size

    def finish(self, output: Any) -> Any:
        return {"audio": wav_bytes(output["audio"], output["sampling_rate"]), "sampling_rate": output["sampling_rate"]}

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct([("audio", pa.binary()), ("sampling_rate", pa.int64())])
