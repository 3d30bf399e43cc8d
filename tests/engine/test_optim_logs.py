"""Schedule, AMP choice, CSV logging across a resume, and what the results plot draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

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


def test_csv_keeps_rows_up_to_the_resumed_epoch(tmp_path: Path, figures: list[Figure]) -> None:
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

    drawn = plot_results(rows, tmp_path / "results.png")
    assert [fig.axes[0].get_title() for fig in figures] == ["depth loss"]  # one task, one row
    (fig,) = figures
    loss, metric = fig.axes
    assert metric.get_title() == "depth abs_rel"
    assert [tuple(line.get_ydata()) for line in loss.lines] == [(1.0, 0.5, 0.25)]  # the resumed epoch 3
    assert [(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in metric.lines] == [((2,), (0.5,))]
    assert_saved(fig, drawn)


def test_results_plot_has_a_row_per_task_and_one_for_the_run(tmp_path: Path, figures: list[Figure]) -> None:
    rows = [{"epoch": e, "lr": 1e-3 / e, "train/depth/loss": 1.0 / e, "val/depth/loss": 1.2 / e,
             "val/depth/abs_rel": 0.5 / e, "val/seg/miou": 0.1 * e, "train/depth/weight": 1.0,
             "train/seg/weight": 2.0 * e, "balance/depth/grad_norm": 3.0} for e in (1, 2, 3)]
    drawn = plot_results(rows, tmp_path / "results.png")
    (fig,) = figures
    titled = {ax.get_title(): ax for ax in fig.axes if ax.axison}
    assert set(titled) == {"depth loss", "depth abs_rel", "seg miou", "run lr", "run task weights"}
    assert len(fig.axes) == 3 * 2  # three rows (depth, seg, run) of two columns; the spare one is blank
    legends = {title: [t.get_text() for t in ax.get_legend().get_texts()]
               for title, ax in titled.items() if ax.get_legend() is not None}
    assert legends == {"depth loss": ["train", "val"], "run task weights": ["depth", "seg"]}
    assert [tuple(line.get_ydata()) for line in titled["run task weights"].lines] == [(1.0,) * 3, (2.0, 4.0, 6.0)]
    assert tuple(titled["seg miou"].lines[0].get_ydata()) == pytest.approx((0.1, 0.2, 0.3))
    assert_saved(fig, drawn)




def assert_saved(fig: Figure, path: Path) -> None:
    """The PNG is that figure at 90 dpi, and not a blank canvas."""
    picture = np.asarray(Image.open(path).convert("RGB"))
    width, height = fig.get_size_inches() * 90
    assert picture.shape == (round(height), round(width), 3)
    assert (picture < 128).any(axis=-1).mean() > 0.01  # dark pixels: axes, ticks, text and curves


def test_results_plot_groups_curves_by_task_and_metric_family(tmp_path: Path, figures: list[Figure]) -> None:
    rows = [{"epoch": e, "train/normals/loss": 1.0 / e, "val/normals/mean_angle": 30.0 / e,
             "val/normals/within_11_25": 0.1 * e, "val/normals/within_22_5": 0.2 * e, "val/normals/within_30": 0.3 * e,
             "val/objects/bbox_ap": 0.1, "val/objects/bbox_ap50": 0.3, "val/depth/delta1": 0.5} for e in (1, 2)]
    plot_results(rows, tmp_path / "results.png")
    (fig,) = figures
    titled = {ax.get_title(): ax for ax in fig.axes if ax.axison}
    assert set(titled) == {"normals loss", "normals mean_angle", "normals within", "objects bbox_ap", "depth delta1"}
    legend = [t.get_text() for t in titled["normals within"].get_legend().get_texts()]
    assert legend == ["11_25", "22_5", "30"] and len(titled["normals within"].lines) == 3
    assert [t.get_text() for t in titled["objects bbox_ap"].get_legend().get_texts()] == ["bbox_ap", "50"]
    rows_named = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert rows_named == ["normals", "objects", "depth"]  # each row named by its task, at its left
    assert titled["depth delta1"].get_xlabel() == "epoch"
