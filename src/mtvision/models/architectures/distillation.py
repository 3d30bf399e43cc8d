"""What the decoder-based architectures (PAD-Net, MTI-Net) share: per-task initial features,
their deep supervision, and multi-modal distillation with attention.

Both refine the shared FPN pyramid into per-task *initial features* ``F_t`` (two residual
blocks per task and scale), supervise them with a copy of the task's own head (deep
supervision), then let every task read the others' features through spatial attention —
Xu et al., "PAD-Net: Multi-Tasks Guided Prediction-and-Distillation Network for
Simultaneous Depth Estimation and Scene Parsing", CVPR 2018, its attention-guided multi-modal
distillation module, in the form the survey authors' code gives it (gate and message both
computed from the source task's features)::

    F_t^o = F_t + Σ_{s≠t} σ(W_{t,s} ∗ F_s) ⊙ (W'_{t,s} ∗ F_s)

with 3x3 convolutions ``W``, ``W'`` (no bias), as in the Vandenhende et al. code
(SimonVandenhende/Multi-Task-Learning-PyTorch, ``models/layers.py`` ``SABlock`` and
``models/padnet.py`` ``MultiTaskDistillationModule``); this is our own implementation, with
GroupNorm instead of BatchNorm so that a per-image result does not depend on the batch.

Who owns what (balancing counts a task's own modules with its head): ``W_{t,·}``, ``W'_{t,·}``
and the deep-supervision heads of ``t`` only ever serve task ``t``, so they are ``t``'s own;
the initial features ``F_t`` feed every task through the distillation, so they are shared.
Cost: ``T (T - 1)`` attention blocks of ``18 C²`` weights per distilled scale (quadratic in
the number of tasks, as in the papers).

Deep supervision: each initial-feature map of a task whose type allows it
(:attr:`~mtvision.tasks.Task.deep_supervision`; not detection, whose heads cost too much to
copy) gets ``create_task(kind, name, info, C, [stride])``; the task's ``"initial"`` loss is the
sum over its scales, weight 1 against the final loss — the task's one balancing weight
multiplies both, as ``loss_weights[task]`` does in the authors' ``losses/loss_schemes.py``
(``PADNetLoss``, ``MTINetLoss``) — on the present images only (partial labels).

There is no shared representation for MGDA-UB: the initial features sit after the FPN and
are read by every task, yet representation mode backpropagates the combined feature
gradient into the encoder only and gives the modules after it their own task's gradient
(:mod:`mtvision.balancing.backward`), so they would never train. Parameter mode is used.

Example:
    >>> import torch
    >>> distill = Distillation(["a", "b"], channels=4)
    >>> out = distill({"a": torch.zeros(1, 4, 8, 8), "b": torch.ones(1, 4, 8, 8)})
    >>> out["a"].shape
    torch.Size([1, 4, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mtvision.models.architectures.base import Architecture, Decoded, Trunk
from mtvision.models.specs import TaskSpec
from mtvision.tasks import Task, create_task, task_type

__all__ = ["DeepSupervision", "Distillation", "DistillationArchitecture", "ResidualBlock", "SpatialAttention",
           "initial_features"]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResidualBlock(nn.Module):
    """He et al. (2016) basic block: two 3x3 conv + GroupNorm, a 1x1 projection when widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), _norm(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), _norm(out_channels))
        self.skip: nn.Module = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), _norm(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def initial_features(in_channels: int, channels: int) -> nn.Sequential:
    """One task's initial features at one scale: two residual blocks (the papers' refinement)."""
    return nn.Sequential(ResidualBlock(in_channels, channels), ResidualBlock(channels, channels))


class SpatialAttention(nn.Module):
    """``σ(W ∗ F_s) ⊙ (W' ∗ F_s)``: what task ``t`` takes from task ``s``, gated per position."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels, channels, 3, padding=1, bias=False)  # W_{t,s}
        self.message = nn.Conv2d(channels, channels, 3, padding=1, bias=False)  # W'_{t,s}

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.gate(x)) * self.message(x)


class Distillation(nn.Module):
    """Multi-modal distillation at one scale: ``F_t^o = F_t + Σ_{s≠t} SpatialAttention_{t,s}(F_s)``."""

    def __init__(self, tasks: list[str], channels: int) -> None:
        super().__init__()
        self.attention = nn.ModuleDict({t: nn.ModuleDict({s: SpatialAttention(channels) for s in tasks if s != t})
                                        for t in tasks})

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for task, sources in self.attention.items():
            messages = [block(features[source]) for source, block in sources.items()]
            out[task] = features[task] + sum(messages) if messages else features[task]
        return out


class DeepSupervision(nn.Module):
    """Per task and scale, a copy of the task's head on its initial features (where its type allows)."""

    def __init__(self, tasks: Mapping[str, TaskSpec], channels: int, strides: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({
            name: nn.ModuleList(create_task(spec.kind, name, spec.info, channels, [s], **spec.options) for s in strides)
            for name, spec in tasks.items() if task_type(spec.kind).deep_supervision})

    def owned(self, task: str) -> list[nn.Module]:
        return [self.heads[task]] if task in self.heads else []

    def loss(self, task: str, features: list[Tensor], image_size: tuple[int, int], target: object,
             present: Tensor) -> Tensor | None:
        """Σ over scales of the head's loss on the present images' rows (None: not supervised)."""
        if task not in self.heads:
            return None
        heads: list[Task] = list(self.heads[task])  # type: ignore[arg-type]
        return sum((head.loss(head([x[present]], image_size), target)["loss"] for head, x in zip(heads, features)),
                   start=torch.zeros((), device=present.device))


class DistillationArchitecture(Architecture):
    """Backbone -> FPN (shared), then subclasses make per-task initial features at ``scales``
    (pyramid level indices) in :meth:`decode`; this base builds their deep supervision and
    one :class:`Distillation` per scale, and owns the hooks that both need."""

    representation = None
    no_representation = ("the per-task initial features after the FPN feed every task through the distillation: "
                         "representation mode would train only the encoder and each task's own modules, never them")

    def __init__(self, trunk: Trunk, scales: list[int]) -> None:
        super().__init__(trunk)
        self.backbone = trunk.backbone
        self.neck = trunk.neck()
        self.supervision = DeepSupervision(trunk.tasks, self.channels, [self.strides[i] for i in scales])
        self.distillation = nn.ModuleList(Distillation(self.task_names, self.channels) for _ in scales)

    def encode(self, images: Tensor) -> list[Tensor]:
        return self.neck(self.backbone(images))

    def distill(self, initial: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Each scale's initial features (one dict per scale), distilled at that scale."""
        return [distill(features) for distill, features in zip(self.distillation, initial)]

    def owned_modules(self, task: str) -> list[nn.Module]:
        return [*self.supervision.owned(task), *(d.attention[task] for d in self.distillation)]

    def auxiliary_loss(self, task: str, decoded: Decoded, image_size: tuple[int, int], target: object,
                       present: Tensor) -> Tensor | None:
        return self.supervision.loss(task, decoded.initial.get(task, []), image_size, target, present)
