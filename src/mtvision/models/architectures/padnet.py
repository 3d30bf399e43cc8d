"""PAD-Net (Xu, Ouyang, Wang, Sebe, "PAD-Net: Multi-Tasks Guided Prediction-and-Distillation
Network for Simultaneous Depth Estimation and Scene Parsing", CVPR 2018), with its attention-guided
multi-modal distillation.

Prediction, then distillation: from the shared features, each task gets *initial features*
``F_t`` and an *initial prediction* from them (deep supervision); a multi-modal distillation
module lets each task take from the others through attention,
``F_t^o = F_t + Σ_{s≠t} σ(W_{t,s} ∗ F_s) ⊙ (W'_{t,s} ∗ F_s)`` (the attention-guided variant),
and the final predictions read ``F_t^o``. The building blocks are shared with
MTI-Net in :mod:`~mtvision.models.architectures.distillation`; the layout follows the
Vandenhende et al. code (SimonVandenhende/Multi-Task-Learning-PyTorch, ``models/padnet.py``).

Here the shared features are the FPN pyramid (backbone + neck). ``F_t`` is made at one
pyramid level, ``level`` (default 0, stride 4): the survey's PAD-Net distils at HRNet's
1/4-resolution output, the dense tasks the method was made for need the fine level, and
the FPN's top-down path has already brought the coarse context into it. Distillation costs
``T (T - 1)`` attention blocks at that resolution; ``level=1`` quarters their FLOPs.

**Each task's pyramid is the shared pyramid with ``F_t^o`` in place of level ``level``.**
Every head type then reads a full pyramid — detection's RPN and RoI heads need several
strides, classification pools every level, the dense heads fuse them — so detection (which
PAD-Net never had) works unchanged, and the distilled features reach every head at their
own stride without a second neck per task. The paper's heads read ``F_t^o`` alone; reading
the other shared levels beside it is our addition, the price of one interface for all heads.

Deep supervision (initial losses, weight 1 against the final loss, on present images only), what is
shared and what a task owns, and why representation-mode balancing falls back to parameter
mode: see :mod:`~mtvision.models.architectures.distillation`.

Example:
    >>> import torch
    >>> from mtvision.models import TaskSpec
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> from mtvision.structures import TaskInfo
    >>> tasks = {"depth": TaskSpec("depth", TaskInfo(kind="depth")), "edges": TaskSpec("edges", TaskInfo(kind="edges"))}
    >>> pad = create_architecture("padnet", Trunk(Backbone("test_resnet.r160_in1k"), 16, tasks), {"level": 1})
    >>> decoded = pad.decode(pad.encode(torch.zeros(1, 3, 64, 64)))
    >>> [tuple(f.shape[-2:]) for f in decoded.pyramids["depth"]], tuple(decoded.initial["depth"][0].shape)
    ([(16, 16), (8, 8), (4, 4), (2, 2)], (1, 16, 8, 8))
"""

from __future__ import annotations

from torch import Tensor, nn

from mtvision.models.architectures.base import Decoded, Trunk, register
from mtvision.models.architectures.distillation import DistillationArchitecture, initial_features

__all__ = ["PADNet"]


@register("padnet")
class PADNet(DistillationArchitecture):
    """Shared FPN -> per-task initial features at ``level`` -> distillation -> the pyramid with it."""

    def __init__(self, trunk: Trunk, level: int = 0) -> None:
        levels = len(trunk.backbone.strides)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < levels:
            raise ValueError(f"architecture 'padnet': level={level!r} is not a pyramid level; the trunk has "
                             f"{levels} (strides {list(trunk.backbone.strides)}): pick 0 (finest) to {levels - 1}")
        super().__init__(trunk, scales=[level])
        self.level = level
        self.initial = nn.ModuleDict({t: initial_features(self.channels, self.channels) for t in self.task_names})

    def decode(self, encoded: list[Tensor]) -> Decoded:
        shared = encoded[self.level]
        initial = {task: refine(shared) for task, refine in self.initial.items()}
        (distilled,) = self.distill([initial])
        before, after = encoded[:self.level], encoded[self.level + 1:]
        pyramids = {task: [*before, distilled[task], *after] for task in self.task_names}
        return Decoded(pyramids, {task: [features] for task, features in initial.items()})
