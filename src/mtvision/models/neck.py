"""The neck: a feature pyramid with one channel count at every level.

Heads are lighter and interchangeable when every level they read has the same width, and
dense heads need the high-resolution levels to carry semantics from the coarse ones; an FPN
gives both. This is torchvision's :class:`~torchvision.ops.FeaturePyramidNetwork` behind the
list-in / list-out interface of :class:`~mtvision.models.Backbone`.

Example:
    >>> import torch
    >>> fpn = FPN([32, 48], [4, 8], channels=16)
    >>> [tuple(f.shape) for f in fpn([torch.zeros(1, 32, 16, 16), torch.zeros(1, 48, 8, 8)])]
    [(1, 16, 16, 16), (1, 16, 8, 8)]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork

__all__ = ["FPN"]


class FPN(nn.Module):
    """Top-down feature pyramid; output level ``i`` keeps the stride of input level ``i``.

    Args:
        in_channels: channels of each backbone level, finest first.
        in_strides: stride of each backbone level, finest first.
        channels: channels of every output level (what each head receives).
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], channels: int = 64) -> None:
        super().__init__()
        if len(in_channels) != len(in_strides) or not in_channels:
            raise ValueError(f"FPN needs one stride per input level, got channels {list(in_channels)} "
                             f"and strides {list(in_strides)}")
        if list(in_strides) != sorted(in_strides):
            raise ValueError(f"FPN inputs must be ordered finest first, got strides {list(in_strides)}")
        self.fpn = FeaturePyramidNetwork(list(in_channels), channels)
        self.channels = channels
        self.strides: list[int] = list(in_strides)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """One map per input level, finest first, each with ``channels`` channels."""
        if len(features) != len(self.strides):
            raise ValueError(f"FPN built for {len(self.strides)} levels got {len(features)} feature maps")
        levels = OrderedDict((str(i), f) for i, f in enumerate(features))
        return list(self.fpn(levels).values())
