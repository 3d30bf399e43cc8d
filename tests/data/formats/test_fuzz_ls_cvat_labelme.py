"""Property tests of the Label Studio / CVAT / LabelMe readers.

* Mutations: each example starts from a real export and replaces or deletes one random
  node (JSON) or attribute/element (XML), so the mutations reach deep into otherwise valid
  files. Two outcomes are accepted: a :class:`FormatError`, or a record that is internally
  consistent (class indices in range, finite ordered boxes, one ``(x, y, v)`` per named
  keypoint). Anything else (KeyError, TypeError...) is a bug in a reader.
* Round trips: random valid boxes and keypoints are written in each format; what is read
  back must be exactly what was written (classes, boxes, keypoints, image sizes).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtvision.data.errors import FormatError
from mtvision.data.formats import cvat, label_studio, labelme
from mtvision.data.formats._shapes import decode_cvat_rle, decode_ls_brush
from mtvision.data.record import DatasetRecord

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LS = "label_studio/HumanSignal__label-studio-sdk/tests/custom/converter/data"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
XML_TEXT = st.sampled_from(["", "0", "-1", "1e9", "nan", "3.5", "1,2", "1,2;3,4;5", "a", "../x.jpg", "true", "1, x"])


def mutate_json(data: Any, draw: st.DrawFn) -> Any:
    """Walk down a random path, then replace or delete the node found there."""
    parent, key, node = None, None, data
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 4)) > 0:
        parent, key = node, draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        node = node[key]
    if parent is None:
        return draw(JSON_VALUES)
    if draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(JSON_VALUES)
    return data


def assert_consistent(record: DatasetRecord) -> None:
    """Every target of the record indexes its task's label space; boxes are finite and ordered."""
    for image in record.images:
        for task, target in image.targets.items():
            info = record.tasks[task]
            if info.kind == "label":
                assert all(0 <= i < len(info.classes) for i in (target if isinstance(target, list) else [target]))
                continue
            assert info.kind == "instances", info.kind
            for ann in target:  # type: ignore[union-attr]
                assert 0 <= ann.category < len(info.classes)
                assert len(ann.box) == 4 and all(math.isfinite(v) for v in ann.box)
                assert ann.box[0] <= ann.box[2] and ann.box[1] <= ann.box[3]
                if ann.keypoints is not None:
                    assert len(ann.keypoints) == 3 * len(info.keypoint_names)
                    assert all(math.isfinite(v) for v in ann.keypoints) and set(ann.keypoints[2::3]) <= {0, 1, 2}


def assert_loads_or_format_error(read: Any, path: Path) -> None:
    """The property: FormatError, or a consistent record."""
    try:
        record = read(path)
    except FormatError:
        return
    assert_consistent(record)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def ls_seed(fixtures_dir: Path) -> list[dict]:
    tasks = json.loads((fixtures_dir / LS / "test_export_yolo" / "data_keypoints.json").read_text())
    tasks += json.loads((fixtures_dir / LS / "test_export_coco" / "data.json").read_text())
    brush = {"id": "b", "type": "brushlabels", "from_name": "b", "original_width": 2, "original_height": 1,
             "value": {"rle": [0, 0, 0, 8, 57, 27, 255, 0, 3, 255, 224, 0, 96, 0], "brushlabels": ["x"]}}
    tasks.append({"id": 9, "data": {"image": "b.png"}, "annotations": [{"result": [brush]}]})
    return tasks


@SETTINGS
@given(data=st.data())
def test_label_studio_mutations(data: st.DataObject, ls_seed: list[dict], work: Path) -> None:
    doc = mutate_json(json.loads(json.dumps(ls_seed)), data.draw)
    path = work / "ls.json"
    path.write_text(json.dumps(doc))
    assert_loads_or_format_error(label_studio.read, path)


