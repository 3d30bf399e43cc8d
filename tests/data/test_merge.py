"""Merging sources: matching by name/id, class remapping, and conflicts reported, not guessed."""

from __future__ import annotations

from pathlib import Path

from mtvision.data.merge import match_key, merge_records
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

OBJECTS = TaskInfo(kind="instances", classes=["cat", "dog"])


def _boxes(root: str, name: str, categories: list[int], classes: list[str], size: int = 10) -> DatasetRecord:
    anns = [Annotation(category=c, box=(0.0, 0.0, 5.0, 5.0)) for c in categories]
    return DatasetRecord(Path(root), [ImageRecord(name, size, size, targets={"objects": anns})],
                         {"objects": TaskInfo(kind="instances", classes=classes)})


def _depth(root: str, name: str, size: int = 10) -> DatasetRecord:
    image = ImageRecord(f"rgb/{name}", size, size, targets={"depth": DenseRef(f"depth/{name}", scale=1000.0)})
    return DatasetRecord(Path(root), [image], {"depth": TaskInfo(kind="depth")})


def test_label_studio_upload_prefix_is_ignored_for_matching() -> None:
    image = ImageRecord("/data/upload/1/3f2a9b1c-img_01.jpg", 4, 4)
    assert match_key(image) == "img_01.jpg"
    assert match_key(ImageRecord("x/img_01.jpg", 4, 4, id=7), by="id") == "7"


def test_tasks_from_two_sources_join_on_one_image_with_absolute_paths() -> None:
    result = merge_records([_boxes("/a", "images/img.png", [1], ["cat", "dog"]), _depth("/b", "img.png")])
    assert result.conflicts == []
    (image,) = result.record.images
    assert image.file_name == "/a/images/img.png"
    assert set(image.targets) == {"objects", "depth"}
    assert image.targets["depth"] == DenseRef("/b/depth/img.png", scale=1000.0)
    assert result.record.coverage() == {"objects": 1, "depth": 1}


def test_class_indices_are_remapped_into_the_first_label_space() -> None:
    first = _boxes("/a", "one.png", [0], ["cat", "dog"])
    second = _boxes("/a", "two.png", [0, 1], ["dog", "cat"])  # same names, other order
    result = merge_records([first, second])
    assert result.conflicts == []
    two = result.record.images[1]
    assert [a.category for a in two.targets["objects"]] == [1, 0]  # dog -> 1, cat -> 0


def test_unknown_class_size_mismatch_and_double_labels_are_conflicts() -> None:
    base = _boxes("/a", "img.png", [0], ["cat", "dog"])
    unknown = _boxes("/a", "new.png", [0], ["horse"])
    resized = _depth("/b", "img.png", size=12)
    twice = _boxes("/c", "img.png", [1], ["cat", "dog"])
    result = merge_records([base, unknown, resized, twice])
    problems = {c.source: (c.image, c.problem) for c in result.conflicts}
    assert len(result.conflicts) == 3
    assert problems[1] == ("new.png", "task 'objects': unknown classes ['horse']")
    assert problems[2] == ("img.png", "size 12x12 differs from 10x10 given by an earlier source")
    assert problems[3] == ("img.png", "task 'objects' is already labelled by an earlier source")
    img = result.record.images[0]
    assert [a.category for a in img.targets["objects"]] == [0]  # the first source's label kept
    assert "depth" not in img.targets
    assert "objects" not in result.record.images[1].targets  # the horse image keeps no wrong label


def test_image_level_labels_are_remapped() -> None:
    a = DatasetRecord(Path("/a"), [ImageRecord("x.png", 4, 4, targets={"tags": [0]})],
                      {"tags": TaskInfo(kind="label", classes=["indoor", "outdoor"], multi_label=True)})
    b = DatasetRecord(Path("/a"), [ImageRecord("y.png", 4, 4, targets={"tags": [0, 1]})],
                      {"tags": TaskInfo(kind="label", classes=["outdoor", "indoor"], multi_label=True)})
    result = merge_records([a, b])
    assert result.record.images[1].targets["tags"] == [1, 0]


def test_unknown_size_is_taken_from_another_source() -> None:
    csv = DatasetRecord(Path("/a"), [ImageRecord("img.png", 0, 0, targets={"scene": 1})],
                        {"scene": TaskInfo(kind="label", classes=["in", "out"])})
    result = merge_records([csv, _depth("/b", "img.png", size=12)])
    assert result.conflicts == []
    (image,) = result.record.images
    assert (image.width, image.height) == (12, 12) and set(image.targets) == {"scene", "depth"}
