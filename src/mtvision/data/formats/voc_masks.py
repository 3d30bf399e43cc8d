"""Pascal VOC mask PNGs: index/palette or colour-coded -> class or instance indices, and back.

VOC's devkit stores ``SegmentationClass`` / ``SegmentationObject`` as palette PNGs: the
pixel *index* is the class (or the 1-based object number in the XML), 0 is background
and 255 the void border. CVAT and Datumaro write RGB PNGs instead, coloured with the
standard VOC colour map (or ``labelmap.txt`` colours for classes); those are mapped back
to indices through the colours, and an unknown colour is an error, not a guess.

Example:
    >>> colormap(3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats._files import PIL_ERRORS, load_png
from mtvision.structures import Rle, mask_to_rle

__all__ = ["colormap", "index_png", "instance_masks", "png_header", "save_palette_png"]


def colormap(n: int = 256) -> np.ndarray:
    """The VOC colour map ``[n, 3]`` uint8 (index 255 -> (224, 224, 192), the void colour)."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((c >> channel) & 1) << (7 - bit)
            c >>= 3
        cmap[i] = rgb
    return cmap


def png_header(path: Path) -> tuple[int, int, str]:
    """``(width, height, mode)`` without decoding pixels; unreadable -> FormatError."""
    try:
        with Image.open(path) as im:
            return im.width, im.height, im.mode
    except PIL_ERRORS as exc:
        raise FormatError(path, "", f"cannot read the PNG header: {exc}") from exc


def index_png(path: Path, colors: np.ndarray, size: tuple[int, int], file: Path, entry: str) -> np.ndarray:
    """``[H, W]`` indices of a palette/grey PNG, or of an RGB PNG through ``colors`` ``[n, 3]``."""
    array = load_png(path, file, entry, modes=("P", "L", "RGB"))
    if array.shape[:2] != size:
        raise FormatError(file, entry, f"{path.name} is {array.shape[1]}x{array.shape[0]}, "
                                       f"the image is {size[1]}x{size[0]}")
    if array.ndim == 2:
        return array.astype(np.int64)
    codes = _codes(array)
    known = _codes(colors)
    uniq, inverse = np.unique(codes, return_inverse=True)
    lookup = {int(c): i for i, c in enumerate(known)}
    missing = [int(c) for c in uniq if int(c) not in lookup]
    if missing:
        raise FormatError(file, entry, f"{path.name}: colour {_rgb(missing[0])} is not in the colour map")
    return np.array([lookup[int(c)] for c in uniq], np.int64)[inverse].reshape(codes.shape)


def instance_masks(ids: np.ndarray, count: int, file: Path, entry: str) -> list[Rle | None]:
    """One RLE per object (object i is pixel value i + 1); objects absent from the PNG get None."""
    present = [int(v) for v in np.unique(ids) if v not in (0, 255)]
    if present and present[-1] > count:
        raise FormatError(file, entry, f"SegmentationObject has instance {present[-1]} but only {count} objects")
    masks: list[Rle | None] = [None] * count
    for value in present:
        masks[value - 1] = mask_to_rle(ids == value)
    return masks


def save_palette_png(indices: np.ndarray, path: Path) -> None:
    """Write ``[H, W]`` indices (0..255) as a VOC palette PNG."""
    if indices.min(initial=0) < 0 or indices.max(initial=0) > 255:
        raise ValueError(f"{path}: mask values must be in 0..255 for a palette PNG")
    image = Image.fromarray(indices.astype(np.uint8))
    image.putpalette(colormap().tobytes())  # turns the grey "L" image into a palette "P" one
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16, (code >> 8) & 255, code & 255)
