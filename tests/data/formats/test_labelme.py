"""LabelMe reader: wkentaro/labelme's example annotations + small synthetic files."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import labelme
from mtvision.structures import segmentation_area

EXAMPLES = "labelme/wkentaro__labelme/examples"


def shoelace(flat: list[float]) -> float:
    xs, ys = np.array(flat[::2]), np.array(flat[1::2])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def png_b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write(tmp_path: Path, shapes: list[dict], name: str = "a.json", **extra: object) -> Path:
    data = {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": "a.jpg", "imageData": None,
            "imageHeight": 40, "imageWidth": 60, **extra}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def shape(label: str, points: list, shape_type: str = "polygon", group_id: int | None = None, **extra: object) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}, **extra}


def test_every_fixture_folder_loads(fixtures_dir: Path) -> None:
    folders = sorted({p.parent for p in (fixtures_dir / EXAMPLES).rglob("*.json")})
    assert len(folders) == 5
    for folder in folders:
        assert labelme.detect(folder) and labelme.read(folder).images


def test_instance_segmentation_groups_and_ignore(fixtures_dir: Path) -> None:
    folder = fixtures_dir / EXAMPLES / "instance_segmentation"
    rec = labelme.read(folder / "data_annotated", labels=folder / "labels.txt")
    classes = rec.tasks["objects"].classes
    assert len(classes) == 20 and classes[0] == "aeroplane"  # labels.txt minus __ignore__, _background_
    # hand count per file: 2011_000003: person, person(g0: 2 polygons), bottle, __ignore__
    #                      2011_000006: 4 person, chair, __ignore__, sofa(g0: 4 polygons)
    #                      2011_000025: bus, bus, car
    assert [len(im.targets["objects"]) for im in rec.images] == [3, 6, 3]
    assert [len(im.meta.get("ignore_regions", [])) for im in rec.images] == [1, 1, 0]
    person_g0 = rec.images[0].targets["objects"][1]
    assert classes[person_g0.category] == "person" and len(person_g0.segmentation) == 2
    sofa = rec.images[1].targets["objects"][-1]
    assert classes[sofa.category] == "sofa" and [len(p) // 2 for p in sofa.segmentation] == [9, 3, 9, 4]
    bottle = rec.images[0].targets["objects"][2]
    raw = json.loads((folder / "data_annotated" / "2011_000003.json").read_text())["shapes"][3]["points"]
    assert bottle.segmentation == [[c for p in raw for c in p]]
    # pycocotools rasterises the polygon: within 10 % of its shoelace area (a thin bottle)
    assert segmentation_area(bottle.segmentation, 338, 500) == pytest.approx(shoelace(bottle.segmentation[0]), rel=0.1)


def test_primitives(fixtures_dir: Path) -> None:
    path = fixtures_dir / EXAMPLES / "primitives" / "primitives.json"
    rec = labelme.read(path)
    names = rec.tasks["objects"].classes
    anns = {names[a.category]: a for a in rec.images[0].targets["objects"]}
    assert len(rec.images[0].targets["objects"]) == 8  # 8 shapes, none grouped
    assert anns["rectangle"].box == (391.0, 33.0, 542.0, 135.0)
    r = math.hypot(225 - 195, 125 - 84)  # circle: centre (195, 84), rim point (225, 125)
    assert shoelace(anns["circle"].segmentation[0]) == pytest.approx(math.pi * r * r, rel=0.01)
    assert anns["point"].attributes["points"] == [345.0, 174.0]
    assert anns["line_strip"].attributes["polyline"][:2] == [440.53703703703707, 181.46296296296293]
    raw = json.loads(path.read_text())["shapes"][-1]
    crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(raw["mask"]))).convert("L")) > 0
    assert segmentation_area(anns["octagon"].segmentation, 450, 560) == int(crop.sum())  # same pixels
    assert anns["octagon"].box[:2] >= (417.0, 305.0)


def test_flags_become_tags(fixtures_dir: Path) -> None:
    rec = labelme.read(fixtures_dir / EXAMPLES / "classification" / "data_annotated")
    assert rec.tasks["tags"].classes == ["cat", "dog"] and rec.images[0].targets["tags"] == [0]
    assert "objects" not in rec.tasks  # no shapes anywhere: not a detection dataset


def test_embedded_image_is_kept(fixtures_dir: Path) -> None:
    rec = labelme.read(fixtures_dir / EXAMPLES / "tutorial")
    (image,) = rec.images
    assert image.file_name == "apc2016_obj3.json"  # imagePath names the JSON itself
    assert (image.width, image.height) == (1210, 907)
    with Image.open(io.BytesIO(base64.b64decode(image.meta["image_data"]))) as im:
        assert im.size == (1210, 907) and im.format == "JPEG"
    assert len(image.targets["objects"]) == 4


def test_group_with_point_keypoint_and_unordered_rectangle(tmp_path: Path) -> None:
    write(tmp_path, [shape("person", [[30, 20], [10, 5]], "rectangle", group_id=1),
                     shape("nose", [[15, 8]], "point", group_id=1, description="tip"),
                     shape("car", [[40, 30], [50, 30], [50, 38]], group_id=1)])
    rec = labelme.read(tmp_path)
    person, nose, car = rec.images[0].targets["objects"]
    assert person.box == (10.0, 5.0, 30.0, 20.0)  # corners given bottom-right first
    # group 1 is used by two region labels (person, car): the point cannot pick one
    assert rec.tasks["objects"].keypoint_names == []
    assert nose.attributes == {"description": "tip", "points": [15.0, 8.0]}
    write(tmp_path, [shape("person", [[30, 20], [10, 5]], "rectangle", group_id=1),
                     shape("nose", [[15, 8]], "point", group_id=1)])
    rec = labelme.read(tmp_path)
    (person,) = rec.images[0].targets["objects"]
    assert rec.tasks["objects"].keypoint_names == ["nose"] and person.keypoints == [15.0, 8.0, 2]


def test_mask_shape_is_pasted_at_its_box(tmp_path: Path) -> None:
    crop = np.zeros((4, 5), dtype=np.uint8)
    crop[1:3, 2:5] = 255
    write(tmp_path, [shape("blob", [[10, 20], [14, 23]], "mask", mask=png_b64(crop))])
    (blob,) = labelme.read(tmp_path).images[0].targets["objects"]
    assert segmentation_area(blob.segmentation, 40, 60) == 6 and blob.box == (12.0, 21.0, 15.0, 23.0)


@pytest.mark.parametrize("shapes, extra, problem", [
    ([shape("a", [[1, 1], [2, 2]])], {}, "needs 3"),
    ([shape("a", [[1, 1]], "hexagon")], {}, "unknown shape_type"),
    ([shape("a", [[1, 1], [2, 2]], "mask", mask="not base64!")], {}, "base64"),
    ([shape("a", [[1, "x"], [2, 2], [3, 3]])], {}, "could not convert"),
    ([shape("a", [[1, float("nan")], [2, 2], [3, 3]])], {}, "finite"),
    ([], {"imagePath": "../../etc/passwd"}, "outside"),
    ([], {"imageWidth": -3}, "positive"),
    ([], {"flags": {"cat": "yes"}}, "true/false"),
    ([], {"imageData": "AAAA", "imagePath": "missing.jpg"}, "base64 image"),
    ([{"points": [[1, 1]]}], {}, "missing field 'label'"),
])
def test_malformed_input_names_the_problem(tmp_path: Path, shapes: list, extra: dict, problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        labelme.read(write(tmp_path, shapes, **extra))
