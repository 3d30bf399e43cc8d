"""CVAT for images 1.1 reader: Datumaro's real test exports + small synthetic XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtvision.data.errors import FormatError
from mtvision.data.formats import cvat
from mtvision.structures import segmentation_area

TASK = "cvat/cvat-ai__datumaro/tests/assets/cvat_dataset/for_images/train.xml"
PROJECT = "cvat/openvinotoolkit__datumaro/tests/assets/cvat_dataset/for_images/export_project"

META = """<meta><task><labels>
  <label><name>person</name><attributes><attribute><name>age</name><input_type>number</input_type>
  </attribute></attributes></label>
  <label><name>nose</name></label><label><name>car</name></label>
  <label><name>day</name><type>tag</type></label>
</labels></task></meta>"""


def write(tmp_path: Path, images: str, meta: str = META) -> Path:
    path = tmp_path / "annotations.xml"
    path.write_text(f"<annotations><version>1.1</version>{meta}{images}</annotations>")
    return path


def test_every_fixture_loads(fixtures_dir: Path) -> None:
    files = sorted((fixtures_dir / "cvat").rglob("*.xml"))
    assert len(files) == 3
    for f in files:
        assert cvat.detect(f) and cvat.read(f).images


def test_task_export_with_skeletons(fixtures_dir: Path) -> None:
    rec = cvat.read(fixtures_dir / TASK)
    objects = rec.tasks["objects"]
    assert objects.classes == ["label1", "label2", "skeleton"]  # <meta> order, sub-labels excluded
    assert objects.keypoint_names == ["1", "2", "3", "4"]
    # svg lines: node 3 -> node 2 and node 1 -> node 4 (nodes named "1".."4")
    assert objects.skeleton == [(2, 1), (0, 3)]
    img0, img1 = rec.images
    assert (img0.file_name, img0.width, img0.height) == ("images/img0.jpg", 8, 8)
    # img0: box label1, polyline label="" (skipped), skeleton; img1: polygon label="" (skipped), points, skeleton
    assert [a.category for a in img0.targets["objects"]] == [0, 2]
    assert [a.category for a in img1.targets["objects"]] == [1, 2]
    assert img0.meta["unlabeled_shapes"] == 1 and img1.meta["unlabeled_shapes"] == 1
    box, skel0 = img0.targets["objects"]
    assert box.box == (0.0, 2.0, 4.0, 4.0)
    assert box.attributes == {"occluded": True, "a1": True, "a2": "v3", "a3": "0003", "a4": 2.4}
    # node 1 is outside="1" on img0, node 3 on img1: not in view -> v=0
    assert skel0.keypoints == [0.0, 0.0, 0, 2.0, 2.0, 2, 3.0, 3.0, 2, 4.0, 4.0, 2]
    assert skel0.box == (2.0, 2.0, 4.0, 4.0)  # bounds of the points in view
    assert img1.targets["objects"][1].keypoints[6:9] == [0.0, 0.0, 0]
    assert img1.targets["objects"][0].attributes["points"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_project_export_subsets(fixtures_dir: Path) -> None:
    rec = cvat.read(fixtures_dir / PROJECT)  # the folder: finds annotations.xml
    assert [im.meta["subset"] for im in rec.images] == ["Test", "Test", "Train", "Train", "Validation", "Validation"]
    assert all((rec.root / im.file_name).is_file() for im in rec.images)
    assert rec.images[2].file_name == "images/Train/img0.jpg"
    train = cvat.read(fixtures_dir / PROJECT, subset="Train")
    assert [im.file_name for im in train.images] == ["images/Train/img0.jpg", "images/Train/img1.jpg"]
    # per image: (box + polyline) and (polygon + points)
    assert sum(len(im.targets["objects"]) for im in rec.images) == 12
    polygon = train.images[1].targets["objects"][0]
    assert polygon.segmentation == [[1.0, 2.0, 3.0, 4.0, 6.0, 5.0]]
    assert segmentation_area(polygon.segmentation, 10, 10) > 0
    assert train.images[0].targets["objects"][1].attributes["polyline"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_rotation_mask_group_and_tags(tmp_path: Path) -> None:
    path = write(tmp_path, """<image id="0" name="a.jpg" width="10" height="8">
      <box label="car" xtl="0" ytl="0" xbr="4" ybr="2" rotation="90"/>
      <mask label="car" rle="1, 4, 1" left="1" top="2" width="3" height="2"/>
      <box label="person" group_id="1" xtl="2" ytl="2" xbr="6" ybr="7"><attribute name="age">31</attribute></box>
      <polygon label="person" group_id="1" points="2,2;6,2;6,7"/>
      <points label="nose" group_id="1" points="4,3"/>
      <ellipse label="car" cx="5" cy="4" rx="2" ry="1"/>
      <tag label="day"/>
    </image><image id="1" name="b.jpg" width="4" height="4"/>""")
    rec = cvat.read(path)
    rotated, mask, person, ellipse = rec.images[0].targets["objects"]
    # a 4x2 box turned 90 degrees about its centre (2, 1) spans x 1..3, y -1..3
    assert rotated.box == pytest.approx((1.0, -1.0, 3.0, 3.0)) and rotated.attributes["rotation"] == 90.0
    assert segmentation_area(rotated.segmentation, 8, 10) > 0
    # rle over its own 3x2 box: 0 | 1 1 1 1 | 0 -> rows [0 1 1], [1 1 0] at (left 1, top 2)
    assert segmentation_area(mask.segmentation, 8, 10) == 4 and mask.box == (1.0, 2.0, 4.0, 4.0)
    assert rec.tasks["objects"].keypoint_names == ["nose"]
    assert person.box == (2.0, 2.0, 6.0, 7.0) and person.keypoints == [4.0, 3.0, 2]
    assert person.segmentation == [[2.0, 2.0, 6.0, 2.0, 6.0, 7.0]] and person.attributes["age"] == 31.0
    assert ellipse.box == pytest.approx((3.0, 3.0, 7.0, 5.0))
    assert rec.tasks["tags"].classes == ["day"] and [im.targets["tags"] for im in rec.images] == [[0], []]
    assert rec.images[1].targets["objects"] == []  # a labelled negative


@pytest.mark.parametrize("images, problem", [
    ('<image id="0" name="a.jpg" width="4" height="4"><box label="dog" xtl="0" ytl="0" xbr="1" ybr="1"/></image>',
     "not declared"),
    ('<image id="0" name="a.jpg" width="4" height="4"><polygon label="car" points="1,2;x"/></image>', "points"),
    ('<image id="0" name="a.jpg" width="4" height="4"><box label="car" xtl="0" ytl="0" xbr="nan" ybr="1"/></image>',
     "finite"),
    ('<image id="0" name="../a.jpg" width="4" height="4"/>', "outside"),
    ('<image id="0" name="a.jpg" width="-4" height="4"/>', "positive"),
    ('<image id="0" name="a.jpg" width="4"/>', "missing field 'height'"),
    ('<image id="0" name="a.jpg" width="4" height="4"><mask label="car" rle="1,2" left="0" top="0" width="2" '
     'height="2"/></image>', "rle sums"),
    ('<image id="0" name="a.jpg" width="4" height="4"><cuboid label="car"/></image>', "unsupported"),
    ('<track id="0" label="car"/>', "not CVAT for images"),
    ('<image id="0" name="a.jpg" width="4" height="4"><box label="car"', "invalid XML"),
])
def test_malformed_input_names_the_problem(tmp_path: Path, images: str, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        cvat.read(write(tmp_path, images))


def test_undeclared_tag_label_becomes_a_class_with_a_warning(tmp_path: Path) -> None:
    # as in CVAT's documentation example: <meta> declares the shape labels only, and the
    # image carries a <tag> whose label is not among them
    meta = "<meta><task><labels><label><name>car</name></label></labels></task></meta>"
    path = write(tmp_path, """<image id="0" name="a.jpg" width="10" height="8">
      <box label="car" xtl="0" ytl="0" xbr="4" ybr="2"/><tag label="sunny" source="manual"/>
    </image><image id="1" name="b.jpg" width="10" height="8"><tag label="rainy" source="manual"/></image>""", meta)
    with pytest.warns(UserWarning, match=r"\['sunny', 'rainy'\] are not declared"):
        rec = cvat.read(path)
    assert rec.tasks["objects"].classes == ["car"]
    assert rec.tasks["tags"].classes == ["sunny", "rainy"] and rec.tasks["tags"].multi_label
    assert [im.targets["tags"] for im in rec.images] == [[0], [1]]
