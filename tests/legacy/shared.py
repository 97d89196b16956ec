"""What the legacy tasks' tests in every tier share."""

from __future__ import annotations

from typing import Any

from transformers import pipeline

ONE_MB = "word " * 200_000


def _chat_answers(model: str, image: Any, question: str, **params: Any) -> list[dict[str, str]]:
    """What the image-text-to-text pipeline replies to the question in one user message, as VQA answers."""

    chat = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]
    replies = pipeline("image-text-to-text", model=model)(text=chat, return_full_text=False, **params)
    return [{"answer": reply["generated_text"].strip()} for reply in replies]
