"""Label Studio reader: real exports from label-studio-sdk's converter tests + small synthetic tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mtvision.data.errors import FormatError
from mtvision.data.formats import label_studio

LS = "label_studio/HumanSignal__label-studio-sdk/tests/custom/converter/data"


def shoelace(flat: list[float]) -> float:
    xs, ys = np.array(flat[::2]), np.array(flat[1::2])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def encode_brush(mask: np.ndarray, literal_head: int = 0) -> list[int]:
    """Test-side LS brush encoder: RGBA bytes, optional literal chunk first, then repeat runs."""
    values = np.repeat(mask.ravel().astype(np.uint8) * 255, 4)
    bits = f"{len(values):032b}" + f"{8 - 1:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
    if literal_head:  # x=0, size class 0 (3 bits): literal_head values follow
        bits += "0" + "00" + f"{literal_head - 1:03b}" + "".join(f"{v:08b}" for v in values[:literal_head])
    i = literal_head
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i] and j - i < 1 << 16:
            j += 1
        bits += "1" + "11" + f"{j - i - 1:016b}" + f"{values[i]:08b}"  # x=1, size class 3 (16 bits)
        i = j
    bits += "0" * (-len(bits) % 8)
    return [int(bits[k : k + 8], 2) for k in range(0, len(bits), 8)]


def write(tmp_path: Path, data: object, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def task(results: list[dict], image: str = "/data/upload/1/3f2a9b1c-image.jpg", **extra: object) -> dict:
    return {"id": 1, "data": {"image": image}, "annotations": [{"id": 10, "result": results, **extra}]}


def rect(rid: str, label: str, x: float, y: float, w: float, h: float, rotation: float = 0) -> dict:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 200, "original_height": 100,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}}


def test_every_image_export_fixture_loads(fixtures_dir: Path) -> None:
    files = sorted((fixtures_dir / LS).rglob("*.json"))
    assert len(files) == 7
    for f in files:
        assert label_studio.detect(f)
        if f.name == "csv_test2.json":  # a text/music task: data has no image at all
            with pytest.raises(FormatError, match="no image in task data"):
                label_studio.read(f)
        else:
            assert label_studio.read(f).images


def test_rectangle_polygon_and_loose_keypoints(fixtures_dir: Path) -> None:
    folder = fixtures_dir / LS / "test_export_coco"
    rec = label_studio.read(folder / "data.json", label_config=folder / "label_config.xml")
    objects = rec.tasks["objects"]
    # config order for regions, then the keypoint labels used by point-only instances
    assert objects.classes == ["rectangle_label", "polygon_label", "keypoint_label1", "keypoint_label2"]
    assert objects.keypoint_names == ["keypoint_label1", "keypoint_label2"]
    (image,) = rec.images
    assert (image.width, image.height) == (500, 320)
    rect_ann, poly_ann, kp1, kp2 = image.targets["objects"]
    # raw percent values from data.json scaled by original_width/height = 500 x 320
    x, y = 31.941923774954628 * 5, 4.113475177304964 * 3.2
    assert rect_ann.box == pytest.approx((x, y, x + 6.352087114337568 * 5, y + 9.929078014184398 * 3.2))
    raw = [(41.74228675136116, 3.546099290780142), (41.560798548094375, 12.198581560283687),
           (45.37205081669691, 12.4822695035461)]
    expected = [c for px, py in raw for c in (px * 5, py * 3.2)]
    assert poly_ann.segmentation == [pytest.approx(expected)]
    assert shoelace(poly_ann.segmentation[0]) == pytest.approx(shoelace(expected))
    # the two keypoints lie outside both regions: each is its own point-only instance
    assert kp1.keypoints == pytest.approx([22.595281306715066 * 5, 31.773049645390074 * 3.2, 2, 0.0, 0.0, 0])
    assert kp2.keypoints[2::3] == [0, 2]


def test_keypoints_join_their_parent_box(fixtures_dir: Path) -> None:
    folder = fixtures_dir / LS / "test_export_yolo"
    rec = label_studio.read(folder / "data_keypoints.json", label_config=folder / "label_config_keypoints.xml")
    objects = rec.tasks["objects"]
    assert objects.classes == ["person"] and len(objects.keypoint_names) == 17
    assert objects.flip_idx[1:3] == [2, 1]  # left_eye <-> right_eye
    (person,) = rec.images[0].targets["objects"]
    assert person.keypoints[2::3].count(2) == 3  # nose, left_eye, right_eye (three keypointlabels results)
    assert person.keypoints[:3] == pytest.approx([64.44444444444444 * 2.16, 39.290780141843975 * 1.74, 2])
    assert rec.images[0].file_name == "image1.jpg"


def test_annotator_choice(fixtures_dir: Path) -> None:
    path = fixtures_dir / LS / "test_export_yolo" / "data.json"
    # task 1 has annotation 1 (user 2, 21:04:40) and annotation 2 (user 1, 21:05:03)
    latest, first = label_studio.read(path), label_studio.read(path, annotator="first")
    assert latest.images[0].meta["ls_annotation_id"] == 2 and first.images[0].meta["ls_annotation_id"] == 1
    assert label_studio.read(path, annotator=2).images[0].meta["ls_annotation_id"] == 1
    assert [len(im.targets["objects"]) for im in latest.images] == [2, 2]
    assert latest.images[0].targets["objects"][1].box[0] == pytest.approx(49.18032786885246 * 28)


def test_rotated_rectangles_keep_corners(fixtures_dir: Path) -> None:
    rec = label_studio.read(fixtures_dir / LS / "test_export_yolo" / "data_obb.json")
    assert [len(im.targets["objects"]) for im in rec.images] == [23, 1, 1]  # results per task
    assert rec.tasks["objects"].classes == ["Butterfly", "butterfly"]  # LS keeps case as typed
    ann = rec.images[1].targets["objects"][0]
    w, h = 73.84200723054623 * 4.33, 24.43625178984779 * 7.68  # original 433 x 768
    assert shoelace(ann.segmentation[0]) == pytest.approx(w * h)  # rotation keeps the area
    assert ann.attributes["rotation"] == pytest.approx(345.1381651311527)
    xs, ys = ann.segmentation[0][::2], ann.segmentation[0][1::2]
    assert ann.box == pytest.approx((min(xs), min(ys), max(xs), max(ys)))


def test_polygon_fixture(fixtures_dir: Path) -> None:
    rec = label_studio.read(fixtures_dir / LS / "test_export_yolo" / "data_polygons.json")
    (ann,) = rec.images[0].targets["objects"]
    assert len(ann.segmentation[0]) == 2 * 37 and (rec.images[0].width, rec.images[0].height) == (640, 426)


def test_brush_rle_decodes_to_the_painted_mask(tmp_path: Path) -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:30, 50:90] = True
    mask[60, 5:9] = True
    brush = {"id": "b", "type": "brushlabels", "from_name": "brush", "to_name": "image", "original_width": 200,
             "original_height": 100, "value": {"format": "rle", "rle": encode_brush(mask, 5), "brushlabels": ["cat"]}}
    (ann,) = label_studio.read(write(tmp_path, [task([brush])])).images[0].targets["objects"]
    decoded = mask_utils.decode({"size": ann.segmentation["size"], "counts": ann.segmentation["counts"].encode()})
    assert decoded.sum() == 20 * 40 + 4 and np.array_equal(decoded.astype(bool), mask)
    assert ann.box == (5.0, 10.0, 90.0, 61.0)


def test_split_results_upload_prefix_and_choices(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "image.jpg").write_bytes(b"")  # only the un-prefixed name exists
    geometry = {**rect("r1", "car", 10, 20, 30, 40), "type": "rectangle"}
    del geometry["value"]["rectanglelabels"]
    results = [geometry, {"id": "r1", "type": "labels", "from_name": "cls", "to_name": "image",
                          "value": {"labels": ["car"]}},
               {"id": "r1", "type": "choices", "from_name": "colour", "to_name": "image",
                "value": {"choices": ["red"]}},
               {"id": "c", "type": "choices", "from_name": "weather", "to_name": "image",
                "value": {"choices": ["rain"]}}]
    rec = label_studio.read(write(tmp_path, [task(results)]), image_dir="images")
    image = rec.images[0]
    assert image.file_name == "images/image.jpg" and image.meta["match_name"] == "image.jpg"
    assert image.meta["ls_image"] == "/data/upload/1/3f2a9b1c-image.jpg"
    (car,) = image.targets["objects"]
    assert car.box == pytest.approx((20.0, 20.0, 80.0, 60.0)) and car.attributes == {"colour": ["red"]}
    assert rec.tasks["weather"].classes == ["rain"] and image.targets["weather"] == 0


def test_json_min_rows_are_regrouped_per_task(tmp_path: Path) -> None:
    base = {"image": "/data/local-files/?d=pics/a.png", "id": 7}
    rows = [{**base, "annotation_id": 1, "annotator": 3, "updated_at": "2024-01-01",
             "label": [{"x": 10, "y": 10, "width": 50, "height": 50, "rotation": 0, "rectanglelabels": ["dog"],
                        "original_width": 100, "original_height": 80}], "tags": {"choices": ["indoor", "day"]}},
            {**base, "annotation_id": 2, "annotator": 4, "updated_at": "2024-02-01",
             "label": [{"x": 20, "y": 20, "width": 10, "height": 10, "rotation": 0, "rectanglelabels": ["cat"],
                        "original_width": 100, "original_height": 80},
                       {"x": 50, "y": 50, "width": 0.1, "keypointlabels": ["eye"],
                        "original_width": 100, "original_height": 80}]}]
    rec = label_studio.read(write(tmp_path, rows))
    (image,) = rec.images
    assert image.file_name == "pics/a.png" and image.meta["ls_annotation_id"] == 2
    cat, eye = image.targets["objects"]
    assert rec.tasks["objects"].classes == ["cat", "eye"] and eye.keypoints == [50.0, 40.0, 2]
    older = label_studio.read(write(tmp_path, rows), annotator=3)
    assert older.images[0].targets["tags"] == [0, 1] and older.tasks["tags"].multi_label


def test_cancelled_only_task_is_unlabelled(tmp_path: Path) -> None:
    rec = label_studio.read(write(tmp_path, [task([rect("a", "car", 0, 0, 10, 10)], was_cancelled=True)]))
    assert rec.images[0].targets == {} and (rec.images[0].width, rec.images[0].height) == (0, 0)


@pytest.mark.parametrize("data, problem", [
    ([task([rect("a", "car", 0, 0, 10, 10)], image="/data/local-files/?d=../../etc/passwd")], "outside"),
    ([task([{**rect("a", "car", 0, 0, 10, 10), "original_width": 0}])], "must be positive"),
    ([task([{**rect("a", "car", 0, 0, 10, 10), "value": {"x": 1, "y": 1, "width": 2, "height": 2}}])], "no label"),
    ([task([{"id": "p", "type": "polygonlabels", "from_name": "p", "original_width": 9, "original_height": 9,
             "value": {"points": [[1, 1], [2, 2]], "polygonlabels": ["a"]}}])], "needs 3"),
    ([task([{"id": "b", "type": "brushlabels", "from_name": "b", "original_width": 4, "original_height": 4,
             "value": {"rle": [0, 0, 0, 1], "brushlabels": ["a"]}}])], "brush"),
    ({"not": "tasks"}, "expected a list"),
    ([{"data": {"image": "a.jpg"}, "annotations": [{"result": [{"type": "rectanglelabels"}]}]}], "missing field"),
])
def test_malformed_input_names_the_problem(tmp_path: Path, data: object, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        label_studio.read(write(tmp_path, data))
