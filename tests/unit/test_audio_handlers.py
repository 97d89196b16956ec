"""Audio tasks equal transformers.pipeline; decoding, resampling and bad audio are handled per row."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from pipefleet.errors import BadInput, RowError
from pipefleet.media import to_audio
from tests.audio_samples import long_recording, recordings, tone, wav_bytes
from tests.oracle import assert_matches
from tests.tiny_models import SAMPLING_RATE

ASR = "automatic-speech-recognition"


@pytest.mark.parametrize(
    "params",
    [{}, {"return_timestamps": "char"}, {"return_timestamps": "word"}, {"chunk_length_s": 0.5, "stride_length_s": 0.1}],
)
def test_speech_recognition_equals_pipeline(tiny_model, make_handler, params):
    model = tiny_model(ASR)
    audio = recordings()
    handler = make_handler(ASR, model, batch_size=3)
    oracle = pipeline(ASR, model=model)
    assert_matches(handler.predict(audio, params=params), [oracle(a.copy(), **params) for a in audio])


@pytest.mark.parametrize(
    "params", [{}, {"return_timestamps": True}, {"return_timestamps": True, "generate_kwargs": {"language": "en"}}]
)
def test_whisper_segment_timestamps_equal_pipeline(tiny_model, make_handler, params):
    model = tiny_model("whisper")
    audio = recordings()[:3]
    handler = make_handler(ASR, model, batch_size=3)
    oracle = pipeline(ASR, model=model)
    got = handler.predict(audio, params=params)
    assert_matches(got, [oracle(a.copy(), **params) for a in audio])
    if params:
        assert all(chunk["timestamp"][0] is not None for row in got for chunk in row["chunks"])


def test_long_recording_in_chunks_batched_with_other_rows_equals_pipeline(tiny_model, make_handler):
    """A 2-minute recording cut into 10 s chunks, its chunks batched with another row's."""
    model = tiny_model(ASR)
    audio = [long_recording(120), recordings()[1]]
    params = {"chunk_length_s": 10, "return_timestamps": "word"}
    handler = make_handler(ASR, model, batch_size=8, params=params)
    got = handler.predict(audio)
    assert_matches(got, [pipeline(ASR, model=model)(a.copy(), **params) for a in audio])
    assert got[0]["chunks"][-1]["timestamp"][1] > 100  # the timestamps run to the end of the recording


def test_audio_classification_equals_pipeline(tiny_model, make_handler):
    model = tiny_model("audio-classification")
    audio = recordings()
    handler = make_handler("audio-classification", model, batch_size=2, params={"top_k": 3})
    oracle = pipeline("audio-classification", model=model)
    assert_matches(handler.predict(audio), [oracle(a.copy(), top_k=3) for a in audio])
    assert_matches(handler.predict(audio[:1], params={"top_k": 1}), [oracle(audio[0].copy(), top_k=1)])


def test_file_bytes_and_mappings_give_what_the_array_gives(tiny_model, make_handler):
    handler = make_handler("audio-classification", tiny_model("audio-classification"))
    wave = recordings()[0]
    as_file = wav_bytes(wave, subtype="FLOAT")  # float WAV: the same samples, exactly
    forms = [wave, as_file, {"bytes": as_file, "path": "a.wav"}, {"array": wave, "sampling_rate": SAMPLING_RATE}]
    outcomes = handler.predict(forms)
    for outcome in outcomes[1:]:
        assert_matches(outcome, outcomes[0])


def test_audio_is_resampled_to_the_models_rate():
    wave = to_audio(wav_bytes(tone(440, 2.0, rate=44_100), rate=44_100), "t", SAMPLING_RATE)
    assert len(wave) == 2 * SAMPLING_RATE
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * SAMPLING_RATE / len(wave) - 440) < 1  # still a 440 Hz tone


def test_stereo_is_averaged_to_mono():
    left, right = tone(440, 1.0), tone(660, 1.0)
    both = to_audio(wav_bytes(np.stack([left, right], axis=1), subtype="FLOAT"), "t", SAMPLING_RATE)
    np.testing.assert_allclose(both, (left + right) / 2, atol=1e-6)


def test_bad_audio_is_that_rows_error(tiny_model, make_handler):
    handler = make_handler(ASR, tiny_model(ASR))
    good = wav_bytes(recordings()[0])
    inputs = [
        good,
        good[:30],  # a truncated header
        b"this is not audio at all",
        b"",
        wav_bytes(np.zeros(0, np.float32)),  # a valid file with no samples
        None,
        np.array([0.1, np.nan, 0.2], np.float32),
        {"sampling_rate": 16000},
        good,
    ]
    outcomes = handler.predict(inputs)
    messages = [o.message if isinstance(o, RowError) else None for o in outcomes]
    assert messages[0] is None and messages[-1] is None
    assert outcomes[0] == outcomes[-1]
    assert "not decodable audio" in messages[1] and "not decodable audio" in messages[2]
    assert "zero bytes" in messages[3]
    assert "0 samples" in messages[4]
    assert "missing" in messages[5]
    assert "NaN" in messages[6]
    assert "'array'" in messages[7]


def test_wrong_parameter_values_name_the_parameter(tiny_model, make_handler):
    handler = make_handler(ASR, tiny_model(ASR))
    with pytest.raises(BadInput, match="return_timestamps"):
        handler.predict([recordings()[0]], params={"return_timestamps": "sentence"})
    with pytest.raises(BadInput, match="stride_length_s"):
        handler.predict([recordings()[0]], params={"stride_length_s": [1, 2, 3]})
