"""Reading the committed goldens of the legacy tasks, and the inputs as pipefleet receives them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from tests.legacy.images import draw

HERE = Path(__file__).parent
TASKS = ("question-answering", "summarization", "translation_en_to_fr", "visual-question-answering")


def golden(task: str) -> dict[str, Any]:
    """``{"task", "model", "transformers", "cases": [{name, inputs, params, output}]}`` as 4.57 wrote it."""
    return json.loads((HERE / "goldens" / f"{task}.json").read_text())


def model_folder(task: str) -> str:
    return str(HERE / "models" / golden(task)["model"])


def png(name: str) -> bytes:
    buffer = io.BytesIO()
    draw(name).save(buffer, format="PNG")
    return buffer.getvalue()


def row_input(task: str, inputs: Any) -> Any:
    """A case's inputs as a row or request carries them: images as PNG bytes."""
    if task == "visual-question-answering":
        return {**inputs, "image": png(inputs["image"])}
    return inputs
