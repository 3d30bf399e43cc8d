"""Text on pictures: one font everywhere, sized in pixels, measured before it is drawn.

Pillow's bundled scalable font (``ImageFont.load_default(size=...)``) needs no system
fonts, so a picture drawn on a server looks the one drawn on a laptop.

Example:
    >>> width, height = text_size("car 0.91", 12)
    >>> 30 < width < 80 and 8 <= height <= 16
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_SCRATCH = Image.new("RGB", (1, 1))  # the canvas text is measured on


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font at ``size`` pixels (Pillow's bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def text_size(text: str, size: int) -> tuple[int, int]:
    """``(width, height)`` in pixels that ``text`` (one or several lines) takes at ``size``."""
    left, top, right, bottom = ImageDraw.Draw(_SCRATCH).multiline_textbbox((0, 0), text, font=font(size), spacing=2)
    return right - min(left, 0), bottom - min(top, 0)


def font_size_for(side: int) -> int:
    """A label size that reads at a picture's smaller side: 1/18 of it, between 10 and 16 px."""
    return max(10, min(16, side // 18))


def caption(picture: np.ndarray, lines: Sequence[str], dim: Sequence[bool] = ()) -> np.ndarray:
    """``lines`` on a dark translucent box at the picture's top-left; lines flagged in ``dim``
    in grey (e.g. classes below the decision threshold), the others in white."""
    size = font_size_for(min(picture.shape[:2]))
    image = Image.fromarray(picture).convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    heights = [text_size(line, size)[1] for line in lines]
    width = max((text_size(line, size)[0] for line in lines), default=0)
    pen.rectangle((0, 0, width + 6, sum(heights) + 2 * len(lines) + 4), fill=(0, 0, 0, 170))
    y = 2
    for i, (line, h) in enumerate(zip(lines, heights)):
        gray = i < len(dim) and dim[i]
        pen.text((3, y), line, fill=(170, 170, 170, 255) if gray else (255, 255, 255, 255), font=font(size))
        y += h + 2
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))
