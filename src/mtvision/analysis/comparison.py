"""One model for all tasks against one model per task: the numbers ``mtvision compare`` reports.

:func:`summarise_comparison` turns what the runs produced (each model's test metrics per
seed, and each model's measured cost) into the ``compare.json`` structure:

* ``tasks`` — ``{task: {metric: higher_is_better}}``, the directions the task modules state;
* ``models`` — per model (``"multitask"``, ``"single/<task>"``) the mean test metrics over
  seeds (``"task/metric"`` keys), their std, and its cost (see :mod:`~mtvision.analysis.measure`);
  ``"separate"`` is the set of single-task models taken together (parameters, FLOPs, disk,
  latency and step time add up; throughput combines harmonically, as the models run one after
  another; peak memory is the largest single peak plus the other models' weights, float32);
* ``delta_m`` — Δm of the multi-task model against the single-task models of the same seed
  (Maninis et al. 2019; Vandenhende et al., TPAMI 2021, §4), mean ± std over seeds and per task.

A metric whose single-task value is 0 or not finite has no relative change; it is left out
of Δm and listed under ``delta_m.multitask.skipped``.

Example:
    >>> tasks = {"depth": {"abs_rel": False}, "seg": {"miou": True}}
    >>> runs = {"multitask": [{"depth/abs_rel": 0.09, "seg/miou": 0.55}],
    ...         "single/depth": [{"depth/abs_rel": 0.10}], "single/seg": [{"seg/miou": 0.50}]}
    >>> summary = summarise_comparison(tasks, runs, costs={})
    >>> round(summary["delta_m"]["multitask"]["mean"], 3)  # (+10 % + 10 %) / 2
    10.0
"""

from __future__ import annotations

import math
from typing import Any

from mtvision.analysis.delta_m import delta_m, summarise
from mtvision.analysis.measure import COST_KEYS

__all__ = ["SEPARATE", "summarise_comparison", "single_task_metrics"]

SEPARATE = "separate"  # the set of single-task models, as one row of the cost table


def summarise_comparison(tasks: dict[str, dict[str, bool]], runs: dict[str, list[dict[str, float]]],
                         costs: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``compare.json``: ``runs`` maps each model to its test metrics, one dict per seed (seed order)."""
    models: dict[str, dict[str, Any]] = {}
    for name, per_seed in runs.items():
        mean, std = _mean_std(per_seed)
        models[name] = {"metrics": mean, "std": std, "seeds": len(per_seed), **costs.get(name, {})}
    singles = [name for name in costs if name.startswith("single/")]
    if singles:
        models[SEPARATE] = _separate_cost([costs[name] for name in singles])
    return {"tasks": tasks, "models": models, "delta_m": {"multitask": _delta_m(tasks, runs)}}


def single_task_metrics(runs: dict[str, list[dict[str, float]]], seed_index: int) -> dict[str, float]:
    """The single-task models' metrics of one seed, merged (each model reports only its task)."""
    merged: dict[str, float] = {}
    for name, per_seed in runs.items():
        if name.startswith("single/"):
            merged.update(per_seed[min(seed_index, len(per_seed) - 1)])
    return merged


def _delta_m(tasks: dict[str, dict[str, bool]], runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Δm per seed of the multi-task model against the single-task models of that seed."""
    values, per_task, skipped = [], {task: [] for task in tasks}, set()
    for index, multi in enumerate(runs["multitask"]):
        single = single_task_metrics(runs, index)
        usable = {task: {m: up for m, up in metrics.items() if _defined(single.get(f"{task}/{m}"))}
                  for task, metrics in tasks.items()}
        skipped |= {f"{task}/{m}" for task, metrics in tasks.items() for m in metrics if m not in usable[task]}
        result = delta_m(multi, single, {task: metrics for task, metrics in usable.items() if metrics})
        values.append(result.mean)
        for task, change in result.per_task.items():
            per_task[task].append(change)
    mean, std = summarise(values)
    return {"mean": mean, "std": std, "per_seed": values,
            "per_task": {task: summarise(changes)[0] for task, changes in per_task.items() if changes},
            "per_task_std": {task: summarise(changes)[1] for task, changes in per_task.items() if changes},
            "skipped": sorted(skipped)}


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value != 0


def _mean_std(per_seed: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = [key for key in per_seed[0] if all(key in seed for seed in per_seed)]
    pairs = {key: summarise([seed[key] for seed in per_seed]) for key in keys}
    return {key: pair[0] for key, pair in pairs.items()}, {key: pair[1] for key, pair in pairs.items()}


def _separate_cost(costs: list[dict[str, float]]) -> dict[str, float]:
    """The cost of running every single-task model, one after another (see the module docstring)."""
    total: dict[str, float] = {}
    for key, (_, _, rule) in COST_KEYS.items():
        values = [cost[key] for cost in costs if key in cost]
        if not values:
            continue
        if rule == "sum":
            total[key] = sum(values)
        elif rule == "harmonic":
            total[key] = 1.0 / sum(1.0 / v for v in values)
        else:  # the largest peak, while the other models' float32 weights stay resident
            weights_mb = [cost["params"] * 4 / 2**20 for cost in costs]
            worst = max(range(len(values)), key=values.__getitem__)
            total[key] = values[worst] + sum(w for i, w in enumerate(weights_mb) if i != worst)
    return total
