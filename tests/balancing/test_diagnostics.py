"""BalanceMonitor means and the two diagnostic plots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

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


def test_plots_are_written_from_results_rows(tmp_path: Path) -> None:
    monitor = BalanceMonitor(NAMES)
    rows = []
    for epoch in (1, 2, 3):
        monitor.reset()
        monitor.update(result([0, 1, 2], [1.0, 0.5 / epoch, 1.5], [1.0, 0.01, 3.0], cosine=-0.3))
        rows.append({"epoch": epoch, "lr": 1e-3, **{f"train/{k}": v for k, v in monitor.summary().items()}})
    assert plot_balance(rows, tmp_path / "balance.png").stat().st_size > 0
    assert plot_conflicts(rows[-1:], tmp_path / "conflicts.png").stat().st_size > 0
    with pytest.raises(ValueError, match="cosine"):
        plot_conflicts([{"epoch": 1}], tmp_path / "none.png")
