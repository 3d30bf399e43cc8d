"""YOLO reader/writer on real exports (values counted by hand from the label files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import yolo
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
from mtvision.structures import TaskInfo, decode_mask, mask_to_rle, rle_box, segmentation_area

LS = "yolo/HumanSignal__label-studio-sdk/tests/custom/converter/data/test_import_yolo_data"
DATUMARO = "yolo/cvat-ai__datumaro/tests/assets/yolo_dataset"


def objects(rec: DatasetRecord) -> dict[str, list[Annotation]]:
    return {Path(im.file_name).stem: im.targets["objects"] for im in rec.images}


def test_label_studio_darknet_folder(fixtures_dir: Path) -> None:
    rec = yolo.read(fixtures_dir / LS)
    assert rec.tasks["objects"].classes == ["closed_door", "opened_door", "bus", "number"]
    counts = {k: len(v) for k, v in objects(rec).items()}
    assert counts == {"img_1": 4, "img_2": 4, "img_3": 4, "img_4": 4, "img_5": 3, "img_6": 4, "img_7": 2}
    im7 = next(im for im in rec.images if im.file_name == "images/img_7.jpeg")
    assert (im7.width, im7.height) == (640, 427)
    bus, number = im7.targets["objects"]
    assert bus.category == 2 and bus.box == pytest.approx((122, 125, 607, 328))
    assert number.category == 3 and number.box == pytest.approx((146, 147, 166, 178))


def test_cvat_darknet_obj_data(fixtures_dir: Path) -> None:
    rec = yolo.read(fixtures_dir / DATUMARO / "yolo")
    (im,) = rec.images
    assert (im.file_name, im.width, im.height, im.meta) == ("obj_train_data/1.jpg", 15, 10, {"subset": "train"})
    assert len(rec.tasks["objects"].classes) == 10
    assert [(a.category, a.box) for a in im.targets["objects"]] == [
        (2, pytest.approx((0, 2, 4, 4), abs=1e-4)), (4, pytest.approx((3, 3, 5, 6), abs=1e-4))]


@pytest.mark.parametrize("folder, expected", [
    ("yolov8_detection", [(2, (0, 2, 4, 4)), (4, (3, 3, 5, 6))]),
    ("yolov8_segmentation", [(2, (1.5, 1, 6, 5)), (4, (3, 1.5, 6, 7.5))]),
    ("yolov8_oriented_boxes", [(2, (0.200955, 1.51795, 4.79904, 6.48205)),
                               (4, (3.633975, -0.09808, 8.366025, 6.09808))]),
])
def test_ultralytics_detect_segment_obb(fixtures_dir: Path, folder: str, expected: list) -> None:
    assert yolo.detect(fixtures_dir / DATUMARO / folder)
    anns = yolo.read(fixtures_dir / DATUMARO / folder / "data.yaml").images[0].targets["objects"]
    assert [a.category for a in anns] == [c for c, _ in expected]
    for a, (_, box) in zip(anns, expected):
        assert a.box == pytest.approx(box, abs=1e-4)
    if folder != "yolov8_detection":
        assert [len(a.segmentation[0]) for a in anns] == ([6, 10] if folder == "yolov8_segmentation" else [8, 8])


@pytest.mark.parametrize("folder", ["yolov8_pose", "yolov8_pose_two_values_per_point"])
def test_pose_three_and_two_values_per_point(fixtures_dir: Path, folder: str) -> None:
    rec = yolo.read(fixtures_dir / DATUMARO / folder)
    (ann,) = rec.images[0].targets["objects"]
    assert rec.tasks["objects"].keypoint_names == ["0", "1", "2"]
    assert ann.keypoints == pytest.approx([1.5, 2.0, 2, 4.5, 4.0, 2, 7.5, 6.0, 2])


def make_images(root: Path, names: list[str], size: tuple[int, int] = (40, 20)) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(root / name)


def test_ultralytics_pose_yaml_with_relative_path(fixtures_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg" / "coco8-pose.yaml"
    cfg.parent.mkdir()
    shutil.copy(fixtures_dir / "yolo/ultralytics__ultralytics/ultralytics/cfg/datasets/coco8-pose.yaml", cfg)
    root = tmp_path / "datasets" / "coco8-pose"  # path: ../datasets/coco8-pose, relative to the YAML
    make_images(root, ["images/train/a.jpg", "images/val/b.jpg"])
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.5 " + "0.25 0.5 2 " * 16 + "0 0 0\n")
    rec = yolo.read(cfg)
    assert rec.tasks["objects"].flip_idx == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert rec.tasks["objects"].classes == ["person"] and len(rec.tasks["objects"].keypoint_names) == 17
    a, b = rec.images
    assert (a.meta, b.meta, b.targets) == ({"subset": "train"}, {"subset": "val"}, {})
    keypoints = a.targets["objects"][0].keypoints
    assert keypoints[:3] == [10.0, 10.0, 2] and keypoints[-3:] == [0, 0, 0]


def test_empty_label_is_negative_missing_is_unlabelled(tmp_path: Path) -> None:
    make_images(tmp_path, ["images/a.png", "images/b.png"])
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/a.txt").write_text("\n")
    (tmp_path / "classes.txt").write_text("cat\n")
    a, b = yolo.read(tmp_path).images
    assert a.targets == {"objects": []} and b.targets == {}


def write_dataset(tmp_path: Path, label: str, config: dict | None = None) -> Path:
    make_images(tmp_path, ["images/train/a.png"])
    (tmp_path / "labels/train").mkdir(parents=True)
    (tmp_path / "labels/train/a.txt").write_text(label)
    cfg = {"train": "images/train", "names": {0: "a", 1: "b"}, **(config or {})}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "data.yaml"


@pytest.mark.parametrize("label, config, problem", [
    ("0 0.5 0.5 0.2\n", {}, "line 1: 4 values"),
    ("0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n", {}, "line 2: class '2' is not an index in 0..1"),
    ("0 0.5 nan 0.2 0.2\n", {}, "non-finite"),
    ("zero 0.5 0.5 0.2 0.2\n", {}, "could not convert"),
    ("0 0.5 0.5 -0.2 0.2\n", {}, "width and height"),
    ("0 0.5 0.5 0.2 0.2 0.1 0.1\n", {"kpt_shape": [2, 3]}, "pose line needs 11 values"),
    ("0 0.5 0.5 0.2 0.2 0.1 0.1 5\n", {"kpt_shape": [1, 3]}, "visibility"),
    ("", {"kpt_shape": [2, 4]}, "kpt_shape"),
    ("", {"kpt_shape": [2, 3], "flip_idx": [0, 0]}, "flip_idx"),
    ("", {"names": {0: "a", 2: "b"}}, "keys must be 0..1"),
    ("", {"nc": 3}, "nc = 3"),
    ("", {"train": "../elsewhere"}, "outside the dataset root"),
    ("", {"val": "images/missing"}, "neither an image folder nor a list file"),
    ("", {"path": "nowhere"}, "is not a folder"),
])
def test_malformed_inputs_name_the_problem(tmp_path: Path, label: str, config: dict, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        yolo.read(write_dataset(tmp_path, label, config))


def test_invalid_yaml_and_unreadable_image(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "")
    path.write_text("names: [a, b\n")
    with pytest.raises(FormatError, match="invalid YAML"):
        yolo.read(path)
    path.write_text("names: [a]\ntrain: images/train\n")
    (tmp_path / "images/train/a.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match="cannot read image size"):
        yolo.read(path)


def assert_same_objects(first: DatasetRecord, second: DatasetRecord) -> None:
    assert second.tasks["objects"].classes == first.tasks["objects"].classes
    ours, theirs = objects(first), objects(second)
    assert ours.keys() == theirs.keys()
    for stem, anns in ours.items():
        im = next(i for i in first.images if Path(i.file_name).stem == stem)
        assert [a.category for a in anns] == [b.category for b in theirs[stem]]
        for a, b in zip(anns, theirs[stem]):
            assert b.box == pytest.approx(a.box, abs=1e-3)
            if a.keypoints:
                assert b.keypoints[2::3] == a.keypoints[2::3]
                assert b.keypoints == pytest.approx(a.keypoints, abs=1e-3)
            if a.segmentation:
                assert segmentation_area(b.segmentation, im.height, im.width) == \
                    pytest.approx(segmentation_area(a.segmentation, im.height, im.width), rel=0.02, abs=2)


@pytest.mark.parametrize("source", [LS, f"{DATUMARO}/yolov8_segmentation", f"{DATUMARO}/yolov8_pose",
                                    f"{DATUMARO}/yolov8_oriented_boxes"])
def test_round_trip(fixtures_dir: Path, tmp_path: Path, source: str) -> None:
    first = yolo.read(fixtures_dir / source)
    yolo.write(first, tmp_path)
    second = yolo.read(tmp_path / "data.yaml")
    assert_same_objects(first, second)
    assert second.tasks["objects"].keypoint_names == first.tasks["objects"].keypoint_names


def test_writer_joins_parts_and_skips_crowd(tmp_path: Path) -> None:
    make_images(tmp_path / "src", ["a.png"], size=(40, 40))
    square = [[2.0, 2, 12, 2, 12, 12, 2, 12], [20.0, 20, 30, 20, 30, 30, 20, 30]]
    anns = [Annotation(0, (2, 2, 30, 30), square), Annotation(0, (0, 0, 5, 5), iscrowd=True),
            Annotation(0, (1, 1, 4, 4))]
    rec = DatasetRecord(tmp_path / "src", [ImageRecord("a.png", 40, 40, targets={"objects": anns})],
                        {"objects": TaskInfo("instances", ["thing"])})
    yolo.write(rec, tmp_path / "out", images="copy")
    joined, box = yolo.read(tmp_path / "out").images[0].targets["objects"]
    assert segmentation_area(joined.segmentation, 40, 40) == pytest.approx(segmentation_area(square, 40, 40), abs=4)
    assert box.segmentation == [[1, 1, 4, 1, 4, 4, 1, 4]] and box.box == (1, 1, 4, 4)


def test_writer_traces_rle_masks_into_polygons_that_rasterise_back(tmp_path: Path) -> None:
    """A disc and a ring-shaped blob touching the border, as one RLE: written as one joined
    outline, read back and rasterised by pycocotools, the pixels match but for the ring's
    hole (a polygon cannot hold one) and marching squares' half-pixel corner cuts."""
    y, x = np.mgrid[0:40, 0:50] + 0.5
    disc = (x - 12) ** 2 + (y - 14) ** 2 <= 64
    ring = ((x - 40) ** 2 + (y - 30) ** 2 <= 100) & ((x - 40) ** 2 + (y - 30) ** 2 > 9)
    mask = disc | ring | (x < 3) & (y > 35)  # and a corner patch on the image border
    rle = mask_to_rle(mask)
    make_images(tmp_path / "src", ["a.png"], size=(50, 40))
    rec = DatasetRecord(tmp_path / "src", [ImageRecord("a.png", 50, 40, targets={"objects": [
        Annotation(0, rle_box(rle), rle)]})], {"objects": TaskInfo("instances", ["thing"])})
    yolo.write(rec, tmp_path / "out", images="copy")
    (back,) = yolo.read(tmp_path / "out").images[0].targets["objects"]
    filled = mask | ((x - 40) ** 2 + (y - 30) ** 2 <= 9)
    traced = decode_mask(back.segmentation, 40, 50).astype(bool)
    assert (traced & filled).sum() / (traced | filled).sum() > 0.97
    assert not (traced & ~filled).any()  # the outline never reaches past the region