@SETTINGS
@given(data=st.data())
def test_label_studio_json_min_mutations(data: st.DataObject, work: Path) -> None:
    rows = [{"id": 1, "image": "/data/upload/2/0a1b2c3d-a.jpg", "annotation_id": 4, "annotator": 1,
             "label": [{"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 30, "rectanglelabels": ["a"],
                        "original_width": 50, "original_height": 40},
                       {"points": [[1, 1], [5, 1], [5, 5]], "polygonlabels": ["b"],
                        "original_width": 50, "original_height": 40}],
             "tags": {"choices": ["p", "q"]}}]
    path = work / "ls_min.json"
    path.write_text(json.dumps(mutate_json(rows, data.draw)))
    assert_loads_or_format_error(label_studio.read, path)


@pytest.fixture(scope="module")
def labelme_seed(fixtures_dir: Path) -> dict:
    seed = json.loads((fixtures_dir / "labelme/wkentaro__labelme/examples/primitives/primitives.json").read_text())
    seed["shapes"][1]["group_id"] = seed["shapes"][5]["group_id"] = 3  # a circle with a point keypoint
    return seed


@SETTINGS
@given(data=st.data())
def test_labelme_mutations(data: st.DataObject, labelme_seed: dict, work: Path) -> None:
    folder = work / "labelme"
    folder.mkdir(exist_ok=True)
    (folder / "primitives.json").write_text(json.dumps(mutate_json(json.loads(json.dumps(labelme_seed)), data.draw)))
    assert_loads_or_format_error(labelme.read, folder)


CVAT_EXTRA = """<image id="9" name="s.jpg" width="10" height="8">
  <box label="label1" xtl="0" ytl="0" xbr="4" ybr="2" rotation="30" group_id="1"/>
  <polygon label="label1" points="0,0;4,0;4,2" group_id="1"/>
  <points label="label2" points="1,1" group_id="1"/>
  <mask label="label2" rle="1,4,1" left="1" top="2" width="3" height="2"/>
  <ellipse label="label1" cx="5" cy="4" rx="2" ry="1"/>
  <tag label="label2"/>
</image>"""


@pytest.fixture(scope="module")
def cvat_seed(fixtures_dir: Path) -> bytes:
    root = ET.parse(fixtures_dir / "cvat/cvat-ai__datumaro/tests/assets/cvat_dataset/for_images/train.xml").getroot()
    root.append(ET.fromstring(CVAT_EXTRA))
    return ET.tostring(root)


@SETTINGS
@given(data=st.data())
def test_cvat_mutations(data: st.DataObject, cvat_seed: bytes, work: Path) -> None:
    root = ET.fromstring(cvat_seed)
    elements = [el for el in root.iter() if el is not root]
    target = data.draw(st.sampled_from(elements))
    keys = sorted(target.attrib)
    if keys and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()):
            del target.attrib[key]
        else:
            target.attrib[key] = data.draw(XML_TEXT)
    else:
        target.text = data.draw(XML_TEXT)
    path = work / "annotations.xml"
    path.write_bytes(ET.tostring(root))
    assert_loads_or_format_error(cvat.read, path)


