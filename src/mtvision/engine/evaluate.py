"""Validation: every task's metric, exact over the whole split and merged across DDP ranks.

Metrics accumulate sufficient statistics (see :class:`~mtvision.tasks.Metric`), so the
number reported is the metric of the split, not an average of per-batch metrics; under
``torchrun`` each rank evaluates its own shard and the metric objects are merged.

Example:
    >>> from mtvision.engine.evaluate import is_better
    >>> is_better(0.5, 0.4, higher=True), is_better(0.5, None, higher=False)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mtvision.engine.distributed import all_reduce_sum, merge_metrics, unwrap
from mtvision.engine.step import autocast
from mtvision.structures import Batch
from mtvision.tasks import Metric, Task, select

Results = dict[str, dict[str, float]]  # task -> metric -> value


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Batch], device: torch.device,
             amp_dtype: torch.dtype | None = None, test: bool = False) -> Results:
    """``{task: {metric: value, "loss": mean loss}}`` over every batch of ``loader``.

    The mean loss weighs each batch by its number of labelled images, so it is the loss of
    the split whatever the batch sizes. ``model`` is left in eval mode. ``test`` scores a test
    split once with each task's test metric (the literature's, where it is slower than the
    metric that selects checkpoints every epoch).
    """
    model = unwrap(model)  # no DDP wrapper: evaluation needs no gradient sync
    model.eval()
    tasks: dict[str, Task] = dict(model.tasks.items())
    metrics = {name: task.make_test_metric() if test else task.make_metric() for name, task in tasks.items()}
    loss_sums = torch.zeros(2, len(tasks), device=device, dtype=torch.float64)  # [sum of loss * n, n]
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            predictions, losses = model(batch.images, batch)
        for i, name in enumerate(tasks):
            if name not in predictions:
                continue
            present = batch.present[name]
            metrics[name].update(select(predictions[name], present), batch.targets[name])
            if "loss" in losses[name]:  # a detector computes no loss in eval mode
                count = present.sum()
                loss_sums[0, i] += losses[name]["loss"].double() * count
                loss_sums[1, i] += count
    return _results(merge_metrics(metrics), all_reduce_sum(loss_sums).cpu(), list(tasks))


def _results(metrics: dict[str, Metric], loss_sums: torch.Tensor, names: list[str]) -> Results:
    """Each task's metrics, and its mean loss where one was computed: a detector computes none
    in eval mode, and a ``loss`` column of NaN would read as a diverged run."""
    counts, means = loss_sums[1].tolist(), (loss_sums[0] / loss_sums[1].clamp_min(1)).tolist()
    return {name: {**metrics[name].compute(), **({"loss": means[i]} if counts[i] else {})}
            for i, name in enumerate(names)}


def higher_is_better(task: Task, metric: str) -> bool:
    """Direction of ``metric`` for ``task`` (losses: lower); unknown metrics raise with the valid names."""
    if metric == "loss":
        return False
    if metric not in task.metrics_higher_is_better:
        valid = ", ".join([*task.metrics_higher_is_better, "loss"])
        raise ValueError(f"task {task.name!r} has no metric {metric!r}; valid: {valid}")
    return task.metrics_higher_is_better[metric]


def is_better(score: float, best: float | None, higher: bool) -> bool:
    """Whether ``score`` beats ``best`` (anything beats no best yet; NaN never wins)."""
    if score != score:
        return False
    return best is None or (score > best if higher else score < best)
