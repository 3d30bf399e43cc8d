"""Schedule, AMP choice, CSV logging across a resume, and the results plot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.engine.loggers import CSVLogger, read_results
from mtvision.engine.optim import build_optimizer, build_scheduler, resolve_amp, warmup_cosine
from mtvision.engine.plots import plot_results


def test_warmup_then_cosine_to_zero() -> None:
    factor = warmup_cosine(warmup_steps=4, total_steps=14)
    assert [factor(s) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert factor(4) == 1.0 and factor(9) == pytest.approx(0.5) and factor(14) == pytest.approx(0.0)
    assert warmup_cosine(0, 10, constant=True)(7) == 1.0


def test_scheduler_steps_the_learning_rate() -> None:
    optimizer = build_optimizer(torch.nn.Linear(2, 2), lr=0.1, weight_decay=0.01)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # no decay on the bias
    scheduler = build_scheduler(optimizer, warmup_steps=0, total_steps=2)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_amp_choice() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == (None, False)
    assert resolve_amp("bf16", cpu) == (torch.bfloat16, False)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_amp("fp16", cpu)


def test_csv_keeps_rows_up_to_the_resumed_epoch(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    log = CSVLogger(path)
    for epoch in (1, 2, 3):
        log.log({"epoch": epoch, "train/depth/loss": 1.0 / epoch, **({"val/depth/abs_rel": 0.5} if epoch > 1 else {})})
    assert path.read_text().splitlines()[0] == "epoch,train/depth/loss,val/depth/abs_rel"
    resumed = CSVLogger(path, resume_epoch=2)
    resumed.log({"epoch": 3, "train/depth/loss": 0.25})
    rows = read_results(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[2]["train/depth/loss"] == 0.25
    assert "val/depth/abs_rel" not in rows[0]
    assert plot_results(rows, tmp_path / "results.png").stat().st_size > 0
