"""What to look at when a task is not learning: its weight, its gradient, and its conflicts.

:class:`BalanceMonitor` accumulates, over the steps of an epoch, the task weights, per-task
gradient norms and pairwise gradient cosines that :func:`~mtvision.balancing.backward.balanced_backward`
returns, and :meth:`~BalanceMonitor.summary` gives their means as flat columns for
``results.csv``:

* ``balance/<task>/weight`` — a weight near 0 means the method has switched the task off;
* ``balance/<task>/grad_norm`` — a norm orders of magnitude below the others means the
  task is drowned by the others before any weighting;
* ``balance/<a>~<b>/cosine`` — a negative mean cosine means the two tasks pull the shared
  parameters in opposite directions (conflict); near 0, they ignore each other.

Means are over the steps where the task was present (partial labels) and the step was not
skipped; norms and cosines only exist on steps that computed per-task gradients.
:func:`plot_balance` draws the weights and norms over epochs from ``results.csv``-like rows,
:func:`plot_conflicts` the T×T mean cosine heatmap.

Example:
    >>> import torch
    >>> from mtvision.balancing.backward import BackwardResult
    >>> monitor = BalanceMonitor(["depth", "seg"])
    >>> cos = torch.tensor([[1.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)
    >>> r = BackwardResult("parameters", torch.tensor([0, 1]), torch.tensor([0.6, 0.4]), False,
    ...                    torch.tensor([2.0, 1.0], dtype=torch.float64), cos)
    >>> monitor.update(r)
    >>> monitor.summary()["balance/depth~seg/cosine"]
    -0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed (servers, CI, DDP ranks)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from mtvision.balancing.backward import BackwardResult  # noqa: E402

__all__ = ["BalanceMonitor", "conflict_matrix", "plot_balance", "plot_conflicts"]

PREFIX = "balance/"


class _Mean:
    """A running mean per entry that skips NaN entries; kept on the values' device (no sync)."""

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.count: Tensor | None = None

    def add(self, values: Tensor, mask: Tensor) -> None:
        values, mask = values.detach().double(), mask.to(values.device) & ~torch.isnan(values)
        if self.total is None or self.count is None:
            self.total, self.count = torch.zeros_like(values), torch.zeros_like(values)
        self.total += torch.where(mask, values, 0.0)
        self.count += mask

    def mean(self) -> np.ndarray | None:
        if self.total is None or self.count is None:
            return None
        count = self.count.cpu().numpy()
        return np.where(count > 0, self.total.cpu().numpy() / np.maximum(count, 1), np.nan)


class BalanceMonitor:
    """Per-epoch means of the balancing diagnostics, as ``results.csv`` columns."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.reset()

    def reset(self) -> None:
        """Start a new epoch."""
        self._weights, self._norms, self._cosines = _Mean(), _Mean(), _Mean()

    def update(self, result: BackwardResult) -> None:
        """Add one step's result; skipped steps and absent tasks do not count."""
        if result.skipped:
            return
        present = torch.zeros(len(self.names), dtype=torch.bool)
        present[result.tasks] = True
        if result.weights is not None:
            self._weights.add(result.weights, present)
        if result.grad_norms is not None and result.cosines is not None:
            self._norms.add(result.grad_norms, present)
            self._cosines.add(result.cosines, present[:, None] & present[None, :])

    def summary(self) -> dict[str, float]:
        """Means since the last :meth:`reset`; an entry never observed is left out."""
        out: dict[str, float] = {}
        for kind, mean in (("weight", self._weights.mean()), ("grad_norm", self._norms.mean())):
            if mean is not None:
                out.update({f"{PREFIX}{n}/{kind}": float(v) for n, v in zip(self.names, mean) if not math.isnan(v)})
        cosines = self._cosines.mean()
        if cosines is not None:
            for i, a in enumerate(self.names):
                out.update({f"{PREFIX}{a}~{b}/cosine": float(cosines[i, j]) for j, b in enumerate(self.names)
                            if j > i and not math.isnan(cosines[i, j])})
        return out


def conflict_matrix(rows: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """Task names and the symmetric T×T mean cosine (1 on the diagonal, NaN if never seen)
    from the ``[split/]balance/<a>~<b>/cosine`` columns, averaged over the rows that have them."""
    pairs: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        for key, value in row.items():
            subject, kind = _parse(key)
            if kind == "cosine" and "~" in subject and not math.isnan(value):
                a, b = subject.split("~")
                pairs.setdefault((a, b), []).append(value)
    names = list(dict.fromkeys(n for pair in pairs for n in pair))
    matrix = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for (a, b), values in pairs.items():
        matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = float(np.mean(values))
    return names, matrix


def plot_conflicts(rows: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Heatmap of the mean pairwise gradient cosines: red cells are conflicting task pairs."""
    names, matrix = conflict_matrix(rows)
    if not names:
        raise ValueError("no balance/<a>~<b>/cosine columns: train with a gradient method and diagnostics on")
    size = 1.0 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="mean gradient cosine")
    ax.set_title("task gradient conflicts (< 0: conflict)", fontsize=9)
    return _save(fig, path)


def plot_balance(rows: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """Task weights and gradient norms (log scale) per epoch, one curve per task."""
    kinds = [k for k in ("weight", "grad_norm") if any(_task_columns(rows, k))]
    if not kinds:
        raise ValueError("no balance/<task>/weight or /grad_norm columns to plot")
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.2), squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
    for ax, kind in zip(axes[0], kinds):
        for task, key in _task_columns(rows, kind).items():
            points = [(e, row[key]) for e, row in zip(epochs, rows) if key in row]
            ax.plot(*zip(*points), marker=".", label=task)
        ax.set_yscale("log" if kind == "grad_norm" else "linear")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(f"task {kind.replace('_', ' ')}", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _task_columns(rows: Sequence[Mapping[str, float]], kind: str) -> dict[str, str]:
    """``{task: column}`` for the ``…balance/<task>/<kind>`` columns (a split prefix is allowed)."""
    found = {}
    for key in dict.fromkeys(key for row in rows for key in row):
        subject, found_kind = _parse(key)
        if found_kind == kind and "~" not in subject:
            found[subject] = key
    return found


def _parse(key: str) -> tuple[str, str]:
    """``("<task>" or "<a>~<b>", kind)`` of a ``[split/]balance/<subject>/<kind>`` column, else ``("", "")``."""
    _, prefix, tail = key.partition(PREFIX)
    subject, _, kind = tail.rpartition("/")
    return (subject, kind) if prefix and subject else ("", "")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
