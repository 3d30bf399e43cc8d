"""End to end through the CLI: train on tiny synthetic data, val, predict, resume, config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.engine.loggers import read_results
from tests.cli.conftest import ok

torch.set_num_threads(1)  # a tiny model on a shared CPU: one thread is fastest

TINY = ["data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=4", "model.backbone=test_resnet.r160_in1k", "model.neck_channels=16",
        "train.predict_images=2", "train.warmup_epochs=0"]


def test_train_val_predict_resume(runner: CliRunner, tmp_path: Path) -> None:
    output = ok(runner, ["train", *TINY, "train.epochs=2"])
    run = tmp_path / "runs" / "demo"
    assert "final validation vs constant baselines" in output and str(Path("runs") / "demo") in output
    for name in ("config.yaml", "results.csv", "results.png", "weights/last.pt", "weights/best.pt"):
        assert (run / name).is_file(), name
    assert len(list((run / "predictions" / "final").glob("*.png"))) == 2
    rows = read_results(run / "results.csv")
    assert [row["epoch"] for row in rows] == [1, 2]
    for column in ("val/semseg/miou", "val/depth/abs_rel", "train/depth/loss", "train/normals/weight",
                   "val/classes/map", "val/lighting/top1", "val/edges/ods_f", "val/objects/bbox_ap50",
                   "val/objects/segm_ap50", "val/objects/kpt_ap50", "train/objects/loss", "lr", "time"):
        assert column in rows[-1], column

    assert "semseg" in ok(runner, ["val", str(run / "weights" / "best.pt")])

    images = tmp_path / "photos"
    images.mkdir()
    for source in sorted((tmp_path / ".cache" / "synthetic").glob("*/val/images/*.png"))[:2]:
        shutil.copy(source, images / source.name)
    ok(runner, ["predict", str(run / "weights" / "best.pt"), "--source", str(images), "--out", "out"])
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(predictions) == sorted(p.name for p in images.iterdir())
    first = next(iter(predictions.values()))
    assert set(first) == {"classes", "lighting", "semseg", "depth", "normals", "edges", "objects"}
    for detection in first["objects"]:  # boxes, RLE masks and keypoints in one JSON
        assert len(detection["box"]) == 4 and detection["mask"]["size"] == [32, 32]
        assert len(detection["keypoints"]) == 6
    assert len(list((tmp_path / "out" / "depth").glob("*.png"))) == 2

    ok(runner, ["train", "--resume", str(run / "weights" / "last.pt"), "train.epochs=3"])
    assert [row["epoch"] for row in read_results(run / "results.csv")] == [1, 2, 3]
    assert not (tmp_path / "runs" / "demo2").exists()  # resuming continues the same run folder

    ok(runner, ["train", *TINY, "train.epochs=1", "tasks.edges=null", "tasks.classes=null"])
    assert (tmp_path / "runs" / "demo2" / "weights" / "last.pt").is_file()  # a new run never overwrites


def test_config_error_exits_with_the_suggestion(runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "train.epoch=3"])
    assert result.exit_code == 2
    assert "did you mean 'train.epochs'" in result.output
