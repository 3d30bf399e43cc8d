"""What a run prints: a line per epoch with the selecting metric, one table at the end labelled
best or last, every task's loss within the terminal's width, a message while scenes render; and
validation that does not move the training RNG (train.eval_every leaves the run unchanged)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from mtvision.engine.console import loss_text, metric_table
from mtvision.engine.loggers import read_results
from tests.cli.conftest import ok

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=4", "model.neck_channels=16", "train.predict_images=0", "train.warmup_epochs=0",
        "tasks.classes=null", "tasks.lighting=null", "tasks.objects=null", "train.best_metric=val/semseg/miou"]
DEMO_TASKS = ["classes", "lighting", "semseg", "depth", "normals", "edges", "objects"]


@pytest.mark.parametrize("width", [30, 37, 60, 80, 200])
def test_every_task_loss_shows_within_the_width(width: int) -> None:
    """Before: one line cut at 80 columns ('semseg 0.69…'): most task losses never showed."""
    text = loss_text({name: 0.6912 for name in DEMO_TASKS}, width)
    assert all(len(line) <= width for line in text.splitlines())
    assert len(text.split()) == 2 * len(DEMO_TASKS)  # a name and a value each
    assert text.count("\n") <= 2  # abbreviated, so at most three lines even at 30 columns


def test_the_final_table_highlights_the_metric_that_selects_best_pt() -> None:
    console = Console(record=True, width=60, force_terminal=True, file=io.StringIO())
    results = {"semseg": {"miou": 0.5, "pixel_acc": 0.9}, "depth": {"abs_rel": 0.1}}
    console.print(metric_table(results, title=None, selected="val/semseg/miou"))
    styled = console.export_text(styles=True, clear=False).splitlines()
    lines = {line.split("│")[2].strip(): styled[i] for i, line in enumerate(console.export_text().splitlines())
             if line.count("│") == 4}
    assert "\x1b[1;36m" in lines["miou"]  # bold cyan
    assert "\x1b[1;36m" not in lines["pixel_acc"] and "\x1b[1;36m" not in lines["abs_rel"]


def test_a_line_per_epoch_and_one_table_labelled_best(runner: CliRunner) -> None:
    """Before: a 40-line table after every epoch, the selecting metric not shown, the last epoch's
    table at the end presented as the result."""
    output = ok(runner, ["train", *TINY, "train.epochs=2"])
    assert "rendering 12 synthetic scenes of 32 px once" in output
    lines = [line for line in output.splitlines() if re.match(r"epoch \d+/\d+ ", line)]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("val/semseg/miou" in line and "+ val" in line for line in lines)
    assert output.count("  loss ") == 2 and "dep" in output.split("  loss ")[1]  # every loss, on a second line
    assert "new best" in lines[0]
    assert "validation, epoch" not in output  # no per-epoch tables
    assert output.count("┏") == 1
    assert "final validation vs constant baselines: best.pt (epoch " in " ".join(output.split())
    verbose = ok(runner, ["train", *TINY, "train.epochs=2", "--verbose"])
    assert verbose.count("validation, epoch") == 2


def test_eval_every_does_not_change_the_training_run(runner: CliRunner, tmp_path: Path) -> None:
    """Before: the validation loader drew its seed from the global RNG, so validating every second epoch
    changed the next epoch's shuffle and augmentations, and the result."""
    ok(runner, ["train", *TINY, "train.epochs=3", "run.name=every1", "train.eval_every=1"])
    ok(runner, ["train", *TINY, "train.epochs=3", "run.name=every2", "train.eval_every=2"])
    one, two = (read_results(tmp_path / "runs" / name / "results.csv") for name in ("every1", "every2"))
    losses = [key for key in one[-1] if key.startswith("train/")]
    assert [[row[key] for key in losses] for row in one] == [[row[key] for key in losses] for row in two]
    assert one[-1]["val/semseg/miou"] == two[-1]["val/semseg/miou"]
    assert "val/semseg/miou" not in two[0] or two[0]["val/semseg/miou"] in ("", None)
