"""The one dense head design every per-pixel task uses, and their shared base class.

:class:`DenseHead` is the semantic branch of Panoptic FPN (Kirillov et al., "Panoptic
Feature Pyramid Networks", CVPR 2019) made lighter: each pyramid level gets a single
3x3 conv + GroupNorm + ReLU (to ``hidden`` channels) at its own resolution, is upsampled to
the finest level, and the levels are summed; a 1x1 conv predicts ``out_channels`` maps
that are bilinearly upsampled to the input size. Convolving before upsampling keeps the
cost of the coarse levels small, and the sum lets every task read both fine detail and
coarse context. With 64 input channels, 4 levels and 32 hidden channels it has ~74k
parameters, so the shared backbone stays the bulk of the model.

:class:`DenseTask` holds what segmentation, depth, normals and edges share: building that
head, the per-image split of a batched map, mapping it back onto the user's image, and
overlaying a picture on the image.

Example:
    >>> import torch
    >>> head = DenseHead(channels=8, strides=[4, 8], out_channels=3)
    >>> feats = [torch.zeros(1, 8, 16, 16), torch.zeros(1, 8, 8, 8)]
    >>> head(feats, (64, 64)).shape
    torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from PIL import Image as PILImage
from torch import Tensor, nn
from torch.nn import functional as F

from mtvision.draw import blend
from mtvision.structures import ImageFrame, TaskInfo
from mtvision.tasks.base import Task


class DenseHead(nn.Module):
    """Per-level conv-GN-ReLU, upsample to the finest level, sum, 1x1 conv, upsample."""

    def __init__(self, channels: int, strides: list[int], out_channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.levels = nn.ModuleList(_conv_gn_relu(channels, hidden) for _ in strides)
        self.predict = nn.Conv2d(hidden, out_channels, kernel_size=1)

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> Tensor:
        if len(features) != len(self.levels):
            raise ValueError(f"DenseHead built for {len(self.levels)} pyramid levels, got {len(features)}")
        finest = features[0].shape[-2:]
        fused = self.levels[0](features[0])
        for level, x in zip(self.levels[1:], features[1:]):
            fused = fused + F.interpolate(level(x), size=finest, mode="bilinear", align_corners=False)
        return F.interpolate(self.predict(fused), size=image_size, mode="bilinear", align_corners=False)


def _conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv + GroupNorm (batch-size independent, unlike BatchNorm) + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(math.gcd(8, out_channels), out_channels),
        nn.ReLU(inplace=True),
    )


class DenseTask(Task):
    """Base of the per-pixel tasks: a :class:`DenseHead` with ``out_channels`` outputs.

    Subclasses turn the raw head output into their prediction in :meth:`activate`
    (identity for logits, softplus for depth, normalisation for normals).
    """

    label_map: ClassVar[bool] = False  # outputs are class indices: resample nearest, never blend

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], out_channels: int,
                 hidden: int = 32) -> None:
        super().__init__(name=name, info=info, channels=channels, strides=strides)
        self.head = DenseHead(channels, self.strides, out_channels, hidden)

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> Tensor:
        return self.activate(self.head(features, image_size))

    def activate(self, raw: Tensor) -> Tensor:
        return raw

    def to_image_frame(self, output: np.ndarray, frame: ImageFrame) -> np.ndarray:
        """The ``[..., H, W]`` map's content region at the image's size.

        Continuous maps (depth, edge probabilities) are resized bilinearly: the head already
        upsamples its stride-4 prediction bilinearly, so this continues the same smooth field
        instead of stamping ~15 px blocks when a 64 px input is enlarged to a 1000 px image.
        Label maps (``label_map``) use nearest, so no class appears between two others.
        """
        return frame.map_to_original(output, nearest=self.label_map)


def constant_map(values: Tensor, target: Tensor) -> Tensor:
    """``values`` (one per channel) at every pixel of ``[B, (C,) H, W]`` targets: ``[B, C, H, W]``."""
    return values.view(1, -1, 1, 1).expand(len(target), len(values), *target.shape[-2:]).clone()


def per_image(maps: Tensor) -> list[np.ndarray]:
    """Split a batched map into one float32 / int64 numpy array per image, on the CPU."""
    maps = maps.detach().cpu()
    return [m.numpy() for m in (maps.float() if maps.is_floating_point() else maps)]


def overlay(image: np.ndarray, picture: np.ndarray, alpha: float) -> np.ndarray:
    """``picture`` blended over ``image``, resized (nearest) to the image when sizes differ."""
    return blend(image, fit(picture, image.shape[:2]), alpha)


def fit(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize of an ``[h, w, 3]`` uint8 picture to ``(H, W)``, a no-op when equal."""
    if picture.shape[:2] == tuple(size):
        return picture
    return np.asarray(PILImage.fromarray(picture).resize((size[1], size[0]), PILImage.NEAREST))
