"""Δm — the multi-task model's mean relative change against single-task baselines
(Maninis et al. 2019, "Attentive single-tasking of multiple tasks", CVPR; Vandenhende et
al. 2021, "Multi-task learning for dense prediction tasks: a survey", TPAMI, §4):

    Δm = (1/T) Σ_t (1/N_t) Σ_j (−1)^{l_tj} (M_m,tj − M_s,tj) / M_s,tj × 100 %,

with ``l_tj = 1`` when lower is better, so a positive Δm is always an improvement. Every task
weighs the same whatever its number of metrics ``N_t``: the inner mean is taken first
(``DeltaM.per_task``), then the mean over tasks. Metrics are keyed ``"task/metric"``, as the
engine logs them; only metrics present in the multi-task results, the single-task results
and ``directions`` count, so a baseline that logs extra metrics changes nothing.

One run is one draw: compare means over seeds with ``summarise`` (mean, sample std).

Example:
    >>> multi = {"seg/miou": 0.44, "depth/rmse": 0.60}
    >>> single = {"seg/miou": 0.40, "depth/rmse": 0.50}
    >>> directions = {"seg": {"miou": True}, "depth": {"rmse": False}}
    >>> result = delta_m(multi, single, directions)
    >>> round(result.per_task["seg"], 6), round(result.per_task["depth"], 6), round(result.mean, 6)
    (10.0, -20.0, -5.0)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class DeltaM:
    """Δm in percent, and each task's mean relative change in percent (positive = better)."""

    mean: float
    per_task: dict[str, float]


def relative_change(multi: float, single: float, higher_is_better: bool) -> float:
    """``±(multi − single) / single × 100``, signed so that an improvement is positive.

    Raises ``ZeroDivisionError`` when ``single`` is 0: the relative change is undefined.
    """
    if single == 0:
        raise ZeroDivisionError("single-task value is 0: the relative change is undefined")
    sign = 1.0 if higher_is_better else -1.0
    return sign * (multi - single) / single * 100.0


def delta_m(
    multi: dict[str, float], single: dict[str, float], directions: dict[str, dict[str, bool]]
) -> DeltaM:
    """Δm over the tasks of ``directions`` (``{task: {metric: higher_is_better}}``).

    Raises ``ValueError`` naming a task that has no metric in all three mappings, and one
    naming a metric whose single-task value is 0.
    """
    per_task = {task: _task_change(task, metrics, multi, single) for task, metrics in directions.items()}
    if not per_task:
        raise ValueError("directions names no task: give {task: {metric: higher_is_better}}")
    return DeltaM(mean=sum(per_task.values()) / len(per_task), per_task=per_task)


def _task_change(task: str, metrics: dict[str, bool], multi: dict[str, float], single: dict[str, float]) -> float:
    keys = [(f"{task}/{name}", up) for name, up in metrics.items()]
    shared = [(key, up) for key, up in keys if key in multi and key in single]
    if not shared:
        wanted = ", ".join(key for key, _ in keys) or "(none)"
        raise ValueError(f"task {task!r}: none of its metrics ({wanted}) is in both the multi- and single-task results")
    changes = []
    for key, up in shared:
        if single[key] == 0:
            raise ValueError(f"metric {key!r}: single-task value is 0, the relative change is undefined")
        changes.append(relative_change(multi[key], single[key], up))
    return sum(changes) / len(changes)


def summarise(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) over seeds; the std of one value is 0.0.

    Example:
        >>> summarise([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    if not values:
        raise ValueError("summarise needs at least one value")
    mean = math.fsum(values) / len(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0
