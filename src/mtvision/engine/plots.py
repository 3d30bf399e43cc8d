"""``results.png``: one row of curves per task (its train/val loss, then each metric) per epoch;
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
                ax.plot(*zip(*points), marker=".", label=_legend(key) if len(keys) > 1 else None)
            ax.set_title(f"{task} {title}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.locator_params(nbins=4)
            if len(keys) > 1:
                ax.legend(fontsize=7)
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


def _legend(key: str) -> str:
    """The part that differs between curves of one panel: the task of a weight, else the split."""
    parts = key.split("/")
    return parts[1] if parts[-1] == "weight" else parts[0]


def _panels(rows: list[Row]) -> dict[str, list[tuple[str, list[str]]]]:
    """``{task: [(title, [column, ...]), ...]}``: losses of both splits share a panel."""
    # balance/ columns have their own figures (plot_balancing): 15 cosine panels would drown these.
    columns = [key for key in dict.fromkeys(key for row in rows for key in row) if not key.startswith(BALANCE)]
    panels: dict[str, dict[str, list[str]]] = {}
    for key in columns:
        parts = key.split("/")
        if len(parts) == 3 and parts[2] != "weight":
            split, task, metric = parts
            panels.setdefault(task, {}).setdefault(metric, []).append(key)
    other = {"lr": ["lr"]} if "lr" in columns else {}
    weights = [key for key in columns if key.endswith("/weight")]
    if weights:
        other["task weights"] = weights
    if other:
        panels["run"] = other
    return {task: list(metrics.items()) for task, metrics in panels.items()}
