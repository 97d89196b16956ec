"""The browser demo: a Gradio page at ``/demo`` with one tab per route that asks for it.

The page is a client of the routes like any other: each tab hands its input to the route
replica's own checks (auth, size, parameters, decoding) and batches, so it meets the same
batching, limits and errors as the API. What this module
adds is only presentation: an input widget that fits the task, and the output drawn the
way a person reads it (label bars, highlighted entities, streamed text).

Gradio is an optional extra (``pip install "pipefleet[demo]"``); nothing imports this
module unless a spec sets ``serve.demo: true``.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipefleet.errors import BadInput, FatalError
from serve.errors import BodyTooLarge, MalformedRequest, error_message, status_of

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serve.index import Route

DEMO_PATH = "/demo"
# Gradio would otherwise report usage to its makers and fetch web fonts for the page.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# (route, input, parameters, bearer token) -> {"output": ...} or {"error": ..., "status": ...}, as the API answers.
Run = Callable[["Route", Any, dict[str, Any], str | None], Awaitable[dict[str, Any]]]
# The same for a generation: {"token": ...} events, or one {"error": ..., "status": ...}.
Stream = Callable[["Route", Any, dict[str, Any], str | None], AsyncIterator[dict[str, Any]]]


def mount_demo(app: "FastAPI", routes: list["Route"], run: Run, stream: Stream) -> None:
    """Mount the demo page on ``app`` at ``/demo``, ahead of the index's catch-all route."""
    try:
        import gradio as gr
    except ImportError:
        raise FatalError('serve.demo needs Gradio: pip install "pipefleet[demo]"') from None

    largest_body = max(_body_limit(route) for route in routes)  # each route checks its own limit again
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title="pipefleet demo") as page:
        gr.Markdown("# pipefleet\nTry each deployed route. The page calls the same endpoint as the API.")
        for route in routes:
            with gr.Tab(route.spec.route.lstrip("/"), id=route.spec.route):
                _tab(gr, route, run, stream)
    gr.mount_gradio_app(app, page, path=DEMO_PATH, theme=theme, ssr_mode=False, max_file_size=largest_body)
    # Starlette matches routes in order; the index's catch-all would otherwise take the page's calls.
    app.router.routes.insert(0, app.router.routes.pop())


def _tab(gr: Any, route: "Route", run: Run, stream: Stream) -> None:
    spec = route.spec
    model = spec.model or "the task's default model"
    gr.Markdown(f"**{spec.task}** with `{model}` at `POST {spec.route}`")
    form = _form(gr, route)
    with gr.Accordion("parameters", open=False):
        parameters = gr.Code(value=json.dumps(spec.params, indent=2), language="json", label="parameters (JSON)")
        token = gr.Textbox(label="bearer token", type="password", visible=route.needs_token)
    button = gr.Button("Run", variant="primary")
    output = _output_widget(gr, spec.task)
    widgets = [parameters, token, *form.widgets]

    if spec.task == "text-generation":

        async def generate(params_json: str, bearer: str, text: str) -> AsyncIterator[str]:
            produced = ""
            async for event in stream(route, text, _parameters(gr, params_json), bearer or None):
                if "error" in event:
                    raise gr.Error(_message(event))
                produced += event["token"]
                yield produced

        button.click(generate, widgets, output, api_name=_api_name(spec.route))
        return

    async def predict(params_json: str, bearer: str, *values: Any) -> Any:
        try:
            raw, extra = form.build(list(values))
        except (BadInput, BodyTooLarge) as exc:
            raise _refusal(gr, exc) from None
        answer = await run(route, raw, {**_parameters(gr, params_json), **extra}, bearer or None)
        if "error" in answer:
            raise gr.Error(_message(answer))
        return present(spec.task, values[0], answer["output"])

    button.click(predict, widgets, output, api_name=_api_name(spec.route))


@dataclass
class Form:
    """A tab's input widgets, and how their values become one API input plus parameters."""

    widgets: list[Any]
    build: Callable[[list[Any]], tuple[Any, dict[str, Any]]]


def _form(gr: Any, route: "Route") -> Form:
    task, media = route.spec.task, route.handler.media
    if task in _IMAGE_AND_TEXT:
        key = _IMAGE_AND_TEXT[task]
        image, text = _media_widget(gr, "image"), gr.Textbox(label=key)
        return Form([image, text], lambda v: ({"image": _read_upload(v[0], route), key: v[1]}, {}))
    if task == "question-answering":
        question, context = gr.Textbox(label="question"), gr.Textbox(label="context", lines=6)
        return Form([question, context], lambda v: ({"question": v[0], "context": v[1]}, {}))
    if task == "table-question-answering":
        table = gr.Dataframe(label="table", value=[["Paris", "2.1"], ["Berlin", "3.6"]], headers=["city", "people"])
        query = gr.Textbox(label="question")
        return Form([table, query], lambda v: ({"table": v[0].astype(str).to_dict("list"), "query": v[1]}, {}))
    value = _media_widget(gr, media) if media else gr.Textbox(label="text", lines=3)
    if "candidate_labels" not in route.handler.input_names:
        return Form([value], lambda v: (_read_upload(v[0], route), {}))
    labels = gr.Textbox(label="candidate labels (comma-separated; empty: the spec's)")

    def with_labels(values: list[Any]) -> tuple[Any, dict[str, Any]]:
        given = [label.strip() for label in values[1].split(",") if label.strip()]
        return _read_upload(values[0], route), ({"candidate_labels": given} if given else {})

    return Form([value, labels], with_labels)


