"""The combined mtvision JSON: lossless round trip, COCO compatibility, refused input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from mtvision.data.errors import FormatError
from mtvision.data.formats import combined
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

KEYPOINTS = [10.5, 12.25, 2, 0.0, 0.0, 0, 30.1, 14.7, 1]


def make_record(root: Path) -> DatasetRecord:
    """Every target type: two instance tasks, both label kinds, every dense kind, odd ids."""
    tasks = {
        "objects": TaskInfo(kind="instances", classes=["ball", "cube"], keypoint_names=["top", "left", "right"],
                            skeleton=[(0, 1), (0, 2)], flip_idx=[0, 2, 1], keypoint_sigmas=[0.1, 0.2, 0.2]),
        "parts": TaskInfo(kind="instances", classes=["wheel"]),
        "classes": TaskInfo(kind="label", classes=["a", "b", "c"], multi_label=True),
        "lighting": TaskInfo(kind="label", classes=["day", "night"]),
        "semseg": TaskInfo(kind="semantic", classes=["floor", "wall"], ignore_index=255),
        "depth": TaskInfo(kind="depth"),
        "normals": TaskInfo(kind="normals"),
        "edges": TaskInfo(kind="edges"),
    }
    objects = [
        Annotation(category=1, box=(1.1, 2.3, 40.7, 30.9), segmentation=[[1.1, 2.3, 40.7, 2.3, 20.0, 30.9]],
                   keypoints=KEYPOINTS, attributes={"occluded": True, "color": "red"}),
        Annotation(category=0, box=(0.0, 0.0, 10.0, 4.0), iscrowd=True,
                   segmentation={"size": [40, 50], "counts": "04T100000000000000000Pb1"}),
        Annotation(category=0, box=(-7.499999999799334e-06, 2.0, 3.9999975000000005, 7.25)),  # box only; x1 + w
        # rounds to 3.999997500000001 unless the writer nudges w (a real YOLO-converted box)
    ]
    parts = [Annotation(category=0, box=(2.0, 1.0, 4.0, 3.0),
                        segmentation={"size": [40, 50], "counts": [41, 2, 38, 2, 1917]})]
    images = [
        ImageRecord(file_name="images/a.png", width=50, height=40, id=7, targets={
            "objects": objects, "parts": parts, "classes": [0, 2], "lighting": 1,
            "semseg": DenseRef("semseg/a.png"), "depth": DenseRef("depth/a.png", scale=1000.0),
            "normals": DenseRef("normals/a.npy"), "edges": DenseRef("edges/a.png")}),
        ImageRecord(file_name="images/b.png", width=50, height=40, id="b-17",
                    targets={"objects": [], "lighting": 0}),
        ImageRecord(file_name="images/c.png", width=50, height=40, targets={"semseg": DenseRef("semseg/c.png")},
                    meta={"split": "val", "weather": ["rain", "fog"]}),
    ]
    return DatasetRecord(root=root, images=images, tasks=tasks)


def test_write_then_read_loses_nothing(tmp_path: Path) -> None:
    record = make_record(tmp_path)
    back = combined.read(combined.write(record, tmp_path / "data.json"))
    assert back == record
    assert back.images[0].targets["objects"][0].keypoints == KEYPOINTS
    assert back.images[1].targets["objects"] == []  # a labelled negative stays labelled
    assert "objects" not in back.images[2].targets  # an unlabelled image stays unlabelled


def test_pycocotools_reads_the_instances(tmp_path: Path) -> None:
    path = combined.write(make_record(tmp_path), tmp_path / "data.json")
    coco = COCO(str(path))
    assert len(coco.imgs) == 3 and len(coco.anns) == 4 and len(coco.cats) == 3
    first = coco.loadCats(1)[0]
    assert (first["name"], first["keypoints"], first["skeleton"]) == ("ball", ["top", "left", "right"], [[1, 2], [1, 3]])
    assert coco.loadCats(3)[0]["name"] == "wheel" and coco.loadCats(3)[0]["task"] == "parts"
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[7]))
    assert [a["num_keypoints"] for a in anns if "keypoints" in a] == [2]
    assert anns[0]["bbox"] == pytest.approx([1.1, 2.3, 39.6, 28.6])
    assert [int(coco.annToMask(a).sum()) for a in anns[1:2] + anns[3:]] == [40, 4]
    assert [a["area"] for a in anns[1:2] + anns[3:]] == [40.0, 4.0]


def test_first_instance_task_is_plain_coco(tmp_path: Path) -> None:
    data = json.loads(combined.write(make_record(tmp_path), tmp_path / "data.json").read_text())
    assert [c["id"] for c in data["categories"] if c["task"] == "objects"] == [1, 2]
    assert data["images"][0]["id"] == 7 and "source_id" not in data["images"][0]
    assert data["images"][0]["dense"]["depth"] == {"path": "depth/a.png", "scale": 1000.0}
    assert data["images"][0]["labels"] == {"classes": [0, 2], "lighting": 1}
    assert ["bbox_xyxy" in a for a in data["annotations"]] == [False, False, True, False]  # only where XYWH rounds


def test_detect(tmp_path: Path) -> None:
    path = combined.write(make_record(tmp_path), tmp_path / "data.json")
    plain = tmp_path / "coco.json"
    plain.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert combined.detect(path) and not combined.detect(plain) and not combined.detect(tmp_path / "none.json")


def _corrupt(tmp_path: Path, edit) -> Path:
    path = combined.write(make_record(tmp_path), tmp_path / "data.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("edit", "entry", "problem"), [
    (lambda d: d["images"][0].update(file_name="../../etc/passwd"), "images[0]", "outside the dataset root"),
    (lambda d: d["images"][0]["dense"].update(semseg="/abs/x.png"), "images[0].dense.semseg", "outside"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0] (id=1)", "bbox must be 4 numbers"),
    (lambda d: d["annotations"][0].update(category_id=99), "annotations[0] (id=1)", "category_id 99"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 5] * 3), "annotations[0] (id=1)", "visibility"),
    (lambda d: d["annotations"][1]["segmentation"].update(size=[4, 5]), "annotations[1] (id=2)", "RLE size"),
    (lambda d: d["images"][0]["labels"].update(lighting=5), "images[0].labels.lighting", "not in [0, 2)"),
    (lambda d: d["images"][0]["labels"].update(classes=1), "images[0].labels.classes", "multi-label"),
    (lambda d: d["tasks"]["depth"].update(kind="lidar"), "tasks.depth", "'kind' must be one of"),
    (lambda d: d["images"][1].pop("width"), "images[1]", "needs 'id'"),
])
def test_malformed_input_names_file_entry_and_problem(tmp_path: Path, edit, entry: str, problem: str) -> None:
    path = _corrupt(tmp_path, edit)
    with pytest.raises(FormatError) as info:
        combined.read(path)
    assert info.value.file == str(path) and info.value.entry == entry and problem in info.value.problem


def test_write_refuses_images_outside_the_json_folder(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="outside"):
        combined.write(make_record(tmp_path), tmp_path / "sub" / "data.json")


def test_coco_category_ids_survive_a_conversion(tmp_path: Path) -> None:
    from mtvision.data.formats.coco_categories import CocoTaskInfo

    info = CocoTaskInfo(kind="instances", classes=["person", "car"], category_ids=[1, 3], supercategories=["p", None])
    record = DatasetRecord(root=tmp_path, tasks={"objects": info}, images=[
        ImageRecord("a.png", 8, 8, id=4, targets={"objects": [Annotation(category=1, box=(1.0, 1.0, 3.0, 3.0))]})])
    path = combined.write(record, tmp_path / "data.json")
    assert combined.read(path) == record
    assert COCO(str(path)).loadAnns(1)[0]["category_id"] == 3 and COCO(str(path)).cats[3]["supercategory"] is None
