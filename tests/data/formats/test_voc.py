"""Pascal VOC reader/writer on real exports (values counted by hand from the XML / PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import voc
from mtvision.data.record import DatasetRecord
from mtvision.structures import segmentation_area

LABELME = "voc/wkentaro__labelme/examples"
DATUMARO = "voc/openvinotoolkit__datumaro/tests/assets/voc_dataset/voc_dataset1"


def names(rec: DatasetRecord, stem: str) -> list[str]:
    im = next(i for i in rec.images if i.id == stem)
    return [rec.tasks["objects"].classes[a.category] for a in im.targets["objects"]]


def test_labelme_detection_export_is_zero_based(fixtures_dir: Path) -> None:
    rec = voc.read(fixtures_dir / LABELME / "bbox_detection/data_dataset_voc")
    assert [len(im.targets["objects"]) for im in rec.images] == [2, 4, 3]
    im = rec.images[1]
    assert (im.file_name, im.width, im.height) == ("JPEGImages/2011_000006.jpg", 500, 375)
    assert rec.image_path(im).is_file() and names(rec, "2011_000006") == ["person"] * 4
    assert im.targets["objects"][0].box == (91, 107, 240, 330)  # fractional elsewhere -> 0-based: unchanged
    assert im.targets["objects"][2].box == pytest.approx((254.3846, 115.3846, 369.3846, 292.3846), abs=1e-4)
    assert "semseg" not in rec.tasks


def test_datumaro_export_attributes_parts_masks_subsets(fixtures_dir: Path) -> None:
    with pytest.raises(FormatError, match="colour-coded"):
        voc.read(fixtures_dir / DATUMARO)
    rec = voc.read(fixtures_dir / DATUMARO, semseg=False)
    first, second = rec.images
    assert (first.meta, second.meta, second.targets) == ({"subset": "train"}, {"subset": "test"}, {})
    cat, person = first.targets["objects"]
    assert names(rec, "2007_000001") == ["cat", "person"]
    assert cat.attributes == {"pose": "Unspecified", "truncated": True, "difficult": False}
    assert cat.box == (1, 2, 3, 4)  # the part's 5.5 makes the file 0-based
    assert segmentation_area(cat.segmentation, 10, 20) == 200 and person.segmentation is None
    assert person.attributes["parts"] == [{"name": "head", "box": (5.5, 6, 7.5, 8)}]
    assert person.attributes["actions"]["phoning"] is True and person.attributes["actions"]["jumping"] is False
    labels = rec.tasks["image_labels"].classes
    assert sorted(labels[i] for i in first.targets["image_labels"]) == sorted(
        ["aeroplane", "bird", "bottle", "car", "chair", "diningtable", "horse", "ignored", "person", "sheep", "train"])
    forced = voc.read(fixtures_dir / DATUMARO, semseg=False, one_based=True).images[0].targets["objects"]
    assert forced[0].box == (0, 1, 3, 4) and forced[1].attributes["parts"][0]["box"] == (4.5, 5, 7.5, 8)


def test_labelme_instance_export_without_xml(fixtures_dir: Path) -> None:
    root = fixtures_dir / LABELME / "instance_segmentation/data_dataset_voc"
    rec = voc.read(root)
    assert rec.tasks["semseg"].classes[0] == "_background_" and rec.tasks["objects"].classes[14] == "person"
    assert names(rec, "2011_000003") == ["person", "person", "bottle"]
    assert names(rec, "2011_000006") == ["person", "person", "person", "chair", "person", "sofa"]
    assert names(rec, "2011_000025") == ["bus", "bus", "car"]
    for im in rec.images:
        ids = np.asarray(Image.open(root / "SegmentationObject" / f"{im.id}.png"))
        expected = [int((ids == v).sum()) for v in np.unique(ids) if v not in (0, 255)]
        assert [segmentation_area(a.segmentation, im.height, im.width) for a in im.targets["objects"]] == expected
        assert im.targets["semseg"].path == f"SegmentationClass/{im.id}.png"


def write_xml(root: Path, stem: str, body: str, size: str = "<size><width>10</width><height>8</height></size>") -> None:
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    xml = f"<annotation><filename>{stem}.jpg</filename>{size}{body}</annotation>"
    (root / "Annotations" / f"{stem}.xml").write_text(xml)


def obj(name: str, box: tuple, extra: str = "") -> str:
    coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name>{extra}<bndbox>{coords}</bndbox></object>"


def test_integral_files_are_one_based_and_empty_xml_is_negative(tmp_path: Path) -> None:
    write_xml(tmp_path, "a", obj("dog", (1, 1, 10, 8), "<difficult>1</difficult><occluded>0</occluded>"))
    write_xml(tmp_path, "b", "")
    rec = voc.read(tmp_path)
    (dog,) = rec.images[0].targets["objects"]
    assert dog.box == (0, 0, 10, 8) and dog.attributes == {"difficult": True, "occluded": False}
    assert rec.images[1].targets == {"objects": []}
    assert voc.read(tmp_path, one_based=False).images[0].targets["objects"][0].box == (1, 1, 10, 8)
    assert rec.tasks["objects"].classes == list(voc.VOC_CLASSES)


@pytest.mark.parametrize("body, problem", [
    ("<object><name>dog</name></object>", "missing <bndbox>"),
    (obj("dog", (5, 1, 2, 8)), "need finite xmin <= xmax"),
    (obj("dog", (1, "x", 2, 8)), "bndbox/ymin"),
    (obj("dog", (1, 1, 2, 8), "<difficult>maybe</difficult>"), "expected 0 or 1"),
    ("<object><bndbox/></object>", "missing <name>"),
    ("<object><name>dog", "invalid XML"),
])
def test_malformed_xml_names_the_problem(tmp_path: Path, body: str, problem: str) -> None:
    write_xml(tmp_path, "a", body)
    with pytest.raises(FormatError, match=problem):
        voc.read(tmp_path)


def test_malformed_dataset_files(tmp_path: Path) -> None:
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncat:128,0,0::\n")
    write_xml(tmp_path, "a", obj("dog", (1, 1, 2, 2)))
    with pytest.raises(FormatError, match="'dog' is not in the class list"):
        voc.read(tmp_path)
    write_xml(tmp_path, "a", obj("cat", (1, 1, 2, 2)))
    (tmp_path / "Annotations" / "a.xml").write_text((tmp_path / "Annotations" / "a.xml").read_text()
                                                    .replace("a.jpg", "../../etc/passwd"))
    with pytest.raises(FormatError, match="outside the dataset root"):
        voc.read(tmp_path)
    write_xml(tmp_path, "a", obj("cat", (1, 1, 2, 2)))
    (tmp_path / "SegmentationObject").mkdir()
    Image.fromarray(np.full((8, 10), 2, np.uint8)).save(tmp_path / "SegmentationObject" / "a.png")
    with pytest.raises(FormatError, match="instance 2 but only 1 objects"):
        voc.read(tmp_path)
    (tmp_path / "SegmentationObject" / "a.png").unlink()
    (tmp_path / "ImageSets/Main").mkdir(parents=True)
    (tmp_path / "ImageSets/Main/cat_train.txt").write_text("a 2\n")
    with pytest.raises(FormatError, match="line 1"):
        voc.read(tmp_path)
    assert not voc.detect(tmp_path / "Annotations") and voc.detect(tmp_path)


def assert_same(first: DatasetRecord, second: DatasetRecord) -> None:
    assert second.tasks["objects"].classes == first.tasks["objects"].classes
    assert [im.id for im in second.images] == [im.id for im in first.images if "objects" in im.targets]
    for b_im in second.images:
        a_im = next(i for i in first.images if i.id == b_im.id)
        assert (b_im.width, b_im.height, b_im.meta) == (a_im.width, a_im.height, a_im.meta)
        for a, b in zip(a_im.targets["objects"], b_im.targets["objects"], strict=True):
            assert (b.category, b.attributes, b.iscrowd) == (a.category, a.attributes, a.iscrowd)
            assert b.box == pytest.approx(a.box)
            if a.segmentation:
                assert segmentation_area(b.segmentation, b_im.height, b_im.width) == \
                    segmentation_area(a.segmentation, a_im.height, a_im.width)


@pytest.mark.parametrize("source, options", [
    (f"{LABELME}/bbox_detection/data_dataset_voc", {}),
    (DATUMARO, {"semseg": False}),
    (f"{LABELME}/instance_segmentation/data_dataset_voc", {}),
])
def test_round_trip(fixtures_dir: Path, tmp_path: Path, source: str, options: dict) -> None:
    first = voc.read(fixtures_dir / source, **options)
    voc.write(first, tmp_path)
    second = voc.read(tmp_path)
    assert_same(first, second)
    for a_im in (im for im in first.images if "semseg" in im.targets):
        b_im = next(i for i in second.images if i.id == a_im.id)
        before = np.asarray(Image.open(first.root / a_im.targets["semseg"].path))
        assert np.array_equal(before, np.asarray(Image.open(tmp_path / b_im.targets["semseg"].path)))


def test_round_trip_of_one_based_integral_boxes(tmp_path: Path) -> None:
    write_xml(tmp_path / "src", "a", obj("dog", (1, 2, 10, 8), "<truncated>1</truncated><pose>Left</pose>")
              + obj("cat", (3, 3, 4, 4), "<attributes><attribute><name>color</name><value>red</value>"
                                          "</attribute></attributes>"))
    first = voc.read(tmp_path / "src")
    first.images[0].targets["objects"][1].iscrowd = True
    voc.write(first, tmp_path / "out")
    assert "<xmin>1</xmin>" in (tmp_path / "out/Annotations/a.xml").read_text()
    assert_same(first, voc.read(tmp_path / "out"))
