"""What ``mtvision affinity`` writes: ``affinity.json``, ``affinity.png`` and a one-sentence summary.

Plain numbers in, files out (the ``groups.yaml`` config is the CLI's: only it sees a config).
The heatmaps list the tasks in grouping order, with the groups boxed, so that a good grouping
shows as warm blocks on the diagonal. Affinity is drawn in percent: ``Z_{i→j} = 1 − L_j'/L_j``
is the relative change of ``j``'s loss, so ``+2.0`` means a step on ``i`` alone lowered ``j``'s
loss by 2 %. The diagonal (a task's step on itself) is greyed: it is far larger than any
transfer and would wash out the colour scale.

Example:
    >>> import numpy as np
    >>> z = np.array([[.05, .02, -.01], [.03, .04, -.02], [-.01, -.01, .06]])
    >>> print(summary_sentence(["depth", "normals", "noise"], z, [["depth", "normals"], ["noise"]]))
    Most mutual help: depth↔normals (+2.50 %); noise hurts the others (−1.00 % on average); groups: depth + normals | noise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from mtvision.analysis.affinity import AffinityResult  # noqa: E402
from mtvision.analysis.grouping import Grouping  # noqa: E402

__all__ = ["write_json", "plot_affinity", "summary_sentence"]


def write_json(path: Path, result: AffinityResult, groupings: dict[int, Grouping], extra: dict[str, Any]) -> Path:
    """``{"tasks", "affinity", "cosine", "groups": {"K": [[task...]]}, "score": {"K": float}, ...}``
    (NaN as null), plus the run's counts, cost and ``extra``."""
    data = {
        "tasks": result.tasks, "affinity": _plain(result.affinity), "cosine": _plain(result.cosine),
        "groups": {str(k): g.groups for k, g in groupings.items()},
        "score": {str(k): round(g.score, 6) for k, g in groupings.items()},
        "exact": all(g.exact for g in groupings.values()),
        "counts": result.counts.tolist(), "steps": result.steps, "probes": result.probes,
        "seconds": round(result.seconds, 2), "probe_seconds": round(result.probe_seconds, 2),
        "cost_ratio": round(result.cost_ratio, 3), **extra,
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    return path


def plot_affinity(path: Path, tasks: Sequence[str], affinity: np.ndarray, cosine: np.ndarray,
                  groups: Sequence[Sequence[str]]) -> Path:
    """Both matrices as annotated heatmaps, tasks in grouping order, groups boxed."""
    order = [tasks.index(t) for group in groups for t in group]
    names = [tasks[i] for i in order]
    z = 100 * np.asarray(affinity, dtype=float)[np.ix_(order, order)]
    c = np.asarray(cosine, dtype=float)[np.ix_(order, order)]
    size = 1.6 + 0.75 * len(names)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 2.2, size + 0.6))
    off = ~np.eye(len(names), dtype=bool)
    scale = max(float(np.nanmax(np.abs(z[off]))) if np.isfinite(z[off]).any() else 1.0, 1e-6)
    decimals = min(3, max(1, 1 - math.floor(math.log10(scale))))  # two significant digits on the largest entry
    _heatmap(axes[0], z, names, scale, f"{{:+.{decimals}f}}", "TAG affinity Z(row → column), % of the column's loss",
             "% lower loss of the column task")
    _heatmap(axes[1], c, names, 1.0, "{:+.2f}", "gradient cosine on the shared parameters", "cosine")
    for ax in axes:
        start = 0
        for group in groups:
            ax.add_patch(Rectangle((start - 0.5, start - 0.5), len(group), len(group), fill=False, lw=2.2,
                                   edgecolor="black"))
            start += len(group)
    fig.suptitle(f"which tasks help which (groups: {' | '.join(' + '.join(g) for g in groups)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_sentence(tasks: Sequence[str], affinity: np.ndarray, groups: Sequence[Sequence[str]]) -> str:
    """The strongest mutual help, the tasks that hurt the others, and the groups, in one sentence."""
    z = np.asarray(affinity, dtype=float)
    pairs = sorted(((np.nanmean([z[i, j], z[j, i]]), i, j) for i in range(len(tasks)) for j in range(i + 1, len(tasks))
                    if np.isfinite([z[i, j], z[j, i]]).any()), key=lambda p: (-p[0], p[1], p[2]))
    helping = [f"{tasks[i]}↔{tasks[j]} ({100 * v:+.2f} %)" for v, i, j in pairs[:2] if v > 0]
    given = [(np.nanmean(np.delete(z[i], i)), i) for i in range(len(tasks))]
    hurting = [f"{tasks[i]} hurts the others ({_signed(100 * v)} % on average)" for v, i in given
               if np.isfinite(v) and v < 0]
    parts = [f"Most mutual help: {', '.join(helping)}" if helping else "No pair of tasks helps each other"]
    parts += hurting[:2]
    parts.append(f"groups: {' | '.join(' + '.join(g) for g in groups)}.")
    return "; ".join(parts)


def _heatmap(ax: Any, values: np.ndarray, names: Sequence[str], scale: float, fmt: str, title: str,
             label: str) -> None:
    shown = values.copy()
    np.fill_diagonal(shown, np.nan)
    image = ax.imshow(shown, cmap="RdBu", vmin=-scale, vmax=scale)
    ax.imshow(np.where(np.eye(len(names), dtype=bool), 0.5, np.nan), cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=9)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            dark = i != j and abs(value) > 0.6 * scale
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                    color="white" if dark else ("dimgray" if i == j else "black"), style="italic" if i == j else None)
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _plain(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if not math.isfinite(v) else round(float(v), 6) for v in row] for row in np.asarray(matrix)]
