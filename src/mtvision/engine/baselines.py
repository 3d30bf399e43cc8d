"""Trivial predictors, scored with each task's own metric: what "it learned something" means.

For every task type with a meaningful constant the baseline is the best *constant* of the
obvious kind, fitted on the very split it is scored on (so it is, if anything, stronger than
a real trivial model): the majority class everywhere (segmentation), the mean depth, the mean
normal direction, a constant edge probability, the class priors (classification). Each task
type says what its constant is (:meth:`~mtvision.tasks.Task.baseline_statistics` and
:meth:`~mtvision.tasks.Task.constant_prediction`); this module only runs the two passes.
A trained model must beat these clearly; the demo prints both side by side.

Example:
    >>> import torch
    >>> from mtvision.structures import Batch, TaskInfo
    >>> from mtvision.tasks import create_task
    >>> depth = create_task("depth", "depth", TaskInfo(kind="depth"), channels=8, strides=[4])
    >>> batch = Batch(torch.zeros(1, 3, 1, 2), {"depth": torch.tensor([[[[1.0, 3.0]]]])}, {"depth": torch.tensor([True])}, [{}])
    >>> baseline_results({"depth": depth}, [batch])["depth"]["abs_rel"]  # a constant 2 m against 1 m and 3 m
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from mtvision.engine.evaluate import Results
from mtvision.structures import Batch
from mtvision.tasks import Task


def baseline_results(tasks: dict[str, Task], batches: Iterable[Batch]) -> Results:
    """Each task's metric for its constant predictor over ``batches`` (two passes).

    ``batches`` must be re-iterable (a DataLoader is). Tasks without a meaningful constant
    (instances) are left out.
    """
    sums: dict[str, tuple[Tensor, Tensor]] = {}
    for batch in batches:
        for name in _labelled(tasks, batch):
            statistics = tasks[name].baseline_statistics(_on_cpu(batch.targets[name]))
            if statistics is not None:
                sums[name] = statistics if name not in sums else (sums[name][0] + statistics[0],
                                                                  sums[name][1] + statistics[1])
    metrics = {name: tasks[name].make_metric() for name in sums}
    for batch in batches:
        for name in _labelled(metrics, batch):
            total, count = sums[name]
            target = batch.targets[name]
            metrics[name].update(tasks[name].constant_prediction(total / count.clamp_min(1), target), target)
    return {name: metric.compute() for name, metric in metrics.items()}


def _labelled(tasks: dict[str, Any], batch: Batch) -> list[str]:
    return [name for name in tasks if name in batch.targets and len(batch.targets[name])]


def _on_cpu(target: Any) -> Any:
    return target.detach().cpu() if isinstance(target, Tensor) else target
