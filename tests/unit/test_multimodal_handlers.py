"""Document QA (with Tesseract OCR), table QA, video classification, zero-shot audio and text-to-audio
equal transformers.pipeline; malformed inputs are row errors naming the problem."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from transformers import pipeline

from pipefleet.errors import RowError
from pipefleet.tasks.multimodal import use_pyav
from tests.audio_samples import recordings
from tests.oracle import assert_matches
from tests.unit.test_vision_handlers import png_bytes

DQA = "document-question-answering"
TABLE = {
    "city": ["Paris", "Berlin", "Rome"],
    "people (millions)": ["2.1", "3.6", "2.8"],
    "river": ["Seine", "Spree", "Tiber"],
}


def invoice() -> Image.Image:
    """An invoice drawn with Pillow's built-in font, for Tesseract to read."""
    image = Image.new("RGB", (640, 320), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    for row, line in enumerate(["INVOICE 2041", "Date: 12 March 2026", "Customer: Ada Lovelace", "Total due: 480 EUR"]):
        draw.text((30, 30 + 65 * row), line, fill="black", font=font)
    return image


def video_bytes(frames: int = 24, seed: int = 0) -> bytes:
    """An MPEG-4 clip of a bar sweeping across the frame, encoded with PyAV."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, (index * 3 + seed) % 56 : (index * 3 + seed) % 56 + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def test_document_question_answering_with_ocr_equals_pipeline(tiny_model, make_handler):
    from transformers.pipelines.document_question_answering import apply_tesseract

    model = tiny_model(DQA)
    document = invoice()
    words, _ = apply_tesseract(document, lang=None, tesseract_config="")
    assert {"INVOICE", "Total", "480"} <= set(words), words  # Tesseract read the rendered invoice
    # Questions of different lengths: their features share a padded batch.
    questions = ["What is the total?", "Who?", "When was this invoice issued, and by whom?"]
    handler = make_handler(DQA, model, batch_size=2, params={"top_k": 2})
    got = handler.predict([{"image": png_bytes(document), "question": q} for q in questions])
    oracle = pipeline(DQA, model=model)
    assert_matches(got, [oracle(document, q, top_k=2) for q in questions])
    assert all(answer["answer"] in " ".join(words) for row in got for answer in row)


def test_document_question_answering_with_given_words_needs_no_image(tiny_model, make_handler):
    model = tiny_model(DQA)
    boxes = [["Total", [100, 700, 200, 750]], ["due:", [210, 700, 300, 750]], ["480", [320, 700, 400, 750]]]
    handler = make_handler(DQA, model)
    got = handler.predict([{"question": "What is the total?", "word_boxes": boxes}])
    want = pipeline(DQA, model=model)(image=None, question="What is the total?", word_boxes=[tuple(b) for b in boxes])
    assert_matches(got, [want])


def test_bad_document_inputs_are_row_errors(tiny_model, make_handler):
    handler = make_handler(DQA, tiny_model(DQA))
    page = png_bytes(invoice())
    outcomes = handler.predict(
        [
            {"image": page},
            {"question": "what?"},
            {"image": page, "question": "   "},
            {"image": page, "question": "q", "word_boxes": [["w", [0, 0, 2000, 5]]]},
            {"image": page, "question": "q", "page": 2},
            "just a string",
        ]
    )
    messages = [o.message for o in outcomes]
    assert all(isinstance(o, RowError) for o in outcomes)
    assert "question is missing" in messages[0] and "image is missing" in messages[1]
    assert "question is empty" in messages[2] and "outside 0-1000" in messages[3]
    assert "unknown input key(s) ['page']" in messages[4] and "is an object" in messages[5]


def test_a_page_this_server_cannot_read_is_the_servers_fault_naming_the_fix(tiny_model, make_handler, monkeypatch):
    from pipefleet.tasks.multimodal import DocumentQuestionAnsweringHandler

    handler = make_handler(DQA, tiny_model(DQA))
    # As on a server without Tesseract: the program the handler would run is not on the PATH.
    monkeypatch.setattr(DocumentQuestionAnsweringHandler, "programs", {"no-such-ocr-program": "apt-get install it"})
    boxes = [["Total", [100, 700, 200, 750]]]
    ocr, given = handler.predict(
        [{"image": png_bytes(invoice()), "question": "total?"}, {"question": "total?", "word_boxes": boxes}]
    )
    assert isinstance(ocr, RowError) and ocr.kind == "server_error"
    assert "no-such-ocr-program" in ocr.message and "apt-get install it" in ocr.message
    assert not isinstance(given, RowError)  # words given by the caller need no OCR


def test_table_question_answering_equals_pipeline(tiny_model, make_handler):
    model = tiny_model("table-question-answering")
    rows = [dict(zip(TABLE, cells)) for cells in zip(*TABLE.values())]
    queries = ["Which city has the most people?", "What river runs through Rome?"]
    handler = make_handler("table-question-answering", model, batch_size=2)
    got = handler.predict([{"table": TABLE, "query": queries[0]}, {"table": rows, "query": queries[1]}])
    oracle = pipeline("table-question-answering", model=model)
    assert_matches(got, [oracle(table=TABLE, query=q) for q in queries])
    bad = handler.predict([{"table": {"a": ["1", "2"], "b": ["3"]}, "query": "q"}, {"table": "a,b", "query": "q"}])
    assert "different lengths" in bad[0].message and "table must be columns" in bad[1].message


def test_video_classification_equals_pipeline(tiny_model, make_handler, tmp_path):
    model = tiny_model("video-classification")
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for seed, clip in enumerate(clips):
        clip.write_bytes(video_bytes(seed=seed * 7))
    handler = make_handler("video-classification", model, batch_size=2, params={"num_frames": 4, "top_k": 2})
    oracle = pipeline("video-classification", model=model)
    use_pyav(oracle)  # as the handler does when torchcodec is not installed
    expected = [oracle(str(clip), num_frames=4, top_k=2) for clip in clips]
    assert_matches(handler.predict([clip.read_bytes() for clip in clips]), expected)
    assert_matches(handler.predict([str(clips[0])]), expected[:1])
    outcomes = handler.predict([video_bytes()[:300], b"not a video", b"", None])
    assert "not a decodable video" in outcomes[0].message and "not a decodable video" in outcomes[1].message
    assert "zero bytes" in outcomes[2].message and "missing" in outcomes[3].message


def test_zero_shot_audio_classification_equals_pipeline(tiny_model, make_handler):
    task = "zero-shot-audio-classification"
    model = tiny_model(task)
    audio = recordings()[:3]
    labels = ["a dog barking", "a siren", "a violin"]
    handler = make_handler(task, model, batch_size=2, params={"candidate_labels": labels})
    oracle = pipeline(task, model=model)
    assert_matches(handler.predict(audio), [oracle(a.copy(), candidate_labels=labels) for a in audio])
    per_row = handler.predict([{"audio": audio[0], "candidate_labels": "rain, thunder"}])
    assert_matches(per_row, [oracle(audio[0].copy(), candidate_labels=["rain", "thunder"])])


def test_text_to_audio_gives_the_pipelines_samples_as_wav(tiny_model, make_handler):
    import soundfile

    model = tiny_model("text-to-audio")
    texts = ["hello world", "a longer sentence to say out loud", "yes"]
    handler = make_handler("text-to-audio", model, batch_size=8)
    oracle = pipeline("text-to-audio", model=model)
    for got, text in zip(handler.predict(texts), texts):
        want = oracle(text)
        samples, rate = soundfile.read(io.BytesIO(got["audio"]), dtype="float32")
        assert rate == got["sampling_rate"] == want["sampling_rate"]
        np.testing.assert_allclose(samples, np.asarray(want["audio"]).squeeze(), atol=1e-5)