def _media_widget(gr: Any, media: str) -> Any:
    if media == "image":
        return gr.Image(type="filepath", format="png", label="image")  # png: Gradio re-encodes uploads, losslessly
    if media == "audio":
        return gr.Audio(type="filepath", sources=["upload", "microphone"], label="audio")
    return gr.File(type="filepath", label=media)  # a video: sent as it is, with no re-encoding


def _output_widget(gr: Any, task: str) -> Any:
    if task in _LABEL_TASKS:
        return gr.Label(label="result", num_top_classes=10)
    if task == "token-classification":
        return gr.HighlightedText(label="entities")
    if task in ("text-generation", "image-text-to-text", "summarization", "translation"):
        return gr.Textbox(label="generated text", lines=6)
    if task == "question-answering":
        return gr.Textbox(label="answer", lines=3)
    if task == "automatic-speech-recognition":
        return gr.Textbox(label="transcript", lines=6)
    if task in _DRAWN_ON_IMAGE:
        return gr.AnnotatedImage(label="result")
    if task == "depth-estimation":
        return gr.Image(label="depth", type="pil")
    if task == "text-to-audio":
        return gr.Audio(label="audio")
    return gr.JSON(label="result")


def present(task: str, raw: Any, output: Any) -> Any:
    """A row's output (as the API returns it) in the form its Gradio widget draws."""
    if task in (
        "text-classification",
        "image-classification",
        "zero-shot-image-classification",
        "audio-classification",
    ):
        rows = output if isinstance(output, list) else [output]
        return {row["label"]: row["score"] for row in rows}
    if task == "zero-shot-classification":
        return dict(zip(output["labels"], output["scores"]))
    if task == "fill-mask":
        return {row["sequence"]: row["score"] for row in output}
    if task == "token-classification":
        return {
            "text": raw,
            "entities": [
                {"entity": row.get("entity_group") or row.get("entity"), "start": row["start"], "end": row["end"]}
                for row in output
            ],
        }
    if task == "automatic-speech-recognition":
        lines = [
            f"[{_seconds(c['timestamp'][0])} - {_seconds(c['timestamp'][1])}] {c['text']}"
            for c in output.get("chunks", [])
        ]
        return "\n".join([output["text"], *([""] + lines if lines else [])])
    if task in ("object-detection", "zero-shot-object-detection"):
        boxes = [((o["box"]["xmin"], o["box"]["ymin"], o["box"]["xmax"], o["box"]["ymax"]), o["label"]) for o in output]
        return (raw, boxes)
    if task == "image-segmentation":
        return (raw, [(np.asarray(_png(s["mask"]), dtype=np.float32) / 255, s["label"]) for s in output])
    if task == "depth-estimation":
        return _png(output["depth"])
    if task == "image-text-to-text":
        return output[0]["generated_text"]
    if task in ("summarization", "translation"):
        return "\n\n".join(next(iter(record.values())) for record in output)
    if task == "visual-question-answering":
        # A generated answer (BLIP) has no score: the page shows it as certain.
        return {row["answer"]: 1.0 if row.get("score") is None else row["score"] for row in output}
    if task == "question-answering":
        spans = output if isinstance(output, list) else [output]
        return "\n".join(f"{s['answer']!r} (score {s['score']:.3f}, characters {s['start']}-{s['end']})" for s in spans)
    if task == "text-to-audio":
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(base64.b64decode(output["audio"])), dtype="float32")
        return (rate, samples)
    return output


_LABEL_TASKS = {
    "text-classification",
    "zero-shot-classification",
    "fill-mask",
    "image-classification",
    "zero-shot-image-classification",
    "audio-classification",
    "zero-shot-audio-classification",
    "video-classification",
    "visual-question-answering",
}
_IMAGE_AND_TEXT = {  # -> the text's key
    "document-question-answering": "question",
    "visual-question-answering": "question",
    "image-text-to-text": "text",
}
_DRAWN_ON_IMAGE = {"object-detection", "zero-shot-object-detection", "image-segmentation"}


def _png(encoded: str) -> Any:
    """A PNG that the API sent as base64 (masks, depth maps), as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(encoded)))


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _parameters(gr: Any, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise _refusal(gr, MalformedRequest(f"parameters are not valid JSON: {exc}")) from None
    if not isinstance(value, dict):
        raise _refusal(gr, MalformedRequest("parameters must be a JSON object"))
    return value


def _refusal(gr: Any, exc: Exception) -> Exception:
    """The page's own refusal of what it cannot send, with the status the API would answer."""
    return gr.Error(_message({"error": error_message(exc), "status": status_of(exc)}))


def _body_limit(route: "Route") -> int:
    return int(route.spec.serve.max_body_mb * 1024 * 1024)


def _read_upload(value: Any, route: "Route") -> Any:
    """An uploaded file's bytes (Gradio hands the server-side path of the upload), within the route's body limit."""
    if not route.handler.media:
        return value
    if value is None:
        raise BadInput("no file was given")
    data = Path(value).read_bytes()
    limit = _body_limit(route)
    if len(data) > limit:
        raise BodyTooLarge(f"the file of {len(data)} bytes is over the limit of {limit} bytes")
    return data


def _message(answer: dict[str, Any]) -> str:
    """An error answer as the page shows it: the API's message and status."""
    return f"{answer['error']} (HTTP {answer['status']})"


def _api_name(route: str) -> str:
    return route.strip("/").replace("/", "_").replace("-", "_") or "route"
