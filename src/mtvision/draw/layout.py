"""Pictures side by side: a grid of titled panels, each title in a band above its picture
(never over it) and each key (legend, colour bar) in a band below it.

A grid keeps a composite of many tasks at a size a screen shows whole: panels wrap into
rows so that the width stays under ``max_width`` (a one-row strip of eight 500-pixel
pictures is 4,000 pixels wide), and :func:`fit_longest` brings every input to one display
size before a task draws on it, so labels and keys are drawn at the size they are seen.

Example:
    >>> import numpy as np
    >>> panels = [Panel(np.zeros((64, 64, 3), np.uint8), f"task {i}") for i in range(8)]
    >>> compose(panels, max_width=300).shape[1] <= 300
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mtvision.draw.keys import INK, PAPER, Key, render_key
from mtvision.draw.text import font, text_size

TITLE_TEXT = 14  # px
GAP = 8  # px between panels and around the grid


@dataclass
class Panel:
    """One picture of a composite, its title and (optionally) the key to its colours."""

    picture: np.ndarray
    title: str
    key: Key | None = None


def compose(panels: Sequence[Panel], columns: int | None = None, max_width: int = 1400) -> np.ndarray:
    """The panels in a grid on white: rows of ``columns`` (default: as many as fit ``max_width``,
    balanced so the last row is not left with one), title above, key below each picture."""
    cell = max(p.picture.shape[1] for p in panels)
    columns = columns or _columns(len(panels), cell, max_width)
    rows = [panels[i:i + columns] for i in range(0, len(panels), columns)]
    blocks = [_row(row, cell, columns) for row in rows]
    grid = np.concatenate(blocks, axis=0)
    border = np.full((grid.shape[0], GAP, 3), PAPER, np.uint8)
    return np.concatenate([border, grid], axis=1)


def tile(pictures: Sequence[np.ndarray], titles: Sequence[str] | None = None, columns: int = 4) -> np.ndarray:
    """Pictures in a grid of ``columns``, all resized to the first one's size, titled above."""
    h, w = pictures[0].shape[:2]
    cells = [np.asarray(Image.fromarray(p).resize((w, h), Image.NEAREST)) for p in pictures]
    names = list(titles) if titles else [""] * len(cells)
    return compose([Panel(c, t) for c, t in zip(cells, names)], columns=columns)


def fit_longest(picture: np.ndarray, side: int) -> np.ndarray:
    """``picture`` scaled so that its longer side is ``side``: nearest when enlarging (pixels
    stay crisp), Lanczos when shrinking (no aliasing)."""
    h, w = picture.shape[:2]
    scale = side / max(h, w)
    if scale == 1:
        return picture
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(picture).resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS))


def _columns(count: int, cell: int, max_width: int) -> int:
    """As many columns as fit, then as few as keep the same number of rows."""
    fit = max(1, (max_width - GAP) // (cell + GAP))
    rows = math.ceil(count / fit)
    return math.ceil(count / rows)


def _row(panels: Sequence[Panel], cell: int, columns: int) -> np.ndarray:
    """One row: a title band, the pictures, a key band; every band as tall as its tallest entry."""
    keys = [render_key(p.key, cell) if p.key is not None else None for p in panels]
    title_h = max(text_size(p.title or " ", TITLE_TEXT)[1] for p in panels) + 8
    picture_h = max(p.picture.shape[0] for p in panels)
    key_h = max((k.shape[0] for k in keys if k is not None), default=0)
    height = GAP // 2 + title_h + picture_h + (key_h + 4 if key_h else 0) + GAP // 2
    image = Image.new("RGB", (columns * (cell + GAP), height), PAPER)
    pen = ImageDraw.Draw(image)
    for i, (panel, key) in enumerate(zip(panels, keys)):
        x = i * (cell + GAP)
        pen.multiline_text((x, GAP // 2 + 2), _fit_text(panel.title, cell), fill=INK, font=font(TITLE_TEXT),
                           spacing=2)
        top = GAP // 2 + title_h
        image.paste(Image.fromarray(panel.picture), (x, top))
        if key is not None:
            image.paste(Image.fromarray(key), (x, top + picture_h + 4))
    return np.asarray(image)


def _fit_text(text: str, width: int) -> str:
    """Each line cut (with an ellipsis) to ``width`` pixels: a long title must not run into the next panel."""
    lines = []
    for line in text.split("\n"):
        while line and text_size(line, TITLE_TEXT)[0] > width:
            line = line[:-2] + "…" if len(line) > 2 else ""
        lines.append(line)
    return "\n".join(lines)
