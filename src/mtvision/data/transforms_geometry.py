"""Resizing that keeps the aspect ratio, and void padding for semantic masks.

Objects must keep their shape between training and evaluation, so both resize the same way:
fit the image inside the target size (:func:`letterbox_geometry`), then pad — centred for
evaluation (:class:`Letterbox`), at a random place after a random extra scale for training
(:class:`RandomFitScale` followed by ``v2.RandomCrop(pad_if_needed=True)``). Predictions on a
letterboxed image go back onto the user's image through its :class:`ImageFrame`
(:func:`letterbox_frame`), the exact inverse of :class:`Letterbox`.

Padding and rotation invent pixels. torchvision fills them with one value per tv_tensor
*type*, 0 for every ``Mask``; 0 is right for instance masks, edges, depth (invalid) and
normals (none), but for a semantic mask it is a real class. :class:`SemanticVoidFill` runs a
geometric pipeline with semantic masks shifted by one so that the invented 0 reads back as
``ignore_index``.

Example:
    >>> letterbox_geometry((32, 48), (64, 64))
    LetterboxGeometry(resized=(43, 64), top=10, left=0, bottom=11, right=0)
    >>> import numpy as np
    >>> frame = letterbox_frame((50, 100), (64, 64))  # a 100x50 (w x h) image: 64x32 content, 16 px bands
    >>> frame.points_to_original(np.array([32.0, 40.0])).tolist()
    [50.0, 37.5]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import interpolate
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import query_size

from mtvision.structures import Sample

__all__ = ["ImageFrame", "Letterbox", "LetterboxGeometry", "RandomFitScale", "SemanticVoidFill", "letterbox_frame",
           "letterbox_geometry", "resize_nearest"]


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


class Letterbox(Transform):
    """Resize to fit ``size`` (h, w) keeping the aspect ratio, then pad centred to exactly ``size``.

    Example:
        >>> from torchvision import tv_tensors
        >>> Letterbox((64, 64))(tv_tensors.Image(torch.ones(3, 32, 48))).shape
        torch.Size([3, 64, 64])
    """

    def __init__(self, size: tuple[int, int], fill: float = 0.0) -> None:
        super().__init__()
        self.size = tuple(size)
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"geometry": letterbox_geometry(query_size(flat_inputs), self.size)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        g: LetterboxGeometry = params["geometry"]
        resized = self._call_kernel(F.resize, inpt, size=list(g.resized), antialias=True)
        return self._call_kernel(F.pad, resized, padding=[g.left, g.top, g.right, g.bottom], fill=self.fill)


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


class RandomFitScale(Transform):
    """Scale jitter: resize to fit ``size`` (h, w), times a factor drawn in ``scale_range``.

    ``v2.ScaleJitter`` does the same but reads its target size as (w, h), unlike every other
    v2 transform; a follow-up ``v2.RandomCrop(size, pad_if_needed=True)`` gives the exact size.
    """

    def __init__(self, size: tuple[int, int], scale_range: tuple[float, float]) -> None:
        super().__init__()
        self.size = tuple(size)
        self.scale_range = tuple(scale_range)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        low, high = self.scale_range
        scale = low + float(torch.rand(())) * (high - low)
        return {"size": list(fit_size(query_size(flat_inputs), self.size, scale))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


class SemanticVoidFill(nn.Module):
    """Run ``transform`` so that pixels it invents in semantic masks become ``ignore_index``.

    Semantic masks are the ``Mask`` targets of shape ``[H, W]`` (see ``Sample``). They go
    through ``transform`` as ``label + 1`` with void as 0, the value torchvision pads with;
    afterwards 0 maps back to ``ignore_index`` and the labels back to their dtype.
    """

    def __init__(self, transform: Callable[[Sample], Sample], ignore_index: int = 255) -> None:
        super().__init__()
        self.inner = transform
        self.ignore_index = ignore_index

    def forward(self, sample: Sample) -> Sample:
        semantic = {task: t for task, t in sample.targets.items() if _is_semantic(t)}
        shifted = {task: tv_tensors.Mask(_shift(t, self.ignore_index)) for task, t in semantic.items()}
        out = self.inner(sample.with_targets(**shifted))
        restored = {task: tv_tensors.Mask(_unshift(out.targets[task], self.ignore_index, t.dtype))
                    for task, t in semantic.items()}
        return out.with_targets(**restored)


def _is_semantic(target: Any) -> bool:
    return isinstance(target, tv_tensors.Mask) and target.ndim == 2


def _shift(mask: Tensor, ignore_index: int) -> Tensor:
    mask = mask.as_subclass(Tensor).long()
    return torch.where(mask == ignore_index, 0, mask + 1)


def _unshift(mask: Tensor, ignore_index: int, dtype: torch.dtype) -> Tensor:
    mask = mask.as_subclass(Tensor)
    return torch.where(mask == 0, ignore_index, mask - 1).to(dtype)
