"""MTI-Net (Vandenhende, Georgoulis, Van Gool, "MTI-Net: Multi-Scale Task Interaction
Networks for Multi-Task Learning", ECCV 2020), Sec. 3: the overview figure and the
feature propagation module's figure.

PAD-Net's prediction-then-distillation at every scale, because tasks that look alike at
one receptive field may not at another. Over the shared FPN pyramid:

1. **Initial task features and predictions at every scale**, coarsest first: at scale ``i``
   task ``t`` refines the pyramid level ``P_i`` concatenated with what the coarser scale
   propagated for it (two residual blocks), and a copy of its head predicts from them (deep
   supervision at every scale).
2. **Feature propagation module** (FPM), from scale ``i + 1`` to ``i``: the
   tasks' initial features are concatenated, a non-linear ``f`` (two residual blocks through
   ``T·C / fpm_reduction`` channels and a 1x1 conv) gives per-channel attention that a softmax
   spreads over the tasks, the selected features are reduced to ``C`` channels (a residual
   block) and each task adds its squeeze-and-excitation of them to its own features; the
   result is upsampled and refines the finer scale's initial features.
3. **Multi-modal distillation at every scale**: PAD-Net's
   ``F_t^o = F_t + Σ_{s≠t} σ(W_{t,s} ∗ F_s) ⊙ (W'_{t,s} ∗ F_s)``, one module per scale.
4. **Feature aggregation**: each task's pyramid is its distilled features at every scale.
   The dense heads fuse all levels (upsample and sum) — that is MTI-Net's final aggregation
   — and classification pools them; detection reads the distilled pyramid as it would read
   an FPN, so it gets the multi-scale task interaction without a change.

Layout after the authors' code (SimonVandenhende/Multi-Task-Learning-PyTorch,
``models/mti_net.py``: ``InitialTaskPredictionModule``, ``FPM``, ``MultiTaskDistillationModule``;
``models/layers.py``: ``SEBlock``); the code here is our own. One deliberate difference: their
FPM reshapes the concatenated ``[T·C]`` channels as ``[C, T]`` before the softmax, which
mixes channels of different tasks; here the softmax runs over the task axis of ``[T, C]``, as
the paper describes. The deep-supervision losses of a task are summed over its scales with
weight 1 against the final loss (as ``MTINetLoss`` in the authors' ``losses/loss_schemes.py``); what a task owns and why
representation-mode balancing falls back to parameter mode: see
:mod:`~mtvision.models.architectures.distillation`.

Cost, ``T`` tasks, ``L`` scales, ``C`` channels: ``2TL`` residual blocks of initial features,
``T(T-1)L`` attention blocks (``18C²`` weights each) and ``L-1`` FPMs whose ``f`` is
``~ 9 (TC)² / fpm_reduction`` weights — quadratic in the number of tasks.

Example:
    >>> import torch
    >>> from mtvision.models import TaskSpec
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> from mtvision.structures import TaskInfo
    >>> tasks = {"depth": TaskSpec("depth", TaskInfo(kind="depth")), "edges": TaskSpec("edges", TaskInfo(kind="edges"))}
    >>> mti = create_architecture("mti_net", Trunk(Backbone("test_resnet.r160_in1k"), 16, tasks))
    >>> decoded = mti.decode(mti.encode(torch.zeros(1, 3, 64, 64)))
    >>> [tuple(f.shape[-2:]) for f in decoded.pyramids["edges"]], len(decoded.initial["edges"])
    ([(16, 16), (8, 8), (4, 4), (2, 2)], 4)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtvision.models.architectures.base import Decoded, Trunk, register
from mtvision.models.architectures.distillation import DistillationArchitecture, ResidualBlock, initial_features

__all__ = ["FeaturePropagation", "MTINet", "SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    """Hu et al. (CVPR 2018): channels reweighted by a gate computed from their global means."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                  nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x.mean(dim=(2, 3)))[:, :, None, None]


class FeaturePropagation(nn.Module):
    """The FPM: every task's features at one scale -> what each task carries to the finer scale."""

    def __init__(self, tasks: list[str], channels: int, reduction: int) -> None:
        super().__init__()
        width, hidden = len(tasks) * channels, max(1, len(tasks) * channels // reduction)
        self.tasks = list(tasks)
        self.attention = nn.Sequential(ResidualBlock(width, hidden), ResidualBlock(hidden, hidden),
                                       nn.Conv2d(hidden, width, 1))  # the paper's non-linear f
        self.reduce = ResidualBlock(width, channels)
        self.excite = nn.ModuleDict({t: SqueezeExcitation(channels) for t in tasks})

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        stacked = torch.stack([features[t] for t in self.tasks], dim=1)  # [B, T, C, H, W]
        b, n, c, h, w = stacked.shape
        concat = stacked.view(b, n * c, h, w)
        mask = self.attention(concat).view(b, n, c, h, w).softmax(dim=1)  # each channel spread over the tasks
        shared = self.reduce((mask * stacked).view(b, n * c, h, w))
        return {t: excite(shared) + features[t] for t, excite in self.excite.items()}


@register("mti_net")
class MTINet(DistillationArchitecture):
    """Shared FPN -> per-scale initial features (coarse to fine, through FPMs) -> per-scale
    distillation -> each task's pyramid of distilled features."""

    def __init__(self, trunk: Trunk, fpm_reduction: int = 4) -> None:
        if isinstance(fpm_reduction, bool) or not isinstance(fpm_reduction, int) or fpm_reduction < 1:
            raise ValueError(f"architecture 'mti_net': fpm_reduction={fpm_reduction!r} must be a positive integer "
                             "(the FPM's non-linear f squeezes the tasks' concatenated T·C channels by it; "
                             "4 in the authors' code)")
        levels = len(trunk.backbone.strides)
        super().__init__(trunk, scales=list(range(levels)))
        coarsest, c = levels - 1, self.channels
        self.initial = nn.ModuleList(
            nn.ModuleDict({t: initial_features(c if i == coarsest else 2 * c, c) for t in self.task_names})
            for i in range(levels))
        # propagation[i] carries scale i + 1 to scale i; none without tasks (nothing to concatenate)
        self.propagation = nn.ModuleList(FeaturePropagation(self.task_names, c, fpm_reduction)
                                         for _ in range(coarsest if self.task_names else 0))

    def decode(self, encoded: list[Tensor]) -> Decoded:
        initial: list[dict[str, Tensor]] = [{} for _ in encoded]
        carried: dict[str, Tensor] = {}
        for i in reversed(range(len(encoded))):
            initial[i] = {t: refine(_with_carried(encoded[i], carried.get(t))) for t, refine in self.initial[i].items()}
            carried = self.propagation[i - 1](initial[i]) if i > 0 and self.propagation else {}
        distilled = self.distill(initial)
        return Decoded({t: [scale[t] for scale in distilled] for t in self.task_names},
                       {t: [scale[t] for scale in initial] for t in self.task_names})


def _with_carried(level: Tensor, carried: Tensor | None) -> Tensor:
    """The pyramid level, concatenated with the coarser scale's propagated features upsampled to it."""
    if carried is None:
        return level
    upsampled = F.interpolate(carried, size=level.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([level, upsampled], dim=1)