def test_unmutated_seeds_read_with_their_contents(ls_seed: list[dict], labelme_seed: dict, cvat_seed: bytes,
                                                 work: Path) -> None:
    """The mutations start from valid documents (else every example would be a FormatError)."""
    (work / "seed_ls.json").write_text(json.dumps(ls_seed))
    ls = label_studio.read(work / "seed_ls.json")
    assert ls.tasks["objects"].classes == ["keypoint_label1", "keypoint_label2", "person", "polygon_label",
                                           "rectangle_label", "x"]
    assert [[a.category for a in im.targets["objects"]] for im in ls.images] == [[2], [4, 3, 0, 1], [5]]
    person = ls.images[0].targets["objects"][0]
    assert person.keypoints[2::3] == [0, 0, 2, 2, 2]  # nose, left and right eye joined to their person
    assert ls.images[2].targets["objects"][0].box == (0.0, 0.0, 1.0, 1.0)  # the brush's one pixel

    (work / "seed_labelme").mkdir(exist_ok=True)
    (work / "seed_labelme" / "primitives.json").write_text(json.dumps(labelme_seed))
    lm = labelme.read(work / "seed_labelme")
    assert lm.tasks["objects"].keypoint_names == ["point"] and len(lm.images[0].targets["objects"]) == 7
    circle = lm.images[0].targets["objects"][1]
    assert lm.tasks["objects"].classes[circle.category] == "circle" and circle.keypoints == [345.0, 174.0, 2]

    (work / "seed.xml").write_bytes(cvat_seed)
    cv = cvat.read(work / "seed.xml")
    assert cv.tasks["objects"].keypoint_names == ["1", "2", "3", "4", "label2"]
    assert [[a.category for a in im.targets["objects"]] for im in cv.images] == [[0, 2], [1, 2], [0, 1, 0]]
    grouped = cv.images[2].targets["objects"][0]  # box + polygon + point of group 1
    assert grouped.keypoints[-3:] == [1.0, 1.0, 2] and grouped.attributes["rotation"] == 30.0


LABELS = ["bus", "car", "dog"]
KEYPOINT_NAMES = ["head", "tail"]
fraction = st.floats(0, 1)  # coordinates as fractions of the image's width / height
objects = st.fixed_dictionaries({
    "label": st.sampled_from(LABELS),
    "corners": st.tuples(fraction, fraction, fraction, fraction),  # two opposite corners, any order
    "keypoints": st.dictionaries(st.sampled_from(KEYPOINT_NAMES), st.tuples(fraction, fraction), max_size=2),
})
scenes = st.lists(st.tuples(st.integers(1, 640), st.integers(1, 480), st.lists(objects, min_size=1, max_size=4)),
                  min_size=1, max_size=3)
ROUND_TRIP = settings(SETTINGS, max_examples=60)


