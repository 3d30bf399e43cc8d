"""``mtvision train --from``, ``model.freeze``, ``train.lr_mult`` and ``train.distill`` end to end on a tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.engine.loggers import read_results

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=8", "model.neck_channels=16", "train.epochs=1", "train.predict_images=0",
        "train.warmup_epochs=0", "balancing.diagnostics=false", "tasks.classes=null", "tasks.lighting=null",
        "tasks.edges=null", "tasks.objects=null"]
OLD = [*TINY, "tasks.normals=null", "run.name=old"]


def _train(runner: CliRunner, args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, ["train", *args], env={"COLUMNS": "400"})  # error boxes unwrapped
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


@pytest.fixture()
def old_run(runner: CliRunner, tmp_path: Path) -> Path:
    """A trained semseg + depth run: what the transfer commands start from."""
    code, output = _train(runner, OLD)
    assert code == 0, output
    return tmp_path / "runs" / "old" / "weights" / "last.pt"


def test_from_adds_a_task_in_a_new_run(runner: CliRunner, old_run: Path, tmp_path: Path) -> None:
    code, output = _train(runner, [*TINY, "tasks.depth=null", "run.name=new", "--from", str(old_run)])
    assert code == 0, output
    assert "initialised from" in output and "task normals: created" in output
    report = json.loads((tmp_path / "runs" / "new" / "init.json").read_text())
    assert report["tasks"] == {"semseg": "loaded", "normals": "created", "depth": "dropped"}
    assert report["parts"]["backbone"]["loaded"] > 0 and not report["skipped"]
    rows = read_results(tmp_path / "runs" / "new" / "results.csv")
    assert [row["epoch"] for row in rows] == [1]  # a new run: epoch 1, not the old run's epoch 2
    assert json.loads(json.dumps(report))  # plain JSON


def test_from_refuses_a_pickle(runner: CliRunner, tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    code, output = _train(runner, [*TINY, "--from", str(tmp_path / "module.pt")])
    assert code == 2 and "refused" in output and "module.pt" in output


def test_freeze_lr_mult_and_distill_from_the_command_line(runner: CliRunner, old_run: Path, tmp_path: Path) -> None:
    code, output = _train(runner, [*TINY, "run.name=lwf", "--from", str(old_run), "model.freeze=[backbone.layer1]",
                                   "train.lr_mult={backbone: 0.1}", f"train.distill.from={old_run}",
                                   "train.distill.tasks=[semseg, depth]"])
    assert code == 0, output
    assert "frozen: backbone.layer1" in output
    (row,) = read_results(tmp_path / "runs" / "lwf" / "results.csv")
    assert row["lr/backbone"] == pytest.approx(0.1 * row["lr/default"])


def test_distill_naming_a_task_the_old_model_lacks_is_refused(runner: CliRunner, old_run: Path) -> None:
    code, output = _train(runner, [*TINY, f"train.distill.from={old_run}", "train.distill.tasks=[normals]"])
    assert code == 2 and "'normals' is not a task of the old model" in output


def test_add_a_task_from_data_without_the_old_tasks_labels(runner: CliRunner, old_run: Path, tmp_path: Path) -> None:
    """The new data labels normals only: the old tasks' label spaces come from the validation split /
    the checkpoint, and their training signal from the old model (distillation)."""
    train_dir = next((tmp_path / ".cache" / "synthetic").glob("*/train"))
    config = tmp_path / "add.yaml"  # JSON is YAML; the tasks are named: the new data alone has normals only
    config.write_text(json.dumps({
        "data": {"source": [{"path": str(train_dir), "tasks": ["normals"]}],
                 "val": [{"path": str(train_dir.parent / "val")}], "merge": "none"},
        "tasks": {"semseg": {"type": "semantic_segmentation"}, "depth": {"type": "depth"},
                  "normals": {"type": "normals"}}}))
    code, output = _train(runner, [str(config), *TINY, "run.name=add", "--from", str(old_run),
                                   f"train.distill.from={old_run}"])
    assert code == 0, output
    (row,) = read_results(tmp_path / "runs" / "add" / "results.csv")
    assert row["train/semseg/loss"] > 0 and row["train/depth/loss"] > 0  # distillation: no labels, still a loss
    assert row["val/semseg/miou"] >= 0 and row["val/normals/mean_angle"] > 0


def test_freezing_every_shared_part_is_refused(runner: CliRunner) -> None:
    code, output = _train(runner, [*TINY, "model.freeze=[backbone, neck]"])
    assert code == 2 and "leaves no shared parameter training" in output
