"""Property tests: mutated Label Studio / CVAT / LabelMe inputs load or raise FormatError, nothing else.

Each example starts from a real export and replaces or deletes one random node (JSON) or
attribute/element (XML), so the mutations reach deep into otherwise valid files.
"""

from __future__ import annotations

import json
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


def assert_loads_or_format_error(read: Any, path: Path) -> None:
    try:
        assert isinstance(read(path), DatasetRecord)
    except FormatError:
        pass


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


@SETTINGS
@given(data=st.data())
def test_labelme_mutations(data: st.DataObject, fixtures_dir: Path, work: Path) -> None:
    seed = json.loads((fixtures_dir / "labelme/wkentaro__labelme/examples/primitives/primitives.json").read_text())
    seed["shapes"][1]["group_id"] = seed["shapes"][5]["group_id"] = 3  # a circle with a point keypoint
    folder = work / "labelme"
    folder.mkdir(exist_ok=True)
    (folder / "primitives.json").write_text(json.dumps(mutate_json(seed, data.draw)))
    assert_loads_or_format_error(labelme.read, folder)


CVAT_EXTRA = """<image id="9" name="s.jpg" width="10" height="8">
  <box label="label1" xtl="0" ytl="0" xbr="4" ybr="2" rotation="30" group_id="1"/>
  <polygon label="label1" points="0,0;4,0;4,2" group_id="1"/>
  <points label="label2" points="1,1" group_id="1"/>
  <mask label="label2" rle="1,4,1" left="1" top="2" width="3" height="2"/>
  <ellipse label="label1" cx="5" cy="4" rx="2" ry="1"/>
  <tag label="label2"/>
</image>"""


@SETTINGS
@given(data=st.data())
def test_cvat_mutations(data: st.DataObject, fixtures_dir: Path, work: Path) -> None:
    root = ET.parse(fixtures_dir / "cvat/cvat-ai__datumaro/tests/assets/cvat_dataset/for_images/train.xml").getroot()
    root.append(ET.fromstring(CVAT_EXTRA))
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
