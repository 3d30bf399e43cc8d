"""What ``mtvision compare`` writes: ``compare.json``, ``compare.csv``, ``report.md``, ``compare.png``.

All four are drawn from the one summary of :func:`~mtvision.analysis.comparison.summarise_comparison`,
so the table a person reads and the file a script reads cannot disagree.

Example:
    >>> summary = {"tasks": {"depth": {"abs_rel": False}}, "delta_m": {"multitask": {"mean": 1.5, "std": 0.5,
    ...            "per_task": {"depth": 1.5}, "per_task_std": {"depth": 0.5}, "skipped": []}},
    ...            "models": {"multitask": {"metrics": {"depth/abs_rel": 0.09}, "std": {"depth/abs_rel": 0.01}},
    ...                       "single/depth": {"metrics": {"depth/abs_rel": 0.1}, "std": {"depth/abs_rel": 0.0}}}}
    >>> metric_rows(summary)[0]
    ['depth', 'abs_rel ↓', '0.1000', '0.0900 ± 0.0100', '+10.00 %']
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only

from matplotlib import pyplot as plt  # noqa: E402

from mtvision.analysis.comparison import SEPARATE  # noqa: E402
from mtvision.analysis.delta_m import relative_change  # noqa: E402
from mtvision.analysis.measure import COST_KEYS  # noqa: E402

__all__ = ["cost_rows", "metric_rows", "write_outputs"]

_SCALE = {"params": 1e-6, "flops": 1e-9}  # to the unit COST_KEYS names (M, GFLOP)


def write_outputs(summary: dict[str, Any], folder: Path, command: str, device: str) -> list[Path]:
    """Write the four files into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in ("compare.json", "compare.csv", "report.md", "compare.png")]
    _atomic_text(paths[0], json.dumps({**summary, "command": command, "device": device}, indent=1, allow_nan=True))
    _write_csv(summary, paths[1])
    _atomic_text(paths[2], _report(summary, command, device))
    _plot(summary, paths[3])
    return paths


def metric_rows(summary: dict[str, Any]) -> list[list[str]]:
    """``[task, metric ↑/↓, single, multi ± std, relative change]`` for every test metric."""
    models, rows = summary["models"], []
    for task, metrics in summary["tasks"].items():
        single = models.get(f"single/{task}", {}).get("metrics", {})
        multi, std = models["multitask"]["metrics"], models["multitask"]["std"]
        for metric, up in metrics.items():
            key = f"{task}/{metric}"
            s, m = single.get(key, math.nan), multi.get(key, math.nan)
            change = relative_change(m, s, up) if s and math.isfinite(s) and math.isfinite(m) else math.nan
            rows.append([task, f"{metric} {'↑' if up else '↓'}", f"{s:.4f}", f"{m:.4f} ± {std.get(key, 0):.4f}",
                         f"{change:+.2f} %"])
    return rows


def cost_rows(summary: dict[str, Any]) -> list[list[str]]:
    """``[what (unit), one multi-task model, separate models, separate / multi]`` per cost."""
    multi, separate = summary["models"].get("multitask", {}), summary["models"].get(SEPARATE, {})
    rows = []
    for key, (what, unit, _) in COST_KEYS.items():
        if key in multi and key in separate:
            m, s = multi[key] * _SCALE.get(key, 1), separate[key] * _SCALE.get(key, 1)
            rows.append([f"{what} ({unit})", f"{m:.4g}", f"{s:.4g}", f"{s / m:.2f}×" if m else "–"])
    return rows


def _report(summary: dict[str, Any], command: str, device: str) -> str:
    dm = summary["delta_m"]["multitask"]
    lines = [f"# Multi-task vs single-task\n\nCommand: `{command}`  \nDevice: {device}  \n"
             f"Seeds: {summary['models']['multitask'].get('seeds', 1)}; every model selected on the validation split "
             "and scored once on the test split.\n",
             f"**Δm = {dm['mean']:+.2f} ± {dm['std']:.2f} %** (positive: the one model is better than the separate "
             "ones on average).\n", "## Test metrics\n",
             _table(["task", "metric", "single-task", "multi-task (± std)", "change"], metric_rows(summary)),
             "\n## Per task\n",
             _table(["task", "Δ (%)"], [[t, f"{v:+.2f} ± {dm['per_task_std'][t]:.2f}"] for t, v in dm["per_task"].items()]),
             "\n## Cost (one multi-task model vs the separate single-task models)\n",
             _table(["", "multi-task", "separate", "separate / multi"], cost_rows(summary)),
             "\nThe claim users read (\"three models of 300 MB vs one of 160 MB\") is the checkpoint row above, "
             "measured here for these tasks and this backbone.\n"]
    if dm["skipped"]:
        lines.append(f"\nLeft out of Δm (single-task value 0 or undefined): {', '.join(dm['skipped'])}.\n")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(row) + " |" for row in rows])


def _write_csv(summary: dict[str, Any], path: Path) -> None:
    models = summary["models"]
    metric_keys = sorted({k for m in models.values() for k in m.get("metrics", {})})
    header = ["model", *metric_keys, *(f"{k}_std" for k in metric_keys), *COST_KEYS]
    temp = path.with_suffix(".tmp")
    with temp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for name, model in models.items():
            metrics, std = model.get("metrics", {}), model.get("std", {})
            writer.writerow([name, *(metrics.get(k, "") for k in metric_keys), *(std.get(k, "") for k in metric_keys),
                             *(model.get(k, "") for k in COST_KEYS)])
    os.replace(temp, path)


def _plot(summary: dict[str, Any], path: Path) -> None:
    """Left: each task's primary test metric, single vs multi with seed std; right: cost ratios."""
    rows = [(task, next(iter(metrics))) for task, metrics in summary["tasks"].items()]
    models = summary["models"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [max(len(rows), 2), 3]})
    for offset, label, name in ((-0.2, "single-task", None), (0.2, "multi-task", "multitask")):
        values, errors = [], []
        for task, metric in rows:
            model = models.get(name or f"single/{task}", {})
            values.append(model.get("metrics", {}).get(f"{task}/{metric}", math.nan))
            errors.append(model.get("std", {}).get(f"{task}/{metric}", 0.0))
        left.bar([i + offset for i in range(len(rows))], values, 0.4, yerr=errors, capsize=3, label=label)
    left.set_xticks(range(len(rows)), [f"{t}\n{m}" for t, m in rows], fontsize=8)
    left.set_title("test metric (mean ± std over seeds)")
    left.legend()
    costs = [row for row in cost_rows(summary) if row[3] != "–"]
    right.barh([row[0] for row in costs], [float(row[3].rstrip("×")) for row in costs])
    right.axvline(1.0, color="black", linewidth=0.8)
    right.set_title("separate models / one multi-task model")
    right.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _atomic_text(path: Path, text: str) -> None:
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_text(text)
    os.replace(temp, path)