def written_box(obj: dict, w: int, h: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = obj["corners"]
    return (min(x0, x1) * w, min(y0, y1) * h, max(x0, x1) * w, max(y0, y1) * h)


def assert_read_back(record: DatasetRecord, scenes: list, classes: list[str], exact: bool) -> None:
    """Classes, image sizes, and per object its class, box and keypoints, in the order written."""
    names = sorted({n for _, _, objs in scenes for obj in objs for n in obj["keypoints"]})
    assert record.tasks["objects"].classes == classes and record.tasks["objects"].keypoint_names == names
    assert [(im.width, im.height) for im in record.images] == [(w, h) for w, h, _ in scenes]
    same = (lambda v: v) if exact else (lambda v: pytest.approx(v, rel=1e-9, abs=1e-9))
    for image, (w, h, objs) in zip(record.images, scenes, strict=True):
        annotations = image.targets["objects"]
        assert [classes[a.category] for a in annotations] == [obj["label"] for obj in objs]
        for ann, obj in zip(annotations, objs, strict=True):
            assert ann.box == same(written_box(obj, w, h))
            points = [obj["keypoints"].get(n) for n in names]
            flat = [c for p in points for c in ((p[0] * w, p[1] * h, 2) if p else (0.0, 0.0, 0))]
            assert ann.keypoints == (same(flat) if names else None)


@ROUND_TRIP
@given(scenes=scenes)
def test_label_studio_reads_back_what_was_written(scenes: list, work: Path) -> None:
    tasks = []
    for i, (w, h, objs) in enumerate(scenes):
        results = []
        for j, obj in enumerate(objs):
            x0, y0, x1, y1 = (v * 100 for v in written_box(obj, 1, 1))  # percent of the image
            results.append({"id": f"r{j}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                            "original_width": w, "original_height": h,
                            "value": {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "rotation": 0,
                                      "rectanglelabels": [obj["label"]]}})
            results += [{"id": f"k{j}{name}", "type": "keypointlabels", "from_name": "kp", "to_name": "image",
                         "original_width": w, "original_height": h, "parentID": f"r{j}",
                         "value": {"x": x * 100, "y": y * 100, "width": 0.5, "keypointlabels": [name]}}
                        for name, (x, y) in obj["keypoints"].items()]
        tasks.append({"id": i, "data": {"image": f"/data/upload/1/{i}.jpg"}, "annotations": [{"result": results}]})
    path = work / "round_trip.json"
    path.write_text(json.dumps(tasks))
    labels = sorted({obj["label"] for _, _, objs in scenes for obj in objs})
    assert_read_back(label_studio.read(path), scenes, labels, exact=False)  # percent -> pixels rounds


@ROUND_TRIP
@given(scenes=scenes, declared=st.permutations(LABELS + KEYPOINT_NAMES))
def test_cvat_reads_back_what_was_written(scenes: list, declared: list[str], work: Path) -> None:
    labels = "".join(f"<label><name>{name}</name></label>" for name in declared)
    root = ET.fromstring(f"<annotations><version>1.1</version><meta><task><labels>{labels}</labels></task></meta>"
                         "</annotations>")
    for i, (w, h, objs) in enumerate(scenes):
        image = ET.SubElement(root, "image", id=str(i), name=f"{i}.jpg", width=str(w), height=str(h))
        for j, obj in enumerate(objs):
            x0, y0, x1, y1 = written_box(obj, w, h)
            ET.SubElement(image, "box", label=obj["label"], group_id=str(j + 1), xtl=repr(x0), ytl=repr(y0),
                          xbr=repr(x1), ybr=repr(y1))
            for name, (x, y) in obj["keypoints"].items():
                ET.SubElement(image, "points", label=name, group_id=str(j + 1), points=f"{x * w!r},{y * h!r}")
    path = work / "round_trip.xml"
    path.write_bytes(ET.tostring(root))
    assert_read_back(cvat.read(path), scenes, declared, exact=True)  # classes: the declared order


@ROUND_TRIP
@given(scenes=scenes)
def test_labelme_reads_back_what_was_written(scenes: list, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("labelme_round_trip")
    for i, (w, h, objs) in enumerate(scenes):
        shapes = []
        for j, obj in enumerate(objs):
            x0, y0, x1, y1 = obj["corners"]  # as drawn: any two opposite corners
            shapes.append({"label": obj["label"], "points": [[x0 * w, y0 * h], [x1 * w, y1 * h]],
                           "group_id": j, "shape_type": "rectangle", "flags": {}})
            shapes += [{"label": name, "points": [[x * w, y * h]], "group_id": j, "shape_type": "point",
                        "flags": {}} for name, (x, y) in obj["keypoints"].items()]
        (folder / f"{i:03d}.json").write_text(json.dumps(
            {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": f"{i:03d}.jpg", "imageData": None,
             "imageWidth": w, "imageHeight": h}))
    labels = sorted({obj["label"] for _, _, objs in scenes for obj in objs})
    assert_read_back(labelme.read(folder), scenes, labels, exact=True)


@SETTINGS
@given(rle=st.lists(st.integers(-2, 300), max_size=24), w=st.integers(1, 6), h=st.integers(1, 6))
def test_brush_decoder_never_crashes(rle: list[int], w: int, h: int) -> None:
    try:
        assert decode_ls_brush(rle, w, h, "f", "e").shape == (h, w)
    except FormatError:
        pass


@SETTINGS
@given(counts=st.lists(st.integers(-3, 12), max_size=8), w=st.integers(1, 5), h=st.integers(1, 5))
def test_cvat_rle_decoder_never_crashes(counts: list[int], w: int, h: int) -> None:
    try:
        mask = decode_cvat_rle(counts, w, h, "f", "e")
        assert mask.shape == (h, w) and mask.sum() == sum(np.asarray(counts)[1::2])
    except FormatError:
        pass
