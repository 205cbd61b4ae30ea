"""Image grid PNG per prompt: one row per method (labelled), one column per seed."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

LABEL_WIDTH = 120


def save_grid(rows: Sequence[tuple[str, Sequence]], path: str | Path, title: str = "") -> Path:
    """Paste ``[(method, [images by seed])]`` into one PNG at ``path``; returns the path."""
    from PIL import Image, ImageDraw

    cell_w = max(image.width for _, images in rows for image in images)
    cell_h = max(image.height for _, images in rows for image in images)
    columns = max(len(images) for _, images in rows)
    header = 16 if title else 0
    canvas = Image.new("RGB", (LABEL_WIDTH + columns * cell_w, header + len(rows) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title[:120], fill="black")
    for r, (name, images) in enumerate(rows):
        top = header + r * cell_h
        draw.text((4, top + cell_h // 2 - 6), name[:18], fill="black")
        for c, image in enumerate(images):
            canvas.paste(image, (LABEL_WIDTH + c * cell_w, top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
