"""The image frame: where a user's image sits inside the model's fixed-size input.

Objects must keep their shape between training and evaluation, so every image is resized
to fit the input keeping its aspect ratio and padded (a *letterbox*, :func:`letterbox_geometry`).
Predictions made on that input go back onto the user's image through its
:class:`ImageFrame` (:func:`letterbox_frame`), the exact inverse of the letterbox. Tasks
(which map their outputs back) and data (which letterboxes) both need it, so it lives here.

Example:
    >>> letterbox_geometry((32, 48), (64, 64))
    LetterboxGeometry(resized=(43, 64), top=10, left=0, bottom=11, right=0)
    >>> frame = letterbox_frame((50, 100), (64, 64))  # a 100x50 (w x h) image: 64x32 content, 16 px bands
    >>> frame.points_to_original(np.array([32.0, 40.0])).tolist()
    [50.0, 37.5]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.functional import interpolate

__all__ = ["ImageFrame", "LetterboxGeometry", "fit_size", "letterbox_frame", "letterbox_geometry", "resize_nearest"]


class LetterboxGeometry(NamedTuple):
    """Where the resized image sits inside the padded output (pixels); :class:`ImageFrame`
    maps outputs back to the input with it."""

    resized: tuple[int, int]  # (h, w) of the image before padding
    top: int
    left: int
    bottom: int
    right: int


def fit_size(size: tuple[int, int], target: tuple[int, int], scale: float = 1.0) -> tuple[int, int]:
    """``size`` (h, w) scaled by ``scale`` times the largest factor that fits it in ``target``."""
    ratio = min(target[0] / size[0], target[1] / size[1]) * scale
    return max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio))


def letterbox_geometry(size: tuple[int, int], target: tuple[int, int]) -> LetterboxGeometry:
    """The resize and centred padding that turn an image of ``size`` into one of ``target``."""
    h, w = fit_size(size, target)
    top, left = (target[0] - h) // 2, (target[1] - w) // 2
    return LetterboxGeometry((h, w), top, left, target[0] - h - top, target[1] - w - left)


@dataclass(frozen=True)
class ImageFrame:
    """Where the user's image sits inside the model's input, to put predictions back onto it.

    The image of size ``original`` (h, w) was resized to ``content`` (h, w) and placed with its
    top-left corner at (``top``, ``left``); the rest of the input is padding. :func:`letterbox_frame`
    builds it for :class:`Letterbox`; a plain (stretching) resize to ``size`` is
    ``ImageFrame(original, size, 0, 0)``.
    """

    original: tuple[int, int]
    content: tuple[int, int]
    top: int
    left: int

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) input pixels per original pixel; the two differ slightly as ``content`` is rounded."""
        return self.content[1] / self.original[1], self.content[0] / self.original[0]

    def points_to_original(self, xy: np.ndarray) -> np.ndarray:
        """``[..., 2]`` (x, y) points: the padding shift and the resize undone, clipped to the
        image (the padding is not part of it, so nothing there has an original position)."""
        sx, sy = self.scale
        x = ((xy[..., 0] - self.left) / sx).clip(0, self.original[1])
        y = ((xy[..., 1] - self.top) / sy).clip(0, self.original[0])
        return np.stack([x, y], axis=-1)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``[N, 4]`` XYXY boxes: both corners mapped as points (a resize keeps boxes axis-aligned)."""
        return self.points_to_original(boxes.reshape(-1, 2, 2)).reshape(boxes.shape)

    def map_to_original(self, values: np.ndarray, nearest: bool) -> np.ndarray:
        """``[..., H, W]`` map of the input: its content region resized to the original (h, w).

        ``nearest`` for labels and masks (no class or 0/1 value is invented; any dtype), else
        bilinear (float32). The padding is cropped first, so it never bleeds into the borders.
        """
        content = values[..., self.top:self.top + self.content[0], self.left:self.left + self.content[1]]
        return resize_nearest(content, self.original) if nearest else _bilinear(content, self.original)


def letterbox_frame(original: tuple[int, int], target: tuple[int, int]) -> ImageFrame:
    """The frame :class:`Letterbox` to ``target`` (h, w) puts an image of size ``original`` (h, w) in."""
    geometry = letterbox_geometry(original, target)
    return ImageFrame(tuple(original), geometry.resized, geometry.top, geometry.left)


def resize_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[..., h, w]`` values at ``size`` (H, W): each output pixel takes the source pixel that
    holds its centre (pixel-centre aligned, like ``nearest-exact``), by index lookup so any
    dtype (bool masks, int64 labels) works and no value is blended."""
    h, w = values.shape[-2:]
    rows = ((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64)
    cols = ((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64)
    return values[..., rows[:, None], cols[None, :]]


def _bilinear(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes; antialiased, so shrinking averages instead of skipping pixels."""
    maps = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    flat = maps.reshape(1, -1, *maps.shape[-2:])
    resized = interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return resized.reshape(*maps.shape[:-2], *size).numpy()
