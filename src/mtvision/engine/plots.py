"""``results.png``: one row of curves per task, named at its left (its train/val loss, then
its metrics, a family such as ``within_11_25 / within_22_5 / within_30`` or ``bbox_ap /
bbox_ap50 / bbox_ap75`` sharing one panel), then a row for the run (lr, task weights);
``balance.png`` and ``conflicts.png``: the balancing diagnostics.

Reads the same flat rows as ``results.csv`` (``split/task/metric`` columns), so a plot can be
redrawn from any finished run with ``plot_results(read_results(csv), png)``.

Example:
    >>> import tempfile
    >>> rows = [{"epoch": 1, "train/depth/loss": 0.9, "val/depth/abs_rel": 0.5, "lr": 1e-3},
    ...         {"epoch": 2, "train/depth/loss": 0.5, "val/depth/abs_rel": 0.3, "lr": 5e-4}]
    >>> plot_results(rows, Path(tempfile.mkdtemp()) / "results.png").name
    'results.png'
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed (servers, CI, DDP ranks)

import matplotlib.pyplot as plt  # noqa: E402

from mtvision.balancing.diagnostics import PREFIX as BALANCE  # noqa: E402
from mtvision.balancing.diagnostics import plot_balance, plot_conflicts  # noqa: E402
from mtvision.engine.loggers import Row  # noqa: E402


def plot_results(rows: list[Row], path: str | Path) -> Path:
    """Draw every task's loss and metric curves (and lr / task weights) into ``path``."""
    panels = _panels(rows)
    columns = max(len(p) for p in panels.values())
    fig, axes = plt.subplots(len(panels), columns, figsize=(3.2 * columns, 2.4 * len(panels)), squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
    for r, (task, task_panels) in enumerate(panels.items()):
        for c in range(columns):
            ax = axes[r][c]
            if c >= len(task_panels):
                ax.axis("off")
                continue
            title, keys = task_panels[c]
            for key in keys:
                points = [(e, row[key]) for e, row in zip(epochs, rows) if key in row]
                ax.plot(*zip(*points), marker=".", label=_legend(key, keys) if len(keys) > 1 else None)
            ax.set_title(f"{task} {title}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.locator_params(nbins=4)
            if len(keys) > 1:
                ax.legend(fontsize=7)
            if r == len(panels) - 1 or c >= len(list(panels.values())[r + 1]):
                ax.set_xlabel("epoch", fontsize=7)  # the lowest panel of each column
        axes[r][0].set_ylabel(task, fontsize=11, fontweight="bold")  # the row's task, at its left
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.95, hspace=0.45, wspace=0.3)  # tight_layout: 1 s more
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_balancing(rows: list[Row], folder: str | Path) -> list[Path]:
    """``balance.png`` (task weights, gradient norms per epoch) and, when per-task gradients
    were computed (gradient methods), ``conflicts.png`` (mean pairwise gradient cosines)."""
    columns = {key for row in rows for key in row if key.startswith(BALANCE)}
    drawn = []
    if any("~" not in key for key in columns):
        drawn.append(plot_balance(rows, Path(folder) / "balance.png"))
    if any(key.endswith("/cosine") for key in columns):
        drawn.append(plot_conflicts(rows, Path(folder) / "conflicts.png"))
    return drawn


def _legend(key: str, keys: list[str]) -> str:
    """The part that differs between curves of one panel: the task of a weight, the split,
    the member of a metric family (``11_25`` of ``within_11_25``), or both of the last two."""
    parts = key.split("/")
    if parts[-1] == "weight":
        return parts[1]
    splits, metrics = {k.split("/")[0] for k in keys}, {k.split("/")[-1] for k in keys}
    if len(metrics) == 1:
        return parts[0]
    member = parts[-1].removeprefix(_family(parts[-1])).lstrip("_") or parts[-1]
    return member if len(splits) == 1 else f"{parts[0]} {member}"


_MEMBER = re.compile(r"_?\d+(_\d+)*$")  # within_11_25 -> within, bbox_ap50 -> bbox_ap, delta1 -> delta


def _family(metric: str) -> str:
    """The name shared by metrics that differ only by a trailing number (a threshold, an IoU)."""
    return _MEMBER.sub("", metric) or metric


def _panels(rows: list[Row]) -> dict[str, list[tuple[str, list[str]]]]:
    """``{task: [(title, [column, ...]), ...]}``: losses of both splits share a panel."""
    # balance/ columns have their own figures (plot_balancing): 15 cosine panels would drown these.
    columns = [key for key in dict.fromkeys(key for row in rows for key in row) if not key.startswith(BALANCE)]
    panels: dict[str, dict[str, list[str]]] = {}
    metrics = [key.split("/") for key in columns if key.count("/") == 2 and not key.endswith("/weight")]
    families: dict[tuple[str, str], set[str]] = {}
    for _, task, metric in metrics:
        families.setdefault((task, _family(metric)), set()).add(metric)
    for split, task, metric in metrics:
        family = _family(metric)
        title = family if len(families[task, family]) > 1 else metric  # a family of one keeps its name
        panels.setdefault(task, {}).setdefault(title, []).append(f"{split}/{task}/{metric}")
    other = {"lr": ["lr"]} if "lr" in columns else {}
    weights = [key for key in columns if key.endswith("/weight")]
    if weights:
        other["task weights"] = weights
    if other:
        panels["run"] = other
    return {task: list(metrics.items()) for task, metrics in panels.items()}
