"""Writing elsewhere: paths rebased or linked, never outside the output, and every dropped task named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtvision.data.convert import materialise, output_path, rebase, referenced_files, write_as
from mtvision.data.formats import combined, voc, yolo
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo


def _record(root: Path) -> DatasetRecord:
    """Two images with boxes (+ keypoints), a scene label and a depth map each."""
    (root / "img").mkdir(parents=True)
    (root / "depth").mkdir()
    images = []
    for i, name in enumerate(["a.png", "b.png"]):
        Image.fromarray(np.full((8, 10, 3), 50 * i, np.uint8)).save(root / "img" / name)
        Image.fromarray(np.full((8, 10), 900, np.uint16)).save(root / "depth" / name)
        boxes = [Annotation(i, (1.0, 1.0, 5.0, 5.0), keypoints=[2.0, 2.0, 2])]
        images.append(ImageRecord(f"img/{name}", 10, 8, id=i + 1, targets={
            "objects": boxes, "scene": i, "depth": DenseRef(f"depth/{name}", scale=1000.0)}))
    tasks = {"objects": TaskInfo("instances", ["cat", "dog"], keypoint_names=["nose"]),
             "scene": TaskInfo("label", ["in", "out"]), "depth": TaskInfo("depth")}
    return DatasetRecord(root, images, tasks)


def test_rebase_rewrites_paths_and_refuses_files_outside(tmp_path: Path) -> None:
    record = _record(tmp_path / "src")
    moved = rebase(record, tmp_path)
    assert moved.root == tmp_path and moved.images[1].file_name == "src/img/b.png"
    assert moved.images[1].targets["depth"] == DenseRef("src/depth/b.png", scale=1000.0)
    with pytest.raises(ValueError, match=f"such as their common ancestor {tmp_path / 'src'}$"):
        rebase(record, tmp_path / "elsewhere")


def test_materialise_links_every_file_and_keeps_the_layout(tmp_path: Path) -> None:
    record = _record(tmp_path / "src")
    linked = materialise(record, tmp_path / "out")
    assert [im.file_name for im in linked.images] == ["img/a.png", "img/b.png"]
    link = tmp_path / "out" / "depth" / "b.png"
    assert link.is_symlink() and link.resolve() == (tmp_path / "src" / "depth" / "b.png").resolve()
    assert sorted(referenced_files(linked)) == sorted(str(tmp_path / "out" / p) for p in
                                                      ("img/a.png", "img/b.png", "depth/a.png", "depth/b.png"))
    clash = DatasetRecord(tmp_path / "src", [ImageRecord("a.png", 10, 8), ImageRecord("img/a.png", 10, 8)])
    with pytest.raises(ValueError, match="would overwrite a source file"):
        materialise(clash, tmp_path / "src" / "img")  # a.png would be linked over img/a.png
    assert not (tmp_path / "src" / "img" / "a.png").is_symlink()


def test_write_as_yolo_warns_about_every_task_it_cannot_hold(tmp_path: Path) -> None:
    record = _record(tmp_path / "src")
    warnings = write_as(record, "yolo", tmp_path / "yolo")
    assert warnings == ["yolo cannot hold task(s) scene (label), depth (depth): not written"]
    back = yolo.read(tmp_path / "yolo")
    assert back.coverage() == {"objects": 2} and back.tasks["objects"].keypoint_names == ["0"]


def test_write_as_voc_drops_keypoints_and_links_the_images(tmp_path: Path) -> None:
    record = _record(tmp_path / "src")
    warnings = write_as(record, "voc", tmp_path / "voc")
    assert warnings == ["voc cannot hold task(s) scene (label), depth (depth): not written",
                        "voc cannot hold the keypoints of 2 object(s) of task 'objects': not written"]
    back = voc.read(tmp_path / "voc")
    assert [im.file_name for im in back.images] == ["JPEGImages/a.png", "JPEGImages/b.png"]
    assert (tmp_path / "voc" / "JPEGImages" / "a.png").is_symlink()
    assert [a.category for im in back.images for a in im.targets["objects"]] == [0, 1]


def test_write_as_combined_keeps_everything_relative_to_the_json(tmp_path: Path) -> None:
    record = _record(tmp_path / "src")
    assert write_as(record, "combined", tmp_path / "src") == []
    assert output_path("combined", tmp_path / "src") == tmp_path / "src" / "dataset.json"
    assert combined.read(tmp_path / "src" / "dataset.json") == record
