"""``train.distill``: Learning without Forgetting (Li & Hoiem, TPAMI 2017) for the old tasks.

When a task is added from data that lacks the old tasks' labels, nothing in the loss keeps the
old tasks right while the shared trunk moves. LwF records the *old* model's outputs on the
*new* images and trains the new model's old-task heads to keep reproducing them:

    L = Σ_new L_task(y, ŷ)  +  λ Σ_old L_distill(ŷ_old(x), ŷ_θ(x))

Here the old model is frozen and run on every training batch -- the same augmented images the
new model sees, so a flip or crop changes both alike (LwF precomputes the targets once, on
un-augmented images; running the teacher each step costs one forward but keeps the targets
exact under augmentation). Each old task's distillation loss is added to that task's own loss
(:attr:`~mtvision.engine.step.StepParts.distill`), so balancing weighs it as that task.

Per task type (``Task.distill_loss``, in each task module): softened KL with T = 2 for
classification and per pixel for semantic segmentation, BCE to the old probabilities for
multi-label classification and edges, L1 for depth, 1 - cosine for normals. Detection is
left out: its pseudo-labels would be the old detector's post-processed boxes above a score,
a target of another kind (instances, not a tensor) with thresholds to tune, and its loss
already has no term for "no label" images; ``distill.tasks`` naming a detection task is an error.

Targets are used only on images *without* that task's label: where the label exists it is
the better target, and the task's own loss already uses it.

Example:
    >>> from mtvision.models import build_model
    >>> teacher = build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16)
    >>> Distiller(teacher, tasks=[], weight=1.0).tasks
    []
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtvision.structures import Batch
from mtvision.tasks.base import can_distill

__all__ = ["Distiller", "check_tasks"]


class Distiller:
    """The frozen old model and the tasks it teaches; called by ``train_step`` as ``StepParts.distill``."""

    def __init__(self, teacher: nn.Module, tasks: Sequence[str], weight: float = 1.0) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.tasks = list(tasks)
        self.weight = weight

    def to(self, device: torch.device) -> Distiller:
        self.teacher.to(device)
        return self

    @torch.no_grad()
    def targets(self, images: Tensor) -> dict[str, Tensor]:
        """The old model's raw predictions of the distilled tasks on ``images`` (the soft targets)."""
        self.teacher.eval()  # a model.train() elsewhere must not move its BatchNorm statistics
        features = self.teacher.features(images)
        decoded = self.teacher.architecture.decode(features)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        return {name: self.teacher.tasks[name](decoded.pyramids[name], size) for name in self.tasks}

    def __call__(self, model: nn.Module, features: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        """``{task: weight · distill_loss}`` over the batch's images that lack the task's label."""
        unlabelled = {name: ~batch.present[name] if name in batch.present else
                      torch.ones(len(batch.images), dtype=torch.bool, device=batch.images.device)
                      for name in self.tasks}
        wanted = [name for name in self.tasks if bool(unlabelled[name].any())]
        if not wanted or self.weight == 0:
            return {}
        targets = self.targets(batch.images)
        decoded = model.architecture.decode(features)
        size = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
        losses = {}
        for name in wanted:
            keep = unlabelled[name].to(batch.images.device)
            prediction = model.tasks[name](decoded.pyramids[name], size)
            losses[name] = self.weight * model.tasks[name].distill_loss(prediction[keep], targets[name][keep])
        return losses


def check_tasks(teacher: nn.Module, student: nn.Module, tasks: Sequence[str], where: str) -> None:
    """Every distilled task must be in both models, of one type and label space, with a distillation loss."""
    problems = []
    for name in tasks:
        if name not in teacher.tasks:
            problems.append(f"{name!r} is not a task of the old model (it has: {', '.join(teacher.tasks)})")
        elif name not in student.tasks:
            problems.append(f"{name!r} is not a configured task (tasks: {', '.join(student.tasks)})")
        elif type(teacher.tasks[name]) is not type(student.tasks[name]):
            problems.append(f"{name!r} is {teacher.tasks[name].kind} in the old model but {student.tasks[name].kind} "
                            f"here")
        elif teacher.tasks[name].info.classes != student.tasks[name].info.classes:
            problems.append(f"{name!r} has other classes in the old model: its outputs are no targets for this head")
        elif not can_distill(type(student.tasks[name])):
            problems.append(f"{name!r}: task type {student.tasks[name].kind!r} has no distillation loss "
                            f"(docs/transfer.md says why)")
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}; fix train.distill.tasks")
