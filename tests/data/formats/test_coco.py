"""COCO reader/writer against real exports, with pycocotools as the independent reference."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mtvision.data.errors import FormatError
from mtvision.data.formats import coco
from mtvision.data.record import DatasetRecord
from mtvision.structures import TaskInfo, segmentation_area

DATUMARO = "coco/openvinotoolkit__datumaro/tests/assets/coco_dataset"
INSTANCE_FILES = [
    f"{DATUMARO}/coco_instances/annotations/instances_train.json",
    f"{DATUMARO}/coco_instances/annotations/instances_val.json",
    f"{DATUMARO}/coco_person_keypoints/annotations/person_keypoints_train.json",
    f"{DATUMARO}/coco_person_keypoints/annotations/person_keypoints_val.json",
    "coco/wkentaro__labelme/examples/instance_segmentation/data_dataset_coco/annotations.json",
    "coco/HumanSignal__label-studio-sdk/tests/custom/converter/data/test_import_coco/coco_import_input.json",
]


def quiet_coco(path: Path | str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def anns_in_file_order(record: DatasetRecord, gt: COCO) -> list:
    """(ours, pycocotools') annotation pairs, matched image by image in file order."""
    pairs = []
    for im in record.images:
        ours = im.targets.get("objects", [])
        theirs = gt.imgToAnns[im.id]
        assert len(ours) == len(theirs), im.file_name
        pairs += zip(ours, theirs)
    return pairs


def assert_matches_pycocotools(record: DatasetRecord, gt: COCO) -> None:
    task = record.tasks["objects"]
    assert len(record.images) == len(gt.imgs)
    assert sum(len(im.targets.get("objects", [])) for im in record.images) == len(gt.anns)
    id_to_name = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    for ours, theirs in anns_in_file_order(record, gt):
        assert task.classes[ours.category] == id_to_name[theirs["category_id"]]
        x, y, w, h = theirs["bbox"]
        assert ours.box == pytest.approx((x, y, x + w, y + h))
        labelled = sum(1 for v in theirs.get("keypoints", [])[2::3] if v > 0)
        assert sum(1 for v in (ours.keypoints or [])[2::3] if v > 0) == labelled
        if theirs.get("segmentation"):
            im = gt.imgs[theirs["image_id"]]
            expected = int(mask_utils.area(gt.annToRLE(theirs)))
            assert segmentation_area(ours.segmentation, im["height"], im["width"]) == expected


@pytest.mark.parametrize("rel", INSTANCE_FILES, ids=lambda p: Path(p).stem)
def test_fixture_matches_pycocotools(fixtures_dir: Path, rel: str) -> None:
    assert coco.detect(fixtures_dir / rel)
    assert_matches_pycocotools(coco.read(fixtures_dir / rel), quiet_coco(fixtures_dir / rel))


def test_non_contiguous_ids_polygon_rle_and_attributes(fixtures_dir: Path) -> None:
    rec = coco.read(fixtures_dir / DATUMARO / "coco_instances/annotations/instances_val.json")
    task = rec.tasks["objects"]
    assert task.classes == ["a", "b", "c"] and task.category_ids == [1, 2, 4]
    assert rec.root.name == "val" and rec.image_path(rec.images[0]).is_file()
    poly, rle = rec.images[0].targets["objects"]
    assert (poly.category, poly.iscrowd, poly.attributes) == (0, False, {"x": 1, "y": "hello"})
    assert (rle.category, rle.iscrowd, rle.segmentation["counts"]) == (1, True, [0, 20, 30])
    assert segmentation_area(rle.segmentation, 10, 5) == 20


def test_zero_based_skeleton_and_unnamed_keypoints(fixtures_dir: Path) -> None:
    rec = coco.read(fixtures_dir / DATUMARO / "coco_person_keypoints/annotations/person_keypoints_train.json")
    task = rec.tasks["objects"]
    assert task.skeleton == [(0, 1), (1, 2)] and task.keypoint_names == ["0", "1", "2"]
    assert rec.images[0].targets["objects"][0].keypoints == [0, 0, 0, 0, 2, 1, 4, 1, 2]


def test_string_iscrowd_and_extra_fields(fixtures_dir: Path) -> None:
    rec = coco.read(fixtures_dir / INSTANCE_FILES[-1])
    ann = rec.images[0].targets["objects"][0]
    assert ann.iscrowd is False
    assert ann.attributes == {"isbbox": "false", "color": "#d446da", "metadata": {}}
    assert rec.images[0].meta["path"] == "image1.jpg"


def test_panoptic_segments_become_instances(fixtures_dir: Path) -> None:
    png = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
        fixtures_dir / DATUMARO / "coco_panoptic/annotations/panoptic_val/b.png")).astype(np.int64)
    ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
    rec = coco.read(fixtures_dir / DATUMARO / "coco_panoptic/annotations/panoptic_val.json")
    anns = rec.images[0].targets["objects"]
    assert [(a.category, a.iscrowd) for a in anns] == [(0, False), (1, True)]
    assert [int(mask_utils.area(a.segmentation)) for a in anns] == [int((ids == 7).sum()), int((ids == 20).sum())]


