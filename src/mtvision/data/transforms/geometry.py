"""Resizing that keeps the aspect ratio, and void padding for semantic masks.

Objects must keep their shape between training and evaluation, so both resize the same way:
fit the image inside the target size (:func:`~mtvision.structures.frame.letterbox_geometry`),
then pad — centred for evaluation (:class:`Letterbox`), at a random place after a random
extra scale for training (:class:`RandomFitScale` followed by
``v2.RandomCrop(pad_if_needed=True)``). Predictions on a letterboxed image go back onto the
user's image through its :class:`~mtvision.structures.frame.ImageFrame`, the exact inverse
of :class:`Letterbox`.

Padding and rotation invent pixels. torchvision fills them with one value per tv_tensor
*type*, 0 for every ``Mask``; 0 is right for instance masks, edges, depth (invalid) and
normals (none), but for a semantic mask it is a real class. :class:`SemanticVoidFill` runs a
geometric pipeline with semantic masks shifted by one so that the invented 0 reads back as
``ignore_index``.

Example:
    >>> Letterbox((64, 64))(tv_tensors.Image(torch.ones(3, 32, 48))).shape
    torch.Size([3, 64, 64])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform, query_size
from torchvision.transforms.v2 import functional as F

from mtvision.structures import VOID, LetterboxGeometry, Sample, fit_size, letterbox_geometry

__all__ = ["Letterbox", "RandomFitScale", "SemanticVoidFill"]


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

    def __init__(self, transform: Callable[[Sample], Sample], ignore_index: Mapping[str, int] | None = None) -> None:
        super().__init__()
        self.inner = transform
        self.ignore_index = dict(ignore_index or {})  # per task; the label space's default otherwise

    def forward(self, sample: Sample) -> Sample:
        semantic = {task: t for task, t in sample.targets.items() if _is_semantic(t)}
        void = {task: self.ignore_index.get(task, VOID) for task in semantic}
        shifted = {task: tv_tensors.Mask(_shift(t, void[task])) for task, t in semantic.items()}
        out = self.inner(sample.with_targets(**shifted))
        restored = {task: tv_tensors.Mask(_unshift(out.targets[task], void[task], t.dtype))
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
