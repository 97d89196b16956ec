"""The job over image and audio corpora: folders of files, Parquet bytes, saved Hugging Face datasets.

Corrupt files are that row's error; every other row equals the handler's output for the same input.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from jobs.annotate import annotate
from pipefleet.registry import handler_class
from pipefleet.spec import parse_spec
from tests.audio_samples import recordings, tone, wav_bytes
from tests.oracle import assert_matches
from tests.unit.test_vision_handlers import drawn_images, png_bytes

ASR = "automatic-speech-recognition"


def _spec(task: str, model: str, input_section: dict, output, **extra) -> object:
    return parse_spec(
        {
            "task": task,
            "model": model,
            "device": "cpu",
            "batch_size": 8,
            "input": input_section,
            "output": {"path": str(output)},
            "compute": {"num_cpus": 1, "concurrency": 1, "rows_per_call": 128},
            **extra,
        }
    )


def _handler_outputs(spec, inputs: list) -> list:
    handler = handler_class(spec.task)(spec)
    handler.setup()
    return handler.predict(inputs)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_a_folder_of_images_with_corrupt_files(local_ray, tiny_model, tmp_path):
    """1,000 image files, 1% of them corrupt: every file is a row, the corrupt ones with their error."""
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    shapes = [png_bytes(image) for image in drawn_images()] + [_jpeg(image) for image in drawn_images()]
    corrupt = {
        "truncated.jpg": _jpeg(drawn_images()[2])[:200],
        "text.png": b"not an image, just text with a .png name",
        "empty.jpg": b"",
        "huge.png": png_bytes(Image.new("L", (8000, 7000))),  # 56 million pixels, over the limit
        "html.gif": b"<html>a gif that is not</html>",
    }
    files = {f"img{i:04}.{'png' if i % 6 < 3 else 'jpg'}": shapes[i % 6] for i in range(995)} | corrupt
    for index, (name, data) in enumerate(files.items()):
        (folder / ("nested" if index % 2 else "") / name).write_bytes(data)
    (folder / "README.txt").write_text("not an image suffix: not read")

    spec = _spec(
        "image-classification",
        tiny_model("image-classification"),
        {"path": str(folder), "format": "images"},
        tmp_path / "out",
        params={"top_k": 2},
    )
    manifest = annotate(spec)
    out = pq.read_table(tmp_path / "out").to_pandas()
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rows_errored"]) == (1000, 1000, 5)
    assert "bytes" not in out.columns  # the files stay where they are; the path names them
    by_name = {path.rsplit("/", 1)[-1]: row for path, row in zip(out["path"], out.to_dict("records"))}
    assert sorted(by_name) == sorted(files)
    assert "not a decodable image" in by_name["truncated.jpg"]["error"]
    assert "not a decodable image" in by_name["text.png"]["error"]
    assert "zero bytes" in by_name["empty.jpg"]["error"]
    assert "over the limit" in by_name["huge.png"]["error"]
    assert "not a decodable image" in by_name["html.gif"]["error"]
    expected = _handler_outputs(spec, shapes)
    for index in range(12):
        row = by_name[f"img{index:04}.{'png' if index % 6 < 3 else 'jpg'}"]
        assert pd.isna(row["error"])
        assert_matches(list(row["classification"]), expected[index % 6])
    rerun = annotate(spec)  # resumes on the file paths: nothing left
    assert rerun["this_run"]["rows"] == 0 and rerun["rows_out"] == 1000


def test_a_folder_of_audio_with_corrupt_files(local_ray, tiny_model, tmp_path):
    """200 recordings (WAV and FLAC, 8 to 44.1 kHz, mono and stereo), 4 of them corrupt."""
    import soundfile

    folder = tmp_path / "audio"
    folder.mkdir()
    sounds = recordings()
    good = {}
    for index in range(196):
        rate = [16_000, 8_000, 44_100, 22_050][index % 4]
        wave = tone(200 + index, 0.5, rate=rate)
        if index % 5 == 0:
            wave = np.stack([wave, wave * 0.5], axis=1)
        name = f"rec{index:03}.{'flac' if index % 3 == 0 else 'wav'}"
        soundfile.write(folder / name, wave, rate)
        good[name] = folder / name
    corrupt = {
        "cut.wav": wav_bytes(sounds[1])[:30],  # cut inside the header (cut after it, the samples present are read)
        "noise.mp3": b"ID3 but nothing that decodes",
        "empty.flac": b"",
        "silent.wav": wav_bytes(np.zeros(0, np.float32)),
    }
    for name, data in corrupt.items():
        (folder / name).write_bytes(data)

    spec = _spec(ASR, tiny_model(ASR), {"path": str(folder), "format": "audio"}, tmp_path / "out")
    manifest = annotate(spec)
    out = pq.read_table(tmp_path / "out").to_pandas()
    assert (manifest["rows_out"], manifest["rows_errored"]) == (200, 4)
    by_name = {path.rsplit("/", 1)[-1]: row for path, row in zip(out["path"], out.to_dict("records"))}
    assert "not decodable audio" in by_name["cut.wav"]["error"]
    assert "not decodable audio" in by_name["noise.mp3"]["error"]
    assert "zero bytes" in by_name["empty.flac"]["error"]
    assert "0 samples" in by_name["silent.wav"]["error"]
    names = sorted(good)[:8]
    expected = _handler_outputs(spec, [good[name].read_bytes() for name in names])
    for name, want in zip(names, expected):
        assert pd.isna(by_name[name]["error"])
        assert_matches(by_name[name]["transcription"], want)


def test_saved_hugging_face_datasets_with_image_and_audio_columns(local_ray, tiny_model, tmp_path):
    import datasets

    images = [png_bytes(image) for image in drawn_images()]
    pictures = [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)] + [
        {"bytes": b"broken", "path": "x.png"}
    ]
    image_rows = {"id": list(range(len(pictures))), "picture": pictures}
    pictures = datasets.Dataset.from_dict(image_rows).cast_column("picture", datasets.Image())
    pictures.save_to_disk(tmp_path / "pictures")

    sounds = [wav_bytes(wave) for wave in recordings()]
    sound_rows = {
        "id": list(range(len(sounds))),
        "clip": [{"bytes": b, "path": f"{i}.wav"} for i, b in enumerate(sounds)],
    }
    # datasets encodes new Audio values with torchcodec; casting a {bytes, path} column stores them as they are.
    clips = datasets.Dataset.from_dict(sound_rows).cast_column("clip", datasets.Audio(decode=False))
    clips.save_to_disk(tmp_path / "clips")

    image_spec = _spec(
        "image-classification",
        tiny_model("image-classification"),
        {"path": str(tmp_path / "pictures"), "format": "hf", "columns": {"image": "picture"}, "id_column": "id"},
        tmp_path / "out-images",
    )
    annotate(image_spec)
    out = pq.read_table(tmp_path / "out-images").to_pandas().set_index("id").sort_index()
    expected = _handler_outputs(image_spec, images)
    for index in range(3):
        assert_matches([dict(x) for x in out["classification"][index]], expected[index])
    assert "not a decodable image" in out["error"][len(images)]

    audio_spec = _spec(
        "audio-classification",
        tiny_model("audio-classification"),
        {"path": str(tmp_path / "clips"), "format": "hf", "columns": {"audio": "clip"}, "id_column": "id"},
        tmp_path / "out-audio",
    )
    annotate(audio_spec)
    out = pq.read_table(tmp_path / "out-audio").to_pandas().set_index("id").sort_index()
    assert out["error"].isna().all()
    for index, want in enumerate(_handler_outputs(audio_spec, sounds)):
        assert_matches([dict(x) for x in out["classification"][index]], want)


def test_parquet_of_audio_bytes_keeps_its_columns(local_ray, tiny_model, tmp_path):
    sounds = [wav_bytes(wave) for wave in recordings()]
    table = pa.table({"clip_id": list(range(4)), "speaker": ["a", "b", "c", "d"], "wav": pa.array(sounds, pa.binary())})
    pq.write_table(table, tmp_path / "clips.parquet")
    spec = _spec(
        ASR,
        tiny_model(ASR),
        {"path": str(tmp_path / "clips.parquet"), "columns": {"audio": "wav"}, "id_column": "clip_id"},
        tmp_path / "out",
        params={"return_timestamps": "char"},
    )
    annotate(spec)
    out = pq.read_table(tmp_path / "out").to_pandas().set_index("clip_id").sort_index()
    assert list(out["speaker"]) == ["a", "b", "c", "d"] and list(out["wav"]) == sounds  # input columns kept
    for index, want in enumerate(_handler_outputs(spec, sounds)):
        assert_matches(out["transcription"][index], want)
