"""``mtvision export`` and ``mtvision predict model.onnx`` end to end on a tiny trained run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.engine.onnx_parity import box_iou

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=4", "data.synthetic.num_val=3", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=4", "model.backbone=test_resnet.r160_in1k", "model.neck_channels=16",
        "train.predict_images=0", "train.warmup_epochs=0", "train.epochs=1"]
DENSE_ATOL = {"depth": 1e-3, "normals": 1e-3, "edges": 1e-3}  # the FLOAT32 parity tolerance (docs/export.md)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the demo's seven tasks on four 32-px scenes; the folder holds weights/ and photos/."""
    root = tmp_path_factory.mktemp("export_cli")
    cwd = Path.cwd()
    try:
        os.chdir(root)
        result = CliRunner().invoke(app, ["train", *TINY], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    photos = root / "photos"
    photos.mkdir()
    for source in sorted((root / ".cache" / "synthetic").glob("*/val/images/*.png"))[:2]:
        shutil.copy(source, photos / source.name)
    return root


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})  # error boxes unwrapped: paths stay whole
    return result.exit_code, result.output + str(result.exception or "")


def test_export_then_predict_onnx_equals_predict_pt(run: Path) -> None:
    weights = run / "runs" / "demo" / "weights" / "best.pt"
    code, output = _invoke(["export", str(weights), "--source", str(run / "photos")])
    assert code == 0, output
    assert "objects boxes_matched" in output and "onnxruntime agrees with PyTorch" in output
    model = weights.with_suffix(".onnx")
    for path, out in ((weights, run / "pt"), (model, run / "onnx")):
        code, output = _invoke(["predict", str(path), "--source", str(run / "photos"), "--out", str(out)])
        assert code == 0, output
    pt = json.loads((run / "pt" / "predictions.json").read_text())
    ox = json.loads((run / "onnx" / "predictions.json").read_text())
    assert sorted(pt) == sorted(ox) and len(pt) == 2
    for image in pt:
        assert pt[image]["lighting"]["label"] == ox[image]["lighting"]["label"]
        a, b = pt[image]["objects"], ox[image]["objects"]
        assert len(a) == len(b) > 0
        iou = box_iou(np.array([d["box"] for d in a]), np.array([d["box"] for d in b]))
        assert (iou.diagonal() >= 0.99).all() and [d["class"] for d in a] == [d["class"] for d in b]
        stem = Path(image).stem
        labels = np.load(run / "pt" / "semseg" / f"{stem}.npy"), np.load(run / "onnx" / "semseg" / f"{stem}.npy")
        assert (labels[0] == labels[1]).mean() >= 0.999
        for task, atol in DENSE_ATOL.items():
            np.testing.assert_allclose(np.load(run / "onnx" / task / f"{stem}.npy"),
                                       np.load(run / "pt" / task / f"{stem}.npy"), atol=atol)
        assert (run / "onnx" / "objects" / f"{stem}.png").is_file() and (run / "onnx" / f"{stem}.png").is_file()


def test_bad_input_is_a_clear_error_and_writes_nothing(run: Path, tmp_path: Path) -> None:
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint")
    code, output = _invoke(["export", str(junk)])
    assert code != 0 and "notes.pt" in output and "checkpoint" in output
    weights = run / "runs" / "demo" / "weights" / "last.pt"
    code, output = _invoke(["export", str(weights), "--out", str(tmp_path / "missing" / "m.onnx")])
    assert code != 0 and "missing does not exist" in output
    code, output = _invoke(["export", str(weights), "--out", str(tmp_path / "m.onnx"), "--opset", "99"])
    assert code != 0 and "--opset 99" in output
    code, output = _invoke(["export", str(weights), "--batch", "2", "--dynamic-batch"])
    assert code != 0 and "not both" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]
    assert not list((run / "runs" / "demo" / "weights").glob("last.onnx*"))
