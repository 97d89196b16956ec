"""An output in the form a person reads it, one form per display kind a handler declares.

The demo page draws these forms (label bars, highlighted entities, boxes and masks on the image,
a player); they are plain data, so this module knows nothing of the page's widgets:

- ``labels``: ``{label: score}`` (or ``{sentence: similarity}``);
- ``entities``: ``{"text": the input, "entities": [{"entity", "start", "end"}]}``;
- ``text``: one string;
- ``boxes``: ``[((xmin, ymin, xmax, ymax), label)]``, in pixels;
- ``masks``: ``[(PNG bytes, label)]``;
- ``image``: PNG bytes;
- ``audio``: WAV bytes;
- ``json``: the output as it is.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any


def readable(display: str, output: Any, value: Any = None) -> Any:
    """``output`` (as a handler returns it, or as JSON carries it: bytes as base64) in ``display``'s form."""
    return _FORMS.get(display, lambda output, value: output)(output, value)


def _labels(output: Any, value: Any) -> dict[str, float]:
    if isinstance(value, dict) and isinstance(value.get("sentences"), list):  # a score per sentence
        return dict(zip(value["sentences"], output))
    if isinstance(value, dict) and isinstance(value.get("texts"), list):  # ranked texts: [{index, score}]
        return {value["texts"][row["index"]]: row["score"] for row in output}
    rows = output if isinstance(output, list) else [output]
    if isinstance(output, dict) and "labels" in output:  # zero-shot: {sequence, labels, scores}
        return dict(zip(output["labels"], output["scores"]))
    scored = {}
    for row in rows:
        label = row.get("label", row.get("answer", row.get("sequence")))
        # A generated answer (BLIP) has no score: it is shown as certain.
        scored[label] = 1.0 if row.get("score") is None else row["score"]
    return scored


def _entities(output: Any, value: Any) -> dict[str, Any]:
    return {
        "text": value,
        "entities": [
            {"entity": row.get("entity_group") or row.get("entity"), "start": row["start"], "end": row["end"]}
            for row in output
        ],
    }


def _text(output: Any, value: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, dict) and "text" in output:  # a transcript, with its timestamped chunks
        chunks = output.get("chunks") or []
        lines = [f"[{_seconds(c['timestamp'][0])} - {_seconds(c['timestamp'][1])}] {c['text']}" for c in chunks]
        return "\n".join([output["text"], *([""] + lines if lines else [])])
    if isinstance(output, dict) and "answer" in output:  # a span answer
        output = [output]
    if isinstance(output, list) and output and isinstance(output[0], dict):
        if "answer" in output[0]:
            return "\n".join(
                f"{s['answer']!r} (score {s['score']:.3f}, characters {s['start']}-{s['end']})" for s in output
            )
        # Generated records: generated_text (beside image-text-to-text's input_text), summary_text, ...
        return "\n\n".join(str(record.get("generated_text", next(iter(record.values())))) for record in output)
    return str(output)


def _boxes(output: Any, value: Any) -> list[tuple[tuple[int, int, int, int], str]]:
    return [((o["box"]["xmin"], o["box"]["ymin"], o["box"]["xmax"], o["box"]["ymax"]), o["label"]) for o in output]


def _masks(output: Any, value: Any) -> list[tuple[bytes, str]]:
    return [(as_bytes(segment["mask"]), segment["label"]) for segment in output]


def _image(output: Any, value: Any) -> bytes:
    return as_bytes(output["depth"] if isinstance(output, dict) else output)


def _audio(output: Any, value: Any) -> bytes:
    return as_bytes(output["audio"] if isinstance(output, dict) else output)


def as_bytes(data: Any) -> bytes:
    """File bytes as a handler returns them, or as JSON carries them (base64)."""
    return base64.b64decode(data) if isinstance(data, str) else bytes(data)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


_FORMS: dict[str, Callable[[Any, Any], Any]] = {
    "labels": _labels,
    "entities": _entities,
    "text": _text,
    "boxes": _boxes,
    "masks": _masks,
    "image": _image,
    "audio": _audio,
}
