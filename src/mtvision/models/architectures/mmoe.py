"""MMoE: a few expert trunks shared by all tasks, mixed per task by a softmax gate (Ma et al. 2018).

Ma, Zhao, Yi, Chen, Hong, Chi, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018, §4.2, eq. 5–6: ``n`` experts ``f_e`` are shared,
each task ``k`` has its own gate and reads

    f^k(x) = Σ_e g^k(x)_e · f_e(x),        g^k(x) = softmax(W_gk · x).

Adapted to images as LibMTL does (``LibMTL/architecture/MMoE.py``, median-research-group):
an expert is a whole image encoder, the gate is a linear map then a softmax over the
experts, one weight per expert and image. Here:

* an expert is the trunk's late stages plus an FPN (:class:`Expert`), after
  ``shared_stages`` stages every expert shares (the stem); it makes a pyramid;
* task ``t``'s pyramid is ``P_t^i = Σ_e g_t,e · P_e^i`` at every level ``i``: the experts'
  pyramids mixed, rather than their stage outputs mixed before one FPN, so that the
  experts' pyramids are a shared representation (below), and the FPN runs once per expert
  rather than once per task;
* the gate reads the experts' pyramids (:class:`ImageGate`: their global average pools, one
  weight per expert and image, the default; :class:`PositionGate`: a 1×1 conv, one weight
  per expert and position of each level). LibMTL's gate reads the raw pixels flattened,
  which ties it to one image size and sees no semantics; reading the pooled pyramids keeps
  every shared computation inside the representation.

Options:
    experts: number of experts (default 3, as LibMTL's examples).
    shared_stages: trunk stages before the experts (default 1). The first stage (stem and
        stride-4 blocks) is most of a ResNet's FLOPs and few of its parameters (measured at
        256 px: test_resnet 75 % of FLOPs / 7 % of parameters, resnet18 32 % / 1 %), so sharing
        it keeps the demo at 1.5× (test_resnet) to 2.4× (resnet18) the FLOPs of one trunk
        with 3 experts rather than 3×, while the experts keep nearly all the parameters
        (≈ experts × trunk). ``0`` gives LibMTL's full expert trunks.
    gate: ``"image"`` or ``"position"``.

Every expert feeds every task, so the stem and experts are shared; each task owns its gate.
The experts' pyramids are side by side, none computed from another, and every task reads
all of them: they are the shared representation of representation-mode balancing.

Example:
    >>> import torch
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> mmoe = create_architecture("mmoe", Trunk(Backbone("test_resnet.r160_in1k"), 16, {"a": None, "b": None}))
    >>> encoded = mmoe.encode(torch.zeros(1, 3, 64, 64))
    >>> len(encoded)  # 3 experts x 4 levels
    12
    >>> [tuple(level.shape[1:]) for level in mmoe.decode(encoded).pyramids["a"]]
    [(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)]
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from mtvision.models.architectures.base import Architecture, Decoded, Trunk, register
from mtvision.models.neck import FPN
from mtvision.models.stages import Stages

__all__ = ["MMoE", "Expert", "ImageGate", "PositionGate"]


class Expert(nn.Module):
    """The trunk's stages after the stem, and an FPN over the stem's levels and its own."""

    def __init__(self, stages: Stages, neck: FPN) -> None:
        super().__init__()
        self.stages = stages
        self.neck = neck

    def forward(self, stem: list[Tensor], x: Tensor) -> list[Tensor]:
        return self.neck([*stem, *self.stages.run(x, 0, len(self.stages))])


class ImageGate(nn.Module):
    """One task's softmax over the experts per image, from the experts' pooled pyramids."""

    def __init__(self, experts: int, channels: int, levels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(experts * levels * channels, experts)

    def forward(self, pyramids: list[list[Tensor]]) -> list[Tensor]:
        """The weights ``[B, E, 1, 1]`` for every level."""
        pooled = torch.cat([level.mean(dim=(-2, -1)) for pyramid in pyramids for level in pyramid], dim=1)
        weights = self.linear(pooled).softmax(dim=1)[..., None, None]
        return [weights] * len(pyramids[0])


class PositionGate(nn.Module):
    """One task's softmax over the experts at every position of every level (a 1×1 conv over
    the experts' maps at that level)."""

    def __init__(self, experts: int, channels: int, levels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(experts * channels, experts, 1) for _ in range(levels))

    def forward(self, pyramids: list[list[Tensor]]) -> list[Tensor]:
        """The weights ``[B, E, H_i, W_i]`` of each level ``i``."""
        return [conv(torch.cat(maps, dim=1)).softmax(dim=1) for conv, maps in zip(self.convs, zip(*pyramids))]


GATES: dict[str, type[nn.Module]] = {"image": ImageGate, "position": PositionGate}


@register("mmoe")
class MMoE(Architecture):
    """A shared stem, ``experts`` :class:`Expert` s, and one gate per task."""

    representation = "the experts' pyramids (experts x levels maps), which every task's gate mixes"

    def __init__(self, trunk: Trunk, experts: int = 3, shared_stages: int = 1,
                 gate: Literal["image", "position"] = "image") -> None:
        super().__init__(trunk)
        base = Stages.of(trunk.backbone)
        _check(experts, shared_stages, gate, len(base), trunk.backbone.name)
        s = shared_stages
        self.stem = Stages(list(base.stages[:s]), base.channels[:s], base.strides[:s])
        late = Stages(list(base.stages[s:]), base.channels[s:], base.strides[s:])
        self.experts = nn.ModuleList(Expert(late if e == 0 else copy.deepcopy(late), trunk.neck())
                                     for e in range(experts))
        self.gates = nn.ModuleDict({task: GATES[gate](experts, self.channels, len(self.strides))
                                    for task in self.task_names})

    def encode(self, images: Tensor) -> list[Tensor]:
        """Every expert's pyramid, expert after expert (``experts × levels`` maps)."""
        stem = self.stem(images)
        x = stem[-1] if stem else images
        return [level for expert in self.experts for level in expert(stem, x)]

    def decode(self, encoded: list[Tensor]) -> Decoded:
        n = len(self.strides)
        pyramids = [encoded[e * n:(e + 1) * n] for e in range(len(self.experts))]
        by_level = [torch.stack(maps, dim=1) for maps in zip(*pyramids)]  # [B, E, C, H, W] per level
        return Decoded({task: [(w.unsqueeze(2) * maps).sum(dim=1) for w, maps in zip(gate(pyramids), by_level)]
                        for task, gate in self.gates.items()})

    def owned_modules(self, task: str) -> list[nn.Module]:
        return [self.gates[task]]


def _check(experts: int, shared_stages: int, gate: str, stages: int, backbone: str) -> None:
    if isinstance(experts, bool) or not isinstance(experts, int) or experts < 1:
        raise ValueError(f"mmoe option experts={experts!r}: give a whole number of experts, at least 1 (default 3)")
    if isinstance(shared_stages, bool) or not isinstance(shared_stages, int) or not 0 <= shared_stages < stages:
        raise ValueError(f"mmoe option shared_stages={shared_stages!r}: {backbone} has {stages} stages and every "
                         f"expert needs one of its own, so shared_stages must be 0 to {stages - 1} (default 1)")
    if gate not in GATES:
        raise ValueError(f"mmoe option gate={gate!r}: one of {', '.join(GATES)}")
