"""Keys that decode a picture's colours, drawn under it in a composite: the classes' colours
(:class:`ClassKey`), a colour bar for a scalar map such as depth or edge probability
(:class:`ColorBar`), and a ball for surface normals (:class:`SphereKey`).

A task's ``legend(output)`` returns one of these (or ``None``); :func:`render_key` draws it
at the width of the panel it belongs to, with text at a fixed pixel size, so it reads the
same under a 64-pixel synthetic scene and under a photograph.

Example:
    >>> strip = render_key(ColorBar("turbo_r", 0.0, 4.2, "depth (m)"), 200)
    >>> strip.shape[1], strip.dtype.name
    (200, 'uint8')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from mtvision.draw.colors import normals_to_rgb, palette, sphere_normals
from mtvision.draw.text import font, text_size

KEY_TEXT = 12  # px: text of every key
INK = (40, 40, 40)
PAPER = (255, 255, 255)


@dataclass(frozen=True)
class ClassKey:
    """Swatches of the classes a picture shows, in this order; ``more`` classes left unlisted."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    more: int = 0


@dataclass(frozen=True)
class ColorBar:
    """Colormap ``cmap`` from ``low`` (left) to ``high`` (right), named ``label``."""

    cmap: str
    low: float
    high: float
    label: str


@dataclass(frozen=True)
class SphereKey:
    """The normal colours on a ball seen by the camera: each colour where a surface facing that way is."""

    label: str = "facing"


Key = Union[ClassKey, ColorBar, SphereKey]


def class_key(ids: Iterable[int], names: Sequence[str], limit: int = 10) -> ClassKey:
    """The classes among ``ids`` (one id per object or pixel), most frequent first, at most ``limit``."""
    counts = Counter(int(i) for i in ids if 0 <= int(i) < len(names))
    shown = [i for i, _ in counts.most_common(limit)]
    colors = palette(len(names))
    return ClassKey(tuple(names[i] for i in shown), tuple(tuple(int(c) for c in colors[i]) for i in shown),
                    more=max(len(counts) - limit, 0))


def render_key(key: Key, width: int) -> np.ndarray:
    """``key`` drawn on white, ``width`` pixels wide (its height follows from its content)."""
    if isinstance(key, ClassKey):
        return _class_key(key, width)
    if isinstance(key, ColorBar):
        return _color_bar(key, width)
    return _sphere(key, width)


def _class_key(key: ClassKey, width: int) -> np.ndarray:
    """Swatch + name items flowing left to right, wrapped to the width."""
    items = [(name, color) for name, color in zip(key.names, key.colors)]
    if key.more:
        items.append((f"+{key.more} more", None))
    if not items:
        items = [("no class shown", None)]
    line_h, swatch = KEY_TEXT + 6, KEY_TEXT
    spots, x, y = [], 4, 3
    for name, color in items:
        w = (swatch + 4 if color else 0) + text_size(name, KEY_TEXT)[0] + 10
        if x > 4 and x + w > width:
            x, y = 4, y + line_h
        spots.append((x, y, name, color))
        x += w
    image, pen = _canvas(width, y + line_h + 2)
    for x, y, name, color in spots:
        if color:
            pen.rectangle((x, y + 1, x + swatch - 1, y + swatch), fill=color, outline=INK)
            x += swatch + 4
        pen.text((x, y), name, fill=INK, font=font(KEY_TEXT))
    return np.asarray(image)


def _color_bar(key: ColorBar, width: int) -> np.ndarray:
    """A horizontal gradient with the ends and the middle labelled, and the quantity's name."""
    margin, bar_h = 6, 10
    ramp = matplotlib.colormaps[key.cmap](np.linspace(0, 1, max(width - 2 * margin, 2)))[:, :3]
    bar = np.repeat((ramp[None] * 255).astype(np.uint8), bar_h, axis=0)
    image, pen = _canvas(width, bar_h + 2 * KEY_TEXT + 14)
    image.paste(Image.fromarray(bar), (margin, 3))
    pen.rectangle((margin - 1, 2, width - margin, 3 + bar_h), outline=INK)
    ticks = [(key.low, "left"), ((key.low + key.high) / 2, "middle"), (key.high, "right")]
    for value, side in ticks:
        text = _number(value)
        w = text_size(text, KEY_TEXT)[0]
        x = {"left": margin, "middle": (width - w) // 2, "right": width - margin - w}[side]
        pen.text((x, bar_h + 5), text, fill=INK, font=font(KEY_TEXT))
    w = text_size(key.label, KEY_TEXT)[0]
    pen.text(((width - w) // 2, bar_h + KEY_TEXT + 8), key.label, fill=INK, font=font(KEY_TEXT))
    return np.asarray(image)


def _sphere(key: SphereKey, width: int) -> np.ndarray:
    """A ball coloured by its normals, 'up/down/left/right' around it: where a colour sits is where it faces."""
    side = 3 * KEY_TEXT + 8
    ball = normals_to_rgb(sphere_normals(side))
    ball[~np.any(sphere_normals(side) != 0, axis=0)] = PAPER
    tw = max(text_size(word, KEY_TEXT)[0] for word in ("left", "right"))
    height = side + 2 * KEY_TEXT + 10
    image, pen = _canvas(width, height)
    cx = width // 2
    image.paste(Image.fromarray(ball), (cx - side // 2, KEY_TEXT + 5))
    for word, (x, y) in {"up": (cx - text_size("up", KEY_TEXT)[0] // 2, 1),
                         "down": (cx - text_size("down", KEY_TEXT)[0] // 2, side + KEY_TEXT + 6),
                         "left": (cx - side // 2 - tw - 4, KEY_TEXT + side // 2 - 2),
                         "right": (cx + side // 2 + 4, KEY_TEXT + side // 2 - 2)}.items():
        pen.text((x, y), word, fill=INK, font=font(KEY_TEXT))
    pen.text((4, KEY_TEXT + side // 2 - 2), key.label, fill=INK, font=font(KEY_TEXT))
    return np.asarray(image)


def _canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), PAPER)
    return image, ImageDraw.Draw(image)


def _number(value: float) -> str:
    """Short tick text: 3 significant digits."""
    return f"{value:.3g}"
