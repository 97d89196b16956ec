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

import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipefleet.errors import BadInput, FatalError
from pipefleet.handler import MEDIA
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
    spec, handler = route.spec, route.handler
    model = spec.model or "the task's default model"
    gr.Markdown(f"**{spec.task}** with `{model}` at `POST {spec.route}`")
    form = _form(gr, route)
    with gr.Accordion("parameters", open=False):
        parameters = gr.Code(value=json.dumps(spec.params, indent=2), language="json", label="parameters (JSON)")
        token = gr.Textbox(label="bearer token", type="password", visible=route.needs_token)
    button = gr.Button("Run", variant="primary")
    output = _output_widget(gr, handler.capabilities.display, handler.output_column)
    widgets = [parameters, token, *form.widgets]

    if handler.capabilities.streaming:

        async def generate(params_json: str, bearer: str, *values: Any) -> AsyncIterator[str]:
            produced = ""
            async for event in stream(route, form.build(list(values)), _parameters(gr, params_json), bearer or None):
                if "error" in event:
                    raise gr.Error(_message(event))
                produced += event["token"]
                yield produced

        button.click(generate, widgets, output, api_name=_api_name(spec.route))
        return

    async def predict(params_json: str, bearer: str, *values: Any) -> Any:
        try:
            raw = form.build(list(values))
        except (BadInput, BodyTooLarge) as exc:
            raise _refusal(gr, exc) from None
        answer = await run(route, raw, _parameters(gr, params_json), bearer or None)
        if "error" in answer:
            raise gr.Error(_message(answer))
        return present(spec.task, values[0], answer["output"], raw)

    button.click(predict, widgets, output, api_name=_api_name(spec.route))


@dataclass
class Form:
    """A tab's input widgets, and how their values become one API input."""

    widgets: list[Any]
    build: Callable[[list[Any]], Any]


def _form(gr: Any, route: "Route") -> Form:
    """A widget for each input the page asks for (the main one, the required ones, candidate labels),
    from the handler's declared inputs; their values become one input, bare or ``{name: value}``."""
    main, *others = route.handler.inputs
    shown = [main, *[i for i in others if i.required or i.kind == "labels"]]
    widgets = [_input_widget(gr, i.kind, i.name) for i in shown]

    def build(values: list[Any]) -> Any:
        given = {i.name: _input_value(i.kind, value, route) for i, value in zip(shown, values)}
        given = {name: value for name, value in given.items() if value is not None}
        return given.get(main.name) if set(given) <= {main.name} else given

    return Form(widgets, build)


def _input_widget(gr: Any, kind: str, name: str) -> Any:
    if kind in MEDIA:
        return _media_widget(gr, kind)
    if kind == "labels":
        return gr.Textbox(label="candidate labels (comma-separated; empty: the spec's)")
    if kind == "texts":
        return gr.Textbox(label=f"{name} (one per line)", lines=4)
    if kind == "table":
        return gr.Dataframe(label=name, value=[["Paris", "2.1"], ["Berlin", "3.6"]], headers=["city", "people"])
    return gr.Textbox(label=name, lines=3)


def _input_value(kind: str, value: Any, route: "Route") -> Any:
    """A widget's value as the API takes it; None for an optional widget left empty."""
    if kind in MEDIA:
        return _read_upload(value, route)
    if kind == "labels":
        labels = [label.strip() for label in (value or "").split(",") if label.strip()]
        return labels or None
    if kind == "texts":
        return [line.strip() for line in (value or "").splitlines() if line.strip()]
    if kind == "table":
        return value.astype(str).to_dict("list")
    return value


def _media_widget(gr: Any, media: str) -> Any:
    if media == "image":
        return gr.Image(type="filepath", format="png", label="image")  # png: Gradio re-encodes uploads, losslessly
    if media == "audio":
        return gr.Audio(type="filepath", sources=["upload", "microphone"], label="audio")
    return gr.File(type="filepath", label=media)  # a video: sent as it is, with no re-encoding


# The widget that draws each display kind (pipefleet.readable describes the forms they take).
_OUTPUT_WIDGETS: dict[str, Callable[[Any, str], Any]] = {
    "labels": lambda gr, label: gr.Label(label=label, num_top_classes=10),
    "entities": lambda gr, label: gr.HighlightedText(label=label),
    "text": lambda gr, label: gr.Textbox(label=label, lines=6),
    "boxes": lambda gr, label: gr.AnnotatedImage(label=label),
    "masks": lambda gr, label: gr.AnnotatedImage(label=label),
    "image": lambda gr, label: gr.Image(label=label, type="pil"),
    "audio": lambda gr, label: gr.Audio(label=label),
}


def _output_widget(gr: Any, display: str, label: str) -> Any:
    """The widget for ``display``, labelled with the task's output name (transcription, generated, ...)."""
    return _OUTPUT_WIDGETS.get(display, lambda gr, label: gr.JSON(label=label))(gr, label)


def present(task: str, raw: Any, output: Any, value: Any = None) -> Any:
    """A row's output (as the API returns it) in the form its Gradio widget draws.

    ``raw`` is the tab's first widget's value: the text, or the uploaded file's path; ``value`` the
    input the API was sent, when it differs (several inputs).
    """
    from pipefleet.registry import handler_class

    handler = handler_class(task)
    display, shown = handler.capabilities.display, handler.readable(output, raw if value is None else value)
    if display == "boxes":
        return (raw, shown)
    if display == "masks":
        return (raw, [(np.asarray(_png(png), dtype=np.float32) / 255, label) for png, label in shown])
    if display == "image":
        return _png(shown)
    if display == "audio":
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(shown), dtype="float32")
        return (rate, samples)
    return shown


def _png(data: bytes) -> Any:
    """PNG bytes (a mask, a depth map) as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(data))


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
