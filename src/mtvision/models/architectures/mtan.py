"""MTAN: a shared trunk, and per-task soft attention on every stage (Liu, Johns, Davison 2019).

Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019, §3.1 and
Fig. 2: the trunk is shared; each task ``i`` learns, at every stage ``j``, a soft mask

    a_i^(j) = sigmoid(BN(conv1x1(ReLU(BN(conv1x1([p^(j) ; pool(â_i^(j-1))]))))))
    â_i^(j) = a_i^(j) ⊙ p^(j)

over the shared stage output ``p^(j)``, from that output and the task's attended output of
the stage before (eq. 1, mask block ``g`` of Fig. 2). The attended outputs of a task are its
features; here they go through ONE FPN shared by every task (run once per task), so each
task gets its own pyramid at the width every head reads, detection included.

Where this follows the paper loosely, and why: a timm stage is opaque, so the mask reads
the stage's output rather than the output of the stage's first layer (``u^(j)``); the
paper's shared 3×3 conv ``f^(j)`` that brings ``â^(j-1)`` to the next width is left out —
the previous attended output is max-pooled to the stage's size (the paper's pooling) and
concatenated, and the mask's first 1×1 conv does the channel change, per task.

Cost: the trunk once, a mask (two 1×1 convs) per task and stage, and the FPN once per task.
With every mask at 1 each task reads the shared stage outputs: hard sharing, exactly
(``tests/models/architectures/test_mtan.py`` checks it).

The shared stage outputs are computed from one another (``p^(j)`` from ``p^(j-1)``), so there
is no shared representation for representation-mode balancing: parameter mode is used.

Example:
    >>> import torch
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> mtan = create_architecture("mtan", Trunk(Backbone("test_resnet.r160_in1k"), 16, {"a": None, "b": None}))
    >>> decoded = mtan.decode(mtan.encode(torch.zeros(1, 3, 64, 64)))
    >>> [tuple(level.shape[1:]) for level in decoded.pyramids["a"]]
    [(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)]
    >>> len(mtan.owned_modules("a")[0])  # one attention module per stage
    4
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtvision.models.architectures.base import Architecture, Decoded, Trunk, register
from mtvision.models.stages import Stages

__all__ = ["MTAN", "StageAttention"]


class StageAttention(nn.Module):
    """One task's soft mask at one stage (block ``g`` of Liu et al.'s Fig. 2), applied to the
    shared stage output.

    Args:
        channels: channels of the shared stage output ``p^(j)`` (and of the mask).
        previous: channels of the task's attended output of the stage before (0 at the first).
    """

    def __init__(self, channels: int, previous: int = 0) -> None:
        super().__init__()
        self.mask = nn.Sequential(
            nn.Conv2d(channels + previous, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Sigmoid())

    def forward(self, shared: Tensor, previous: Tensor | None = None) -> Tensor:
        """``â = a ⊙ p``: the shared output ``p`` weighted by the mask ``a`` in (0, 1)."""
        x = shared
        if previous is not None:
            x = torch.cat([shared, F.adaptive_max_pool2d(previous, shared.shape[-2:])], dim=1)
        return self.mask(x) * shared


@register("mtan")
class MTAN(Architecture):
    """Shared :class:`~mtvision.models.stages.Stages` and FPN; per task, one
    :class:`StageAttention` per stage (the task's own parameters)."""

    no_representation = ("the shared stage outputs are computed from one another (stage j from stage j-1): a "
                         "per-task gradient on all of them would count the earlier stages twice")

    def __init__(self, trunk: Trunk) -> None:
        super().__init__(trunk)
        self.trunk = Stages.of(trunk.backbone)
        self.neck = trunk.neck()
        widths = self.trunk.channels
        self.attention = nn.ModuleDict({
            task: nn.ModuleList(StageAttention(c, widths[j - 1] if j else 0) for j, c in enumerate(widths))
            for task in self.task_names})

    def encode(self, images: Tensor) -> list[Tensor]:
        """The shared stage outputs ``p^(1) .. p^(L)``, finest first."""
        return self.trunk(images)

    def decode(self, encoded: list[Tensor]) -> Decoded:
        return Decoded({task: self.neck(self.attend(task, encoded)) for task in self.task_names})

    def attend(self, task: str, shared: list[Tensor]) -> list[Tensor]:
        """``task``'s attended stage outputs ``â^(1) .. â^(L)``, each from the one before."""
        attended: list[Tensor] = []
        for attention, p in zip(self.attention[task], shared):
            attended.append(attention(p, attended[-1] if attended else None))
        return attended

    def owned_modules(self, task: str) -> list[nn.Module]:
        return [self.attention[task]]
