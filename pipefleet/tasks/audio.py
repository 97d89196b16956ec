"""Audio tasks. Inputs are audio file bytes, decoded arrays, ``{array, sampling_rate}`` mappings or paths,
decoded and resampled to the model's rate by :func:`pipefleet.media.to_audio`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipefleet import hf_stages
from pipefleet import params as P
from pipefleet.handler import Capabilities, Input, Params
from pipefleet.media import to_audio, wav_bytes
from pipefleet.pipeline_handler import PipelineHandler
from pipefleet.registry import register
from pipefleet.tasks.common import LABEL_SCORE, require_text, row_labels


class AudioHandler(PipelineHandler):
    """Shared by the audio tasks: decode and resample each input to the model's rate."""

    inputs = (Input("audio", "audio"),)

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(self.audio(value), params)

    def audio(self, value: Any) -> Any:
        return to_audio(value, self.task, self.pipe.feature_extractor.sampling_rate)


@register
class AudioClassificationHandler(AudioHandler):
    """Labels with scores for a recording."""

    task = "audio-classification"
    parameters = {"top_k": P.integer(1), "function_to_apply": P.choice("sigmoid", "softmax", "none")}
    output_column = "classification"
    capabilities = Capabilities(display="labels")

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
    capabilities = Capabilities(display="text", chunked=True)

    def forward(self, batch: list[Any], params: Params) -> list[Any]:
        """CTC models give a token per audio frame, padding's frames too: keep the frames of each row's own audio."""
        if self.pipe.type not in ("ctc", "ctc_with_lm") or len(batch) == 1:
            return super().forward(batch, params)
        samples = [hf_stages.feature_length(feature) for feature in batch]  # before forward pops the inputs
        frames_of = hf_stages.frames_of_samples(self.pipe.model)
        key = "logits" if self.pipe.type == "ctc_with_lm" else "tokens"
        outputs = super().forward(batch, params)
        return [{**out, key: out[key][:, : int(frames_of(n))]} for out, n in zip(outputs, samples)]

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
    inputs = (Input("audio", "audio"), Input("candidate_labels", "labels", required=False))
    parameters = {"candidate_labels": P.texts(), "hypothesis_template": P.text()}
    output_column = "zero_shot"
    capabilities = Capabilities(display="labels")

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        audio, labels = row_labels(value, params, "audio", self.task)
        return PipelineHandler.preprocess(self, self.audio(audio), {**params, "candidate_labels": labels})

    def batch_key(self, feature: Any) -> Any:
        # A model input holds every label of its row: rows with other labels cannot share its pass.
        return tuple(feature["candidate_labels"])

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.list_(LABEL_SCORE)


@register
class TextToAudioHandler(PipelineHandler):
    """Speech or music for a text: a WAV file (32-bit float, the model's samples exactly) and its rate."""

    task = "text-to-audio"
    aliases = ("text-to-speech",)
    parameters = {"forward_params": P.mapping(), "generate_kwargs": P.mapping(), "preprocess_params": P.mapping()}
    output_column = "speech"
    capabilities = Capabilities(display="audio")

    def setup(self) -> None:
        super().setup()
        # VITS-style models return one padded waveform per batch and no lengths to cut it by,
        # so each text runs alone; models that generate (MusicGen, Bark) batch as usual.
        if getattr(self.pipe.model.config, "model_type", "") == "vits":
            self.batch_rows = 1

    def preprocess(self, value: Any, params: Params) -> list[Any]:
        return super().preprocess(require_text(value, self.task, max_chars=self.spec.max_input_chars), params)

    @classmethod
    def task_spec_answer(cls, outputs: list[Any], inputs: list[Any], single: bool, call_params: Params) -> Any:
        # The specification answers one text with the audio file itself (WAV); a list, as pipeline() does.
        return outputs[0]["audio"] if single else outputs

    def postprocess(self, outputs: list[Any], value: Any, params: Params) -> Any:
        output = super().postprocess(outputs, value, params)
        return {"audio": wav_bytes(output["audio"], output["sampling_rate"]), "sampling_rate": output["sampling_rate"]}

    def arrow_type(self, params: Params, inputs: Sequence[str] = ()) -> pa.DataType:
        return pa.struct([("audio", pa.binary()), ("sampling_rate", pa.int64())])
