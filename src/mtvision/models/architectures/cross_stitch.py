"""Cross-stitch networks: one trunk per task, mixed by learned linear units (Misra et al. 2016).

Misra, Shrivastava, Gupta, Hebert, "Cross-stitch Networks for Multi-task Learning",
CVPR 2016, §3.2, eq. 1 and Fig. 3: every task has its own network; after a layer, a
cross-stitch unit replaces each task's activation by a learned linear combination of all
tasks' activations at the same place,

    x̃_t = Σ_s α_ts · x_s          (α a T × T matrix per unit),

and the next layer of task ``t`` reads ``x̃_t``. Here the "networks" are copies of the timm
trunk (:class:`~mtvision.models.stages.Stages`, deep-copied, so pretrained weights are in
each) and the units sit after the stages listed in ``stages``. Each task's FPN reads its
own trunk's (stitched) stage outputs, so each task has its own pyramid.

Options:
    stages: the stages a unit follows (0 = the first). Default: all but the last, i.e.
        between every two stages, where the unit decides what the next stage reads; a unit
        after the last stage would only mix the coarsest FPN input.
    per_channel: one α per channel (``α`` is ``T × T × C``, as in Vandenhende et al.'s
        survey code, the default) or one per task pair (Misra's eq. 1). Either way the
        units cost at most ``T² · C`` parameters each: nothing next to the trunks.
    init: ``(α_S, α_D)``, Misra's §4.1 initialisation ``(0.9, 0.1)`` by default: ``α_tt =
        α_S`` and ``α_ts = α_D / (T - 1)`` for ``s ≠ t``, so every row sums to 1 for any
        number of tasks and the activations keep their scale. ``(1, 0)`` is the identity:
        independent per-task models (``tests/models/architectures/test_cross_stitch.py``).

Cost: T tasks = T trunks and T FPNs, i.e. T× the parameters and FLOPs of hard sharing
before the heads — the price of every task keeping a network of its own; a branched tree
or MTAN is cheaper for many tasks.

Which parameters a task owns: through the units every trunk feeds every task, so a
trunk's stages up to the last unit are shared; task ``t`` owns only its FPN and the stages
of its trunk after the last unit (:meth:`CrossStitch.owned_modules`). There is no one
tensor every task reads (task ``t`` reads its trunk's levels, and the earlier levels are
upstream of the later ones), so representation-mode balancing falls back to parameters.

Example:
    >>> import torch
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> trunk = Trunk(Backbone("test_resnet.r160_in1k"), 16, {"a": None, "b": None, "c": None})
    >>> stitched = create_architecture("cross_stitch", trunk, {"per_channel": False})
    >>> sorted(stitched.units), (100 * stitched.units["0"].alpha[..., 0]).round().int().tolist()
    (['0', '1', '2'], [[90, 5, 5], [5, 90, 5], [5, 5, 90]])
    >>> [tuple(level.shape[1:]) for level in stitched.decode(stitched.encode(torch.zeros(1, 3, 64, 64))).pyramids["c"]]
    [(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtvision.models.architectures.base import Architecture, Decoded, Trunk, register
from mtvision.models.stages import Stages

__all__ = ["CrossStitch", "CrossStitchUnit"]


class CrossStitchUnit(nn.Module):
    """``x̃_t = Σ_s α_ts · x_s`` over the tasks' activations at one place (Misra's eq. 1).

    Args:
        tasks: number of tasks ``T``.
        channels: channels of the activations (used when ``per_channel``).
        per_channel: one ``α_ts`` per channel rather than one per task pair.
        init: ``(α_S, α_D)``: the diagonal, and the off-diagonal total of each row.
    """

    def __init__(self, tasks: int, channels: int, per_channel: bool = True,
                 init: tuple[float, float] = (0.9, 0.1)) -> None:
        super().__init__()
        same, other = init
        alpha = torch.full((tasks, tasks), other / max(tasks - 1, 1)).fill_diagonal_(same)
        self.alpha = nn.Parameter(alpha[..., None].repeat(1, 1, channels if per_channel else 1))

    def forward(self, activations: Sequence[Tensor]) -> list[Tensor]:
        mixed = torch.einsum("tsc,sbchw->tbchw", self.alpha, torch.stack(list(activations)))
        return list(mixed.unbind(0))


@register("cross_stitch")
class CrossStitch(Architecture):
    """One :class:`~mtvision.models.stages.Stages` copy and one FPN per task; a
    :class:`CrossStitchUnit` after each stage in ``stages``."""

    no_representation = ("no one tensor every task reads: each task reads its own trunk's stitched stage outputs, "
                         "and the earlier ones are upstream of the later ones")

    def __init__(self, trunk: Trunk, stages: Sequence[int] | None = None, per_channel: bool = True,
                 init: Sequence[float] = (0.9, 0.1)) -> None:
        super().__init__(trunk)
        base = Stages.of(trunk.backbone)
        self.stitched = _check_stages(stages, len(base), trunk.backbone.name)
        pair = _check_init(init)
        tasks = len(self.task_names)
        self.trunks = nn.ModuleDict({task: base if i == 0 else copy.deepcopy(base)
                                     for i, task in enumerate(self.task_names)})
        self.units = nn.ModuleDict({str(j): CrossStitchUnit(tasks, base.channels[j], per_channel, pair)
                                    for j in self.stitched})
        self.necks = nn.ModuleDict({task: trunk.neck() for task in self.task_names})

    def encode(self, images: Tensor) -> list[Tensor]:
        """Every task's stitched stage outputs, task after task (``T × levels`` maps)."""
        trunks = list(self.trunks.values())
        if not trunks:
            return []
        inputs, levels = [images] * len(trunks), [[] for _ in trunks]
        for j in range(len(self.strides)):
            inputs = [trunk.run(x, j, j + 1)[0] for trunk, x in zip(trunks, inputs)]
            if str(j) in self.units:
                inputs = self.units[str(j)](inputs)
            for task_levels, x in zip(levels, inputs):
                task_levels.append(x)
        return [x for task_levels in levels for x in task_levels]

    def decode(self, encoded: list[Tensor]) -> Decoded:
        n = len(self.strides)
        return Decoded({task: self.necks[task](encoded[i * n:(i + 1) * n]) for i, task in enumerate(self.task_names)})

    def owned_modules(self, task: str) -> list[nn.Module]:
        """The task's FPN and its trunk's stages after the last unit (what no other task reads)."""
        after = max(self.stitched, default=-1) + 1
        return [*self.trunks[task].stages[after:], self.necks[task]]


def _check_stages(stages: Sequence[int] | None, count: int, backbone: str) -> list[int]:
    """The sorted stage indices a unit follows; default all but the last."""
    if stages is None:
        return list(range(count - 1))
    chosen = list(stages)
    bad = [j for j in chosen if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < count]
    if bad or len(set(chosen)) != len(chosen):
        problem = f"{bad} not a stage index" if bad else "a stage listed twice"
        raise ValueError(f"cross_stitch option stages={chosen}: {problem}; {backbone} has {count} stages, so a unit "
                         f"may follow stages 0 to {count - 1} (default: 0 to {count - 2}, between every two)")
    return sorted(chosen)


def _check_init(init: Sequence[float]) -> tuple[float, float]:
    values = list(init) if isinstance(init, Sequence) and not isinstance(init, str) else [init]
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"cross_stitch option init={init!r}: give (α_S, α_D), the weight a task keeps on its own "
                         "activation and the total it takes from the others, e.g. [0.9, 0.1] (Misra) or [1, 0] "
                         "(identity)")
    return float(values[0]), float(values[1])