@pytest.mark.parametrize("rel, problem", [
    (f"{DATUMARO}/coco_panoptic/annotations/panoptic_train.json", "a.png is 5x5, the image is 10x5"),
    ("coco/openvinotoolkit__datumaro/tests/assets/segment_anything_dataset/b.json", "RLE size [5, 10] differs"),
])
def test_masks_of_the_wrong_size_are_refused(fixtures_dir: Path, rel: str, problem: str) -> None:
    with pytest.raises(FormatError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        coco.read(fixtures_dir / rel)


def test_segment_anything_file(fixtures_dir: Path) -> None:
    rec = coco.read(fixtures_dir / "coco/openvinotoolkit__datumaro/tests/assets/segment_anything_dataset/a.json")
    (ann,) = rec.images[0].targets["objects"]
    assert rec.tasks["objects"].classes == ["object"] and ann.box == (3.0, 1.0, 4.0, 5.0)
    assert segmentation_area(ann.segmentation, 5, 10) == 4 and ann.attributes["predicted_iou"] == pytest.approx(0.26338)


@pytest.mark.parametrize("name", ["instances_val2014_fakesegm100_results.json",
                                  "person_keypoints_val2014_fakekeypoints100_results.json"])
def test_results_file_with_ground_truth(fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    path = fixtures_dir / "coco/cocodataset__cocoapi/results" / name
    with pytest.raises(FormatError, match="needs its ground truth"):
        coco.read(path)
    results = json.loads(path.read_text())
    sizes = {r["image_id"]: r.get("segmentation", {}).get("size", [1000, 1000]) for r in results}
    truth = {"images": [{"id": i, "file_name": f"{i}.jpg", "height": h, "width": w} for i, (h, w) in sizes.items()],
             "categories": [{"id": c, "name": str(c)} for c in sorted({r["category_id"] for r in results})]}
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    rec = coco.read(path, images_from=tmp_path / "gt.json")
    loaded = quiet_coco(tmp_path / "gt.json").loadRes(str(path))
    ours = [a for im in rec.images for a in im.targets["objects"]]
    assert len(ours) == len(loaded.anns) == len(results)
    assert sorted(a.attributes["score"] for a in ours) == sorted(a["score"] for a in loaded.anns.values())
    labelled = sum(1 for a in loaded.anns.values() for v in a.get("keypoints", [])[2::3] if v > 0)
    assert sum(1 for a in ours for v in (a.keypoints or [])[2::3] if v > 0) == labelled
    areas = sorted(int(mask_utils.area(a["segmentation"])) for a in loaded.anns.values() if "segmentation" in a)
    assert sorted(int(mask_utils.area(a.segmentation)) for a in ours if a.segmentation) == areas


def minimal(**changes: object) -> dict:
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8},
                       {"id": 2, "file_name": "b.jpg", "width": 10, "height": 8}],
            "categories": [{"id": 1, "name": "p", "keypoints": ["left_eye", "right_eye", "nose"],
                            "skeleton": [[1, 2], [2, 3]]}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": True,
                             "keypoints": [2, 2, 2, 3, 3, 1.0, 0, 0, 0]}]}
    data.update(changes)
    return data


def read_dict(tmp_path: Path, data: object, **options: object) -> DatasetRecord:
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return coco.read(tmp_path / "ann.json", **options)


def test_negative_vs_unlabelled_and_one_based_skeleton(tmp_path: Path) -> None:
    rec = read_dict(tmp_path, minimal())
    task = rec.tasks["objects"]
    assert task.skeleton == [(0, 1), (1, 2)] and task.flip_idx == [1, 0, 2]
    keypoints = rec.images[0].targets["objects"][0].keypoints
    assert keypoints == [2, 2, 2, 3, 3, 1, 0, 0, 0] and {type(v) for v in keypoints[2::3]} == {int}  # 1.0 -> 1
    assert rec.images[0].targets["objects"][0].iscrowd is True
    assert rec.images[1].targets == {"objects": []}
    unlabelled = read_dict(tmp_path, {k: v for k, v in minimal().items() if k != "annotations"})
    assert all(im.targets == {} for im in unlabelled.images)
    ambiguous = mutated("categories.0.skeleton", [[1, 2]])
    assert read_dict(tmp_path, ambiguous).tasks["objects"].skeleton == [(0, 1)]
    assert read_dict(tmp_path, ambiguous, skeleton_base=0).tasks["objects"].skeleton == [(1, 2)]


