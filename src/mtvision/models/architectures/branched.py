"""A branched tree: every task shares the trunk up to a stage, then each group has its own rest.

The tree of Vandenhende et al., "Branched Multi-Task Networks: Deciding What Layers To
Share" (BMVC 2020) and of the task-grouping papers (Standley et al. ICML 2020; Fifty et al.
NeurIPS 2021, TAG), in their simplest form: one branch point. Tasks in one group share
everything; groups share the first ``branch_at`` stages. ``mtvision affinity`` writes
``model.branches`` and ``model.branch_at`` for it.

Each group gets its own copy of the stages after the branch point (pretrained weights
included) and its own FPN, which reads the shared stages' outputs and the group's own, so
its heads (detection included) read a full pyramid of their branch. With one group this is
hard sharing exactly.

Example:
    >>> import torch
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> trunk = Trunk(Backbone("test_resnet.r160_in1k"), 16, {"a": None, "b": None, "c": None})
    >>> tree = create_architecture("branched", trunk, {"branches": [["a", "b"], ["c"]], "branch_at": 2})
    >>> pyramids = tree.decode(tree.encode(torch.zeros(1, 3, 64, 64))).pyramids
    >>> pyramids["a"] is pyramids["b"], pyramids["a"] is pyramids["c"]
    (True, False)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from mtvision.models.architectures.base import Architecture, Decoded, Trunk, register
from mtvision.models.stages import Stages

__all__ = ["Branched", "branch_problems"]


def branch_problems(branches: Sequence[Sequence[str]], tasks: Sequence[str]) -> list[str]:
    """What is wrong with ``branches`` for ``tasks``: every task must be in exactly one branch."""
    listed = [task for group in branches for task in group]
    names = dict.fromkeys(listed)
    return ([f"{task!r} is listed {listed.count(task)} times" for task in names if listed.count(task) > 1]
            + [f"{task!r} is not a task of the model" for task in names if task not in tasks]
            + [f"task {task!r} is in no branch" for task in tasks if task not in names]
            + (["a branch is empty"] if any(not group for group in branches) else []))


class _Branch(nn.Module):
    """One group's own stages after the branch point and its own neck."""

    def __init__(self, stages: Stages, trunk: Trunk) -> None:
        super().__init__()
        self.stages = stages
        self.neck = trunk.neck()


@register("branched")
class Branched(Architecture):
    """Shared stages ``[0, branch_at)``, then per group its stages ``[branch_at, end)`` and FPN.

    Args:
        branches: the task groups, e.g. ``[["depth", "normals"], ["semseg", "objects"]]``.
        branch_at: how many trunk stages all tasks share, 1 to the number of stages (all
            stages shared = only the necks are per group).
    """

    no_representation = ("the shared stages' outputs feed every branch at several pyramid levels and are "
                         "computed from one another")

    def __init__(self, trunk: Trunk, branches: Sequence[Sequence[str]] = (), branch_at: int = 0) -> None:
        super().__init__(trunk)
        problems = branch_problems(branches, self.task_names) or ["no branches given"] * (not branches)
        if problems:
            raise ValueError(f"model.branches {[list(g) for g in branches]}: {'; '.join(problems)} "
                             f"(tasks: {', '.join(self.task_names)})")
        stages = Stages.of(trunk.backbone)
        if not 1 <= branch_at <= len(stages):
            raise ValueError(f"model.branch_at={branch_at}: {trunk.backbone.name} has {len(stages)} stages; "
                             f"branch_at must be 1 to {len(stages)} (stages shared by every task)")
        channels, strides = stages.channels, stages.strides
        self.trunk = Stages(list(stages.stages[:branch_at]), channels[:branch_at], strides[:branch_at])
        tail = Stages(list(stages.stages[branch_at:]), channels[branch_at:], strides[branch_at:])
        self.branches = nn.ModuleList(_Branch(copy.deepcopy(tail), trunk) for _ in branches)
        self.groups = [list(group) for group in branches]

    def encode(self, images: Tensor) -> list[Tensor]:
        return self.trunk(images)

    def decode(self, encoded: list[Tensor]) -> Decoded:
        pyramids = {}
        for group, branch in zip(self.groups, self.branches):
            own = branch.stages.run(encoded[-1], 0, len(branch.stages))
            pyramid = branch.neck([*encoded, *own])
            pyramids.update({task: pyramid for task in group})
        return Decoded(pyramids)

    def owned_modules(self, task: str) -> list[nn.Module]:
        """A branch with one task is that task's own."""
        return [branch for group, branch in zip(self.groups, self.branches) if group == [task]]

    def parameter_parts(self) -> dict[str, int]:
        parts = {"trunk": sum(p.numel() for p in self.trunk.parameters())}
        for group, branch in zip(self.groups, self.branches):
            parts[f"branch/{'+'.join(group)}"] = sum(p.numel() for p in branch.parameters())
        return parts
