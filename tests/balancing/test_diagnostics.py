"""BalanceMonitor means and what the two diagnostic plots draw."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from mtvision.balancing.backward import BackwardResult
from mtvision.balancing.diagnostics import BalanceMonitor, conflict_matrix, plot_balance, plot_conflicts

NAMES = ["depth", "seg", "edges"]


def result(tasks: list[int], weights: list[float], norms: list[float] | None = None, cosine: float = 0.0,
           skipped: bool = False) -> BackwardResult:
    """A step's result where every present pair has cosine ``cosine`` (NaN for absent tasks)."""
    idx = torch.tensor(tasks)
    full = torch.zeros(3)
    full[idx] = torch.tensor(weights)
    if norms is None:
        return BackwardResult("loss", idx, full, skipped)
    grad_norms = torch.full((3,), math.nan, dtype=torch.float64)
    grad_norms[idx] = torch.tensor(norms, dtype=torch.float64)
    cosines = torch.full((3, 3), math.nan, dtype=torch.float64)
    cosines[idx[:, None], idx[None, :]] = cosine
    return BackwardResult("parameters", idx, full, skipped, grad_norms, cosines)


def test_means_count_only_steps_where_the_task_was_present_and_not_skipped() -> None:
    monitor = BalanceMonitor(NAMES)
    monitor.update(result([0, 1, 2], [1.0, 2.0, 3.0], [1.0, 2.0, 4.0], cosine=-0.5))
    monitor.update(result([0, 1], [3.0, 4.0], [3.0, 4.0], cosine=0.1))  # edges absent
    monitor.update(result([0, 1, 2], [100.0, 100.0, 100.0], [9.0, 9.0, 9.0], cosine=1.0, skipped=True))
    monitor.update(result([0, 2], [5.0, 6.0]))  # a loss method: weights only
    summary = monitor.summary()
    assert summary["balance/depth/weight"] == pytest.approx(3.0)
    assert summary["balance/seg/weight"] == pytest.approx(3.0)
    assert summary["balance/edges/weight"] == pytest.approx(4.5)
    assert summary["balance/depth/grad_norm"] == pytest.approx(2.0)
    assert summary["balance/edges/grad_norm"] == pytest.approx(4.0)
    assert summary["balance/depth~seg/cosine"] == pytest.approx(-0.2)
    assert summary["balance/depth~edges/cosine"] == pytest.approx(-0.5)
    assert "balance/seg~depth/cosine" not in summary and "balance/depth~depth/cosine" not in summary
    monitor.reset()
    assert monitor.summary() == {}


def test_conflict_matrix_averages_the_epochs_and_is_symmetric() -> None:
    rows = [{"epoch": 1, "balance/depth~seg/cosine": -0.4, "balance/depth~edges/cosine": 0.2},
            {"epoch": 2, "balance/depth~seg/cosine": -0.2}]
    names, matrix = conflict_matrix(rows)
    assert names == ["depth", "seg", "edges"]
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(-0.3)
    assert matrix[0, 2] == pytest.approx(0.2) and math.isnan(matrix[1, 2]) and matrix[2, 2] == 1.0


def test_plots_draw_the_results_rows(tmp_path: Path, figures: list[Figure]) -> None:
    monitor = BalanceMonitor(NAMES)
    rows = []
    for epoch in (1, 2, 3):
        monitor.reset()
        monitor.update(result([0, 1, 2], [1.0, 0.5 / epoch, 1.5], [1.0, 0.01, 3.0], cosine=-0.3))
        rows.append({"epoch": epoch, "lr": 1e-3, **{f"train/{k}": v for k, v in monitor.summary().items()}})
    balance_png = plot_balance(rows, tmp_path / "balance.png")
    conflicts_png = plot_conflicts(rows[-1:], tmp_path / "conflicts.png")
    balance, conflicts = figures

    weight, norm = balance.axes
    assert (weight.get_title(), weight.get_yscale(), norm.get_title(), norm.get_yscale()) == (
        "task weight", "linear", "task grad norm", "log")
    assert [t.get_text() for t in weight.get_legend().get_texts()] == NAMES
    curves = np.array([[line.get_ydata() for line in ax.lines] for ax in (weight, norm)], dtype=float)
    assert curves == pytest.approx(np.array([[[1.0] * 3, [0.5, 0.25, 0.5 / 3], [1.5] * 3],
                                             [[1.0] * 3, [0.01] * 3, [3.0] * 3]]))  # [panel, task, epoch]

    heatmap = conflicts.axes[0]
    assert [t.get_text() for t in heatmap.get_xticklabels()] == NAMES
    cells = np.asarray(heatmap.images[0].get_array())
    assert cells == pytest.approx(np.where(np.eye(3, dtype=bool), 1.0, -0.3))
    assert sorted(t.get_text() for t in heatmap.texts) == ["-0.30"] * 6 + ["1.00"] * 3
    red, blue = pixel(conflicts, heatmap, conflicts_png, (1, 0)), pixel(conflicts, heatmap, conflicts_png, (0, 0))
    assert red[0] > red[2] and blue[2] > blue[0]  # a conflicting pair is red, a task with itself blue
    assert np.asarray(Image.open(balance_png)).std() > 0  # not a blank canvas

    with pytest.raises(ValueError, match="cosine"):
        plot_conflicts([{"epoch": 1}], tmp_path / "none.png")




def pixel(fig: Figure, ax: Axes, path: Path, xy: tuple[float, float]) -> np.ndarray:
    """RGB of the saved PNG (90 dpi) at the data point ``xy`` of ``ax``, off the cell's text."""
    picture = np.asarray(Image.open(path).convert("RGB"))
    x, y = ax.transData.transform((xy[0] + 0.3, xy[1] + 0.3)) * 90 / fig.dpi
    return picture[picture.shape[0] - 1 - int(y), int(x)].astype(int)
