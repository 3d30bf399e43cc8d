"""`mtvision predict --conf --device --imgsz --tasks`: what a `yolo predict` user reaches for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtvision.cli import app
from tests.cli.conftest import ok

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=4", "model.neck_channels=16", "train.predict_images=0", "train.warmup_epochs=0",
        "train.epochs=1", "tasks.classes=null", "tasks.lighting=null", "tasks.normals=null", "tasks.edges=null"]


def test_predict_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok(runner, ["train", *TINY])
    best = str(tmp_path / "runs" / "demo" / "weights" / "best.pt")
    images = tmp_path / "photos"
    images.mkdir()
    for source in sorted((tmp_path / ".cache" / "synthetic").glob("*/val/images/*.png"))[:2]:
        shutil.copy(source, images / source.name)
    output = ok(runner, ["predict", best, "--source", str(images), "--out", "a", "--tasks", "depth,objects",
                          "--imgsz", "48", "--device", "cpu", "--conf", "1.0"])
    assert "predictions of depth, objects for 2 image(s)" in " ".join(output.split())
    first = next(iter(json.loads((tmp_path / "a" / "predictions.json").read_text()).values()))
    assert set(first) == {"depth", "objects"} and first["objects"] == []  # nothing scores above 1.0
    assert not (tmp_path / "a" / "semseg").exists()
    result = runner.invoke(app, ["predict", best, "--source", str(images), "--tasks", "dpeth"])
    assert result.exit_code == 2 and "not a task of this model" in result.output
