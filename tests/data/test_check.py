"""The dataset doctor finds each kind of problem, and the cleaned copy drops exactly those."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from PIL import Image

from mtvision.data.check import check_record, fixed
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

TASKS = {"objects": TaskInfo(kind="instances", classes=["a", "b"], keypoint_names=["p", "q"]),
         "scene": TaskInfo(kind="label", classes=["in", "out"]),
         "depth": TaskInfo(kind="depth")}


def _write_png(path: Path, seed: int) -> bytes:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _record(tmp_path: Path) -> DatasetRecord:
    good = _write_png(tmp_path / "good.png", 0)
    (tmp_path / "copy.png").write_bytes(good)
    (tmp_path / "cut.png").write_bytes(_write_png(tmp_path / "cut.png", 1)[:60])  # truncated
    anns = [
        Annotation(category=0, box=(1.0, 1.0, 8.0, 8.0), segmentation=[[1, 1, 8, 1, 8, 8]],
                   keypoints=[2.0, 2.0, 2, 3.0, 3.0, 1]),              # fine
        Annotation(category=5, box=(1.0, 1.0, 8.0, 8.0)),              # class out of range
        Annotation(category=1, box=(5.0, 5.0, 5.0, 9.0)),              # degenerate
        Annotation(category=1, box=(10.0, 10.0, 30.0, 12.0)),          # out of bounds
        Annotation(category=1, box=(1.0, 1.0, 4.0, 4.0), segmentation=[[1, 1, 4, 4]]),  # polygon of 2 points
        Annotation(category=1, box=(1.0, 1.0, 4.0, 4.0), keypoints=[1.0, 1.0, 2]),      # 1 of 2 keypoints
    ]
    images = [
        ImageRecord("good.png", 16, 16, targets={"objects": anns, "scene": 1, "depth": DenseRef("nope.png")}),
        ImageRecord("copy.png", 16, 16, targets={"scene": 7}),
        ImageRecord("cut.png", 16, 16, targets={"scene": 0}),
        ImageRecord("good.png", 16, 16),
    ]
    return DatasetRecord(tmp_path, images, TASKS)


def test_every_problem_is_found(tmp_path: Path) -> None:
    findings = check_record(_record(tmp_path))
    codes = sorted((f.image, f.code, f.index) for f in findings)
    assert codes == sorted([
        ("good.png", "class_out_of_range", 1), ("good.png", "degenerate_box", 2),
        ("good.png", "box_out_of_bounds", 3), ("good.png", "invalid_polygon", 4),
        ("good.png", "keypoint_count", 5), ("good.png", "missing_map", None),
        ("copy.png", "duplicate_image", None), ("copy.png", "class_out_of_range", None),
        ("cut.png", "unreadable_image", None),
        ("good.png", "duplicate_image", None), ("good.png", "unlabelled", None),
    ])
    assert all(f.severity == "warning" for f in findings if f.code in ("duplicate_image", "unlabelled"))
    assert "outside 0..1" in str(next(f for f in findings if f.code == "class_out_of_range" and f.index == 1))


def test_fixed_copy_drops_only_errors_and_leaves_the_source(tmp_path: Path) -> None:
    record = _record(tmp_path)
    before = copy.deepcopy(record)
    clean = fixed(record, check_record(record))
    assert record == before
    assert [im.file_name for im in clean.images] == ["good.png", "copy.png", "good.png"]
    first = clean.images[0]
    assert [a.category for a in first.targets["objects"]] == [0]
    assert "depth" not in first.targets and first.targets["scene"] == 1
    assert "scene" not in clean.images[1].targets
    remaining = check_record(clean, read_images=False)
    assert remaining and all(f.severity == "warning" for f in remaining)
