"""Trivial predictors, scored with each task's own metric: what "it learned something" means.

For every target kind the baseline is the best *constant* of the obvious kind, fitted on
the very split it is scored on (so it is, if anything, stronger than a real trivial
model): the majority class everywhere (segmentation), the mean depth, the mean normal
direction, a constant edge probability, the class priors (classification). A trained
model must beat these clearly; the demo prints both side by side.

Example:
    >>> import torch
    >>> stats = TargetStats()
    >>> stats.update("depth", "depth", torch.tensor([[[[1.0, 3.0]]]]))
    >>> float(constant_prediction("depth", stats.mean("depth"), torch.zeros(1, 1, 1, 2))[0, 0, 0, 0])
    2.0
"""

from __future__ import annotations

from collections.abc import Iterable
import torch
from torch import Tensor
from torch.nn import functional as F

from mtvision.engine.evaluate import Results
from mtvision.structures import Batch
from mtvision.tasks import Task

SUPPORTED = ("semantic", "depth", "normals", "edges", "label")


class TargetStats:
    """Running sums of each task's targets, enough to derive its constant predictor."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}

    def update(self, name: str, kind: str, target: Tensor, num_classes: int = 0, ignore_index: int = 255) -> None:
        total, count = _sums(kind, target, num_classes, ignore_index)
        self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.counts[name] = self.counts[name] + count if name in self.counts else count

    def mean(self, name: str) -> Tensor:
        """Mean target of task ``name`` (per class / channel where that applies)."""
        return self.sums[name] / self.counts[name].clamp_min(1)


def _sums(kind: str, target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    target = target.detach().cpu()
    if kind == "semantic":
        valid = target[target != ignore_index].long()
        return torch.bincount(valid, minlength=num_classes).double(), torch.tensor(float(len(valid)))
    if kind == "depth":
        valid = target[target > 0].double()
        return valid.sum().reshape(1), torch.tensor(float(len(valid)))
    if kind == "normals":
        return target.double().sum(dim=(0, 2, 3)), torch.tensor(1.0)  # only the direction is used
    if kind == "edges":
        return target.double().sum().reshape(1), torch.tensor(float(target.numel()))
    if target.ndim == 2:  # multi-label 0/1 vectors
        return target.double().sum(dim=0), torch.tensor(float(len(target)))
    return torch.bincount(target.long(), minlength=num_classes).double(), torch.tensor(float(len(target)))


def constant_prediction(kind: str, mean: Tensor, like: Tensor, multi_label: bool = False) -> Tensor:
    """The constant prediction of ``kind`` in the head's output format, shaped like ``like``.

    ``like`` is the prediction's shape: ``[B, C, H, W]`` maps or ``[B, C]`` logits.
    """
    mean = mean.float()
    if kind == "semantic":  # logits of the majority class
        logits = F.one_hot(mean.argmax(), len(mean)).float()
        return logits.view(1, -1, 1, 1).expand(like.shape).clone()
    if kind == "depth":
        return torch.full(like.shape, float(mean[0]))
    if kind == "normals":
        return F.normalize(mean, dim=0).view(1, 3, 1, 1).expand(like.shape).clone()
    if kind == "edges":  # logit of the edge rate: every ODS threshold below it predicts "edge"
        return torch.full(like.shape, float(torch.logit(mean[0].clamp(1e-6, 1 - 1e-6))))
    if multi_label:  # per-class prevalence as log-odds
        return torch.logit(mean.clamp(1e-6, 1 - 1e-6)).expand(like.shape).clone()
    return mean.clamp_min(1e-12).log().expand(like.shape).clone()  # log prior: argmax = majority


def baseline_results(tasks: dict[str, Task], batches: Iterable[Batch]) -> Results:
    """Each supported task's metric for its constant predictor over ``batches`` (two passes).

    ``batches`` must be re-iterable (a DataLoader is). Task kinds without a meaningful
    constant (instances) are left out.
    """
    tasks = {name: task for name, task in tasks.items() if task.target_kind in SUPPORTED}
    stats = TargetStats()
    for batch in batches:
        for name in _labelled(tasks, batch):
            task = tasks[name]
            stats.update(name, task.target_kind, batch.targets[name], len(task.info.classes), task.info.ignore_index)
    metrics = {name: task.make_metric() for name, task in tasks.items()}
    for batch in batches:
        for name in _labelled(tasks, batch):
            task, target = tasks[name], batch.targets[name]
            like = torch.empty(_prediction_shape(task, target))
            prediction = constant_prediction(task.target_kind, stats.mean(name), like, task.info.multi_label)
            metrics[name].update(prediction, target)
    return {name: metric.compute() for name, metric in metrics.items()}


def _labelled(tasks: dict[str, Task], batch: Batch) -> list[str]:
    return [name for name in tasks if name in batch.targets and len(batch.targets[name])]


def _prediction_shape(task: Task, target: Tensor) -> tuple[int, ...]:
    """Shape of the head's output for these targets: channels first, then the target's pixels."""
    size = len(target)
    kind = task.target_kind
    if kind == "semantic":
        return (size, len(task.info.classes), *target.shape[-2:])
    if kind == "normals":
        return (size, 3, *target.shape[-2:])
    if kind in ("depth", "edges"):
        return (size, 1, *target.shape[-2:])
    return (size, len(task.info.classes))
