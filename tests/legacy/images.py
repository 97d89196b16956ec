"""The images of the visual-question-answering cases, drawn with PIL (same pixels every time)."""

from __future__ import annotations

from PIL import Image, ImageDraw


def draw(name: str) -> Image.Image:
    image = Image.new("RGB", (48, 32), "white")
    pen = ImageDraw.Draw(image)
    if name == "red_square":
        pen.rectangle((12, 6, 32, 26), fill="red")
    elif name == "blue_circle":
        pen.ellipse((10, 4, 34, 28), fill="blue")
    elif name == "green_lines":
        for x in (8, 20, 32):
            pen.line((x, 2, x + 6, 30), fill="green", width=3)
    else:
        raise ValueError(f"no image named {name!r}")
    return image