def mutated(path: str, value: object) -> dict:
    data = minimal()
    *keys, last = path.split(".")
    node = data
    for key in keys:
        node = node[int(key) if key.isdigit() else key]
    node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("path, value, problem", [
    ("annotations.0.bbox", [1, 2, 3], "annotations\\[0\\] \\(id=1\\)"),
    ("annotations.0.bbox", [1, 2, "3", 4], "wrong type"),
    ("annotations.0.category_id", 9, "unknown category_id 9"),
    ("annotations.0.image_id", 9, "unknown image_id 9"),
    ("annotations.0.keypoints", [1, 2, 3], "list of 9 numbers"),
    ("annotations.0.iscrowd", 2, "iscrowd"),
    ("annotations.0.segmentation", [[1, 2, 3, 4]], "at least 3"),
    ("annotations.0.segmentation", {"size": [8, 10], "counts": [0, 5]}, "cover 5 pixels"),
    ("images.0.file_name", "../../etc/passwd", "outside the dataset root"),
    ("images.0.width", -3, "width must be a positive integer"),
    ("images.1.id", 1, "duplicate image id 1"),
    ("categories.0.skeleton", [[0, 3]], "does not fit 3 keypoints"),
])
def test_malformed_entries_name_the_problem(tmp_path: Path, path: str, value: object, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        read_dict(tmp_path, mutated(path, value))


def test_round_trip_keeps_everything(fixtures_dir: Path, tmp_path: Path) -> None:
    for i, rel in enumerate(INSTANCE_FILES):
        first = coco.read(fixtures_dir / rel)
        coco.write(first, tmp_path / f"{i}.json")
        gt = quiet_coco(tmp_path / f"{i}.json")  # pycocotools loads what we wrote
        assert len(gt.anns) == sum(len(im.targets["objects"]) for im in first.images)
        second = coco.read(tmp_path / f"{i}.json", images_dir=first.root)
        assert second.tasks["objects"] == first.tasks["objects"]
        for a, b in zip(first.images, second.images):
            assert (a.file_name, a.width, a.height, a.id, a.meta) == (b.file_name, b.width, b.height, b.id, b.meta)
            assert len(a.targets["objects"]) == len(b.targets["objects"])
            for x, y in zip(a.targets["objects"], b.targets["objects"]):
                assert (x.category, x.iscrowd, x.keypoints) == (y.category, y.iscrowd, y.keypoints)
                assert x.attributes == y.attributes
                assert y.box == pytest.approx(x.box)
                if x.segmentation:
                    assert segmentation_area(y.segmentation, a.height, a.width) == \
                        segmentation_area(x.segmentation, a.height, a.width)


def test_writer_on_a_plain_task_info(tmp_path: Path) -> None:
    rec = read_dict(tmp_path, minimal())
    plain = copy.deepcopy(rec)
    plain.tasks["objects"] = TaskInfo(**{k: getattr(rec.tasks["objects"], k) for k in
                                       ("kind", "classes", "keypoint_names", "skeleton", "flip_idx")})
    coco.write(plain, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["categories"][0]["id"] == 1
    coco.write(plain, tmp_path / "out.json", category_ids=[7])
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["categories"][0]["id"] == 7 and data["categories"][0]["skeleton"] == [[1, 2], [2, 3]]
    assert data["annotations"][0] == {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 4, 4], "area": 16,
                                      "iscrowd": 1, "segmentation": [], "keypoints": [2, 2, 2, 3, 3, 1, 0, 0, 0],
                                      "num_keypoints": 2}
    with pytest.raises(ValueError, match="no instance task 'parts'"):
        coco.write(rec, tmp_path / "x.json", task="parts")


def test_detect(fixtures_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "ls.json").write_text('[{"annotations": [], "data": {}}]')
    assert not coco.detect(tmp_path / "ls.json")
    assert not coco.detect(fixtures_dir / "voc")
    assert coco.detect(fixtures_dir / "coco/openvinotoolkit__datumaro/tests/assets/segment_anything_dataset/a.json")
