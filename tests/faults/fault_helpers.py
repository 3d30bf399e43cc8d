"""The fault-injection suite's shared helpers: a tiny run, the CLI runner, broken datasets.

Every case runs on the CPU in seconds: a 32-pixel synthetic set, two dense tasks, a
16-channel neck. Cases that need a real process (kill -9, SIGTERM) start ``mtvision`` with
the same arguments; the rest run the CLI in-process through typer's runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from typer.testing import CliRunner

from mtvision.cli import app

torch.set_num_threads(1)

# 16 images in batches of 4: four steps an epoch, so an interrupt can land mid-epoch.
TINY = ["data.synthetic.num_train=16", "data.synthetic.num_val=4", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=4", "model.neck_channels=16", "train.epochs=2", "train.predict_images=0",
        "train.warmup_epochs=0", "balancing.diagnostics=false", "run.threads=1", "tasks.classes=null",
        "tasks.lighting=null", "tasks.normals=null", "tasks.edges=null", "tasks.objects=null"]
MTVISION = str(Path(sys.executable).with_name("mtvision"))


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr) of ``mtvision args``."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_clean(output: str, *names: str) -> None:
    """A short ``error:`` message naming each of ``names``, and no traceback."""
    assert "Traceback" not in output and "error:" in output, output
    message = output[output.index("error:"):]
    assert len(message.strip().splitlines()) <= 6, message
    for name in names:
        assert name in message, (name, message)


def spawn(cwd: Path, *args: str) -> subprocess.Popen:
    """``mtvision args`` as its own process (for signals), output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MTVISION_DEBUG", None)
    return subprocess.Popen([MTVISION, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    expected, actual = weights(a), weights(b)
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


# --- one small broken dataset per format reader ------------------------------------------


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def combined(root: Path) -> Path:
    _image(root / "images" / "a.png")
    (root / "dataset.json").write_text('{"images": [{"id": 1, "width": 8}], "annotations": [], "categories": [], '
                                       '"tasks": {}}')
    return root / "dataset.json"


def coco(root: Path) -> Path:
    _image(root / "a.png")
    (root / "instances.json").write_text('{"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], '
                                         '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2')
    return root / "instances.json"


def label_studio(root: Path) -> Path:
    _image(root / "a.png")
    (root / "export.json").write_text('[{"id": 1, "data": {"image": "a.png"}, "annotations": [{"result": '
                                      '[{"type": "rectanglelabels", "value": {"x": "ten"}}]}]}]')
    return root / "export.json"


def labelme(root: Path) -> Path:
    _image(root / "a.png")
    (root / "a.json").write_text('{"version": "5.0.1", "shapes": [{"label": "cat", "points": [[1, 2], [3]], '
                                 '"shape_type": "polygon"}], "imagePath": "a.png", "imageHeight": 8, "imageWidth": 8}')
    return root


def cvat(root: Path) -> Path:
    _image(root / "images" / "a.png")
    (root / "annotations.xml").write_text('<?xml version="1.0"?><annotations><version>1.1</version>'
                                          '<image id="0" name="a.png" width="8" height="8"><box label="cat" xtl="1"')
    return root / "annotations.xml"


def voc(root: Path) -> Path:
    _image(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text("<annotation><filename>a.jpg</filename><size><width>8")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    return root


def yolo(root: Path) -> Path:
    _image(root / "images" / "train" / "a.png")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 nan-ish 0.2\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: {0: cat}\n")
    return root


def folders(root: Path) -> Path:
    """An image-folder classification set whose one image is cut short (read when training)."""
    _image(root / "cat" / "a.png")
    data = (root / "cat" / "a.png").read_bytes()
    (root / "cat" / "a.png").write_bytes(data[: len(data) // 2])
    return root


MAKERS: dict[str, Callable[[Path], Path]] = {
    "combined": combined, "coco": coco, "label_studio": label_studio, "labelme": labelme, "cvat": cvat,
    "voc": voc, "yolo": yolo, "folders": folders,
}
