"""Visual prompts drawn on rendered images: labelled points, labelled boxes, masks and candidate grids.

Design: markers are high-contrast (white ring around a black dot, label on a white tab) so they stand out on
every palette color, and they are drawn on copies: the clean render stays shareable between items.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FONT = ImageFont.load_default()


def _label(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, size: tuple[int, int]) -> None:
    w, h = size
    tx = min(max(int(x) + 3, 0), w - 7 * len(text) - 2)
    ty = min(max(int(y) - 12, 0), h - 12)
    draw.rectangle([tx, ty, tx + 6 * len(text) + 2, ty + 11], fill=(255, 255, 255))
    draw.text((tx + 1, ty), text, fill=(0, 0, 0), font=_FONT)


def mark_points(
    img: np.ndarray, points: list[tuple[float, float]], labels: list[str] | None = None
) -> np.ndarray:
    """A copy of `img` with a marker (and optional text label) at each (u, v) pixel."""
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    for k, (u, v) in enumerate(points):
        d.ellipse([u - 3, v - 3, u + 3, v + 3], fill=(255, 255, 255))
        d.ellipse([u - 1.5, v - 1.5, u + 1.5, v + 1.5], fill=(0, 0, 0))
        if labels:
            _label(d, u, v, labels[k], im.size)
    return np.asarray(im)


def mark_boxes(img: np.ndarray, boxes: list[list[float]], labels: list[str]) -> np.ndarray:
    """A copy of `img` with labelled rectangle outlines [x1, y1, x2, y2]."""
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    for box, text in zip(boxes, labels, strict=True):
        d.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(255, 255, 255), width=2)
        _label(d, box[0], box[1] + 1, text, im.size)
    return np.asarray(im)


def mask_square(img: np.ndarray, x: int, y: int, size: int, value: int = 128) -> np.ndarray:
    out = img.copy()
    out[y : y + size, x : x + size] = value
    return out


def grid_2x2(tiles: list[np.ndarray], cell: int, labels: list[str]) -> np.ndarray:
    """Four tiles resized to `cell` px in a 2x2 grid (reading order), each with its letter."""
    canvas = Image.new("RGB", (2 * cell, 2 * cell), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for k, tile in enumerate(tiles):
        t = Image.fromarray(tile).resize((cell - 4, cell - 4), Image.Resampling.BILINEAR)
        x, y = (k % 2) * cell + 2, (k // 2) * cell + 2
        canvas.paste(t, (x, y))
        d.rectangle([x, y, x + 8, y + 11], fill=(255, 255, 255))
        d.text((x + 1, y), labels[k], fill=(0, 0, 0), font=_FONT)
    return np.asarray(canvas)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
