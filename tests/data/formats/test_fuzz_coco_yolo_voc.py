"""Property tests: malformed or mutated COCO / YOLO / VOC input raises FormatError and nothing else.

Each property writes a generated input to disk, reads it, and accepts two outcomes: a
:class:`FormatError`, or a record that is internally consistent (category indices in
range, finite boxes). Anything else (KeyError, TypeError, a crash in pycocotools...) is a
bug in a reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import coco, voc, yolo
from mtvision.data.record import DatasetRecord

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COCO_KEYS = ["images", "annotations", "categories", "id", "image_id", "category_id", "file_name", "width",
             "height", "bbox", "segmentation", "keypoints", "iscrowd", "name", "skeleton", "counts", "size",
             "attributes", "segments_info", "image"]
leaves = (st.none() | st.booleans() | st.integers(-3, 20) | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=4) | st.sampled_from(["a.jpg", "../x.jpg", "/etc/passwd", "0", "true", "`04n0"]))
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.sampled_from(COCO_KEYS) | st.text(max_size=3), inner, max_size=5),
                           max_leaves=25)


def assert_reads_or_format_error(read: Callable[[], DatasetRecord]) -> None:
    """The property: FormatError, or a consistent record."""
    try:
        record = read()
    except FormatError:
        return
    for im in record.images:
        for task, target in im.targets.items():
            if record.tasks[task].kind != "instances":
                continue
            for ann in target:  # type: ignore[union-attr]
                assert 0 <= ann.category < len(record.tasks[task].classes)
                assert len(ann.box) == 4 and all(math.isfinite(v) for v in ann.box)
                assert ann.box[0] <= ann.box[2] and ann.box[1] <= ann.box[3]


def valid_coco() -> dict[str, Any]:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 6, "height": 4},
                   {"id": "b", "file_name": "sub/b.jpg", "width": 3, "height": 2}],
        "categories": [{"id": 3, "name": "p", "keypoints": ["l", "r"], "skeleton": [[1, 2]]},
                       {"id": 9, "name": "q"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "iscrowd": 0,
             "segmentation": [[0, 0, 2, 0, 2, 2], [3, 3, 4, 3, 4, 4]], "keypoints": [1, 1, 2, 0, 0, 0],
             "attributes": {"occluded": False}},
            {"id": 2, "image_id": "b", "category_id": 9, "bbox": [0, 0, 3, 2], "iscrowd": 1,
             "segmentation": {"size": [2, 3], "counts": [1, 4, 1]}},
            {"id": 3, "image_id": 1, "category_id": 9, "segmentation": {"size": [4, 6], "counts": "9220003"}},
        ],
    }


def paths_of(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document, for picking a place to mutate."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [prefix] + [p for key, child in children for p in paths_of(child, prefix + (key,))]


def mutate(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_valid_coco_base_document_loads(workdir: Path) -> None:
    (workdir / "ann.json").write_text(json.dumps(valid_coco()))
    rec = coco.read(workdir / "ann.json")
    assert [len(im.targets["objects"]) for im in rec.images] == [2, 1]


@FUZZ
@given(doc=json_values)
def test_coco_random_json(workdir: Path, doc: Any) -> None:
    (workdir / "ann.json").write_text(json.dumps(doc))
    assert_reads_or_format_error(lambda: coco.read(workdir / "ann.json"))


@FUZZ
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_coco_mutated_document(workdir: Path, data: st.DataObject, value: Any, delete: bool) -> None:
    doc = valid_coco()
    path = data.draw(st.sampled_from(paths_of(doc)))
    doc = mutate(doc, path, value, delete and bool(path))
    (workdir / "ann.json").write_text(json.dumps(doc))
    assert_reads_or_format_error(lambda: coco.read(workdir / "ann.json"))


@FUZZ
@given(cut=st.integers(0, len(json.dumps(valid_coco())) - 1))
def test_coco_truncated_file(workdir: Path, cut: int) -> None:
    (workdir / "ann.json").write_text(json.dumps(valid_coco())[:cut])
    with pytest.raises(FormatError):
        coco.read(workdir / "ann.json")


label_lines = st.lists(st.lists(st.text("0123456789.-e+naif", min_size=1, max_size=6)
                                | st.sampled_from(["0", "1", "0.5", "0.25", "2", "nan", "-0.1", "1e999"]),
                                max_size=14).map(" ".join), max_size=4).map("\n".join)
yolo_configs = st.fixed_dictionaries({}, optional={
    "kpt_shape": st.sampled_from([[2, 3], [1, 2], [0, 3], [2, 5], "x", [2]]),
    "flip_idx": st.sampled_from([[1, 0], [0], [0, 0], "x"]),
    "names": json_values | st.just(["a", "b"]) | st.just({0: "a", 1: "b"}),
    "train": json_values | st.just("images"), "path": json_values, "nc": st.integers(0, 3)})


@FUZZ
@given(label=label_lines, config=yolo_configs)
def test_yolo_random_labels_and_configs(workdir: Path, label: str, config: dict) -> None:
    if not (workdir / "images" / "a.png").exists():
        (workdir / "images").mkdir()
        (workdir / "labels").mkdir()
        Image.new("RGB", (8, 4)).save(workdir / "images" / "a.png")
    (workdir / "labels" / "a.txt").write_text(label)
    (workdir / "data.yaml").write_text(yaml.safe_dump({"names": ["a", "b"], "train": "images", **config}))
    assert_reads_or_format_error(lambda: yolo.read(workdir / "data.yaml"))


@FUZZ
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_yolo_garbage_yaml(workdir: Path, text: str) -> None:
    (workdir / "data.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_reads_or_format_error(lambda: yolo.read(workdir / "data.yaml"))


VOC_XML = ("<annotation><filename>a.jpg</filename><size><width>10</width><height>8</height></size>"
           "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
           "<ymax>6</ymax></bndbox><part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
           "<ymax>2</ymax></bndbox></part><actions><jumping>1</jumping></actions></object></annotation>")
XML_TEXTS = ["a.jpg", "10", "8", "cat", "0", "1", "5", "6", "2", "head"]


@FUZZ
@given(data=st.data(), cut=st.none() | st.integers(0, len(VOC_XML)), png=st.none() | st.binary(max_size=40))
def test_voc_mutated_xml_and_masks(workdir: Path, data: st.DataObject, cut: int | None, png: bytes | None) -> None:
    text = VOC_XML
    for old in data.draw(st.lists(st.sampled_from(XML_TEXTS), max_size=3, unique=True)):
        new = data.draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=5)
                        | st.sampled_from(["-1", "1e999", "nan", "../../x.jpg", "3.5", "person"]))
        text = text.replace(f">{old}<", f">{new.replace('<', '').replace('&', '')}<", 1)
    (workdir / "Annotations").mkdir(exist_ok=True)
    (workdir / "Annotations" / "a.xml").write_text(text[:cut])
    (workdir / "SegmentationObject").mkdir(exist_ok=True)
    mask = workdir / "SegmentationObject" / "a.png"
    mask.unlink(missing_ok=True)
    if png is not None:
        mask.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    assert_reads_or_format_error(lambda: voc.read(workdir))
