"""Reading the committed goldens of the legacy tasks, and the inputs as pipefleet receives them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tests.legacy.cases import CASES
from tests.legacy.images import draw

HERE = Path(__file__).parent
NAMES = tuple(CASES)  # one golden file each: a task on one tiny model


def golden(name: str) -> dict[str, Any]:
    """``{"task", "model", "transformers", "cases": [{name, inputs, params, output}]}`` as 4.57 wrote it."""
    return json.loads((HERE / "goldens" / f"{name}.json").read_text())


def task_of(name: str) -> str:
    """The task name the golden was written with (``translation_en_to_fr`` picks T5's prefix)."""
    return golden(name)["task"]


def model_folder(name: str) -> str:
    return str(HERE / "models" / golden(name)["model"])


def png(name: str) -> bytes:
    buffer = io.BytesIO()
    draw(name).save(buffer, format="PNG")
    return buffer.getvalue()


def row_input(name: str, inputs: Any) -> Any:
    """A case's inputs as a row or request carries them: images as PNG bytes."""
    if task_of(name) == "visual-question-answering":
        return {**inputs, "image": png(inputs["image"])}
    return inputs
