"""Reading the combined JSON (:mod:`mtvision.data.formats.combined` documents the schema).

Kept apart from the writer because validation is most of a reader: every entry is
checked so that a malformed file raises :class:`FormatError` naming the file, the entry
and the problem, never a ``KeyError`` from deep inside.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats._files import safe_relpath
from mtvision.data.formats.coco_categories import CocoTaskInfo
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, Keypoints, keypoint_triplets
from mtvision.structures import TaskInfo, check_rle, dense_kinds, kind_names


class Reader:
    """Parses one file, keeping its name so every error can point at the offending entry."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data
        self.tasks = {name: self._task(name, block) for name, block in data["tasks"].items()}
        self.categories = {c.get("id"): self._category(i, c) for i, c in enumerate(self._list("categories"))}

    def record(self) -> DatasetRecord:
        images = [self._image(i, entry) for i, entry in enumerate(self._list("images"))]
        by_id = dict(images)
        if len(by_id) < len(images):
            self._fail("images", "two images share an 'id'")
        for i, entry in enumerate(self._list("annotations")):
            image_id = entry.get("image_id") if isinstance(entry, dict) else None
            if image_id not in by_id:
                self._fail(f"annotations[{i}]", f"image_id {image_id!r} is not an image id")
            task, annotation = self._annotation(i, entry, by_id[image_id])
            if task not in by_id[image_id].targets:
                self._fail(f"annotations[{i}]", f"image {image_id} does not list {task!r} in 'instance_tasks'")
            by_id[image_id].targets[task].append(annotation)
        return DatasetRecord(root=self.path.parent, images=[image for _, image in images], tasks=self.tasks)

    def _fail(self, entry: str, problem: str) -> NoReturn:
        raise FormatError(self.path, entry, problem)

    def _list(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self._fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def _task(self, name: str, block: Any) -> TaskInfo:
        """A task block; COCO's original category ids and supercategories make it a CocoTaskInfo."""
        known = {f.name for f in fields(CocoTaskInfo)}
        if not isinstance(block, dict) or block.get("kind") not in kind_names():
            self._fail(f"tasks.{name}", f"'kind' must be one of {', '.join(kind_names())}")
        if unknown := sorted(set(block) - known):
            self._fail(f"tasks.{name}", f"unknown field(s) {unknown}; valid: {sorted(known)}")
        try:
            skeleton = [(int(a), int(b)) for a, b in block.get("skeleton", [])]
        except PARSE_ERRORS:
            self._fail(f"tasks.{name}", f"skeleton must be a list of [a, b] index pairs, got {block['skeleton']!r}")
        coco_only = {f.name for f in fields(CocoTaskInfo)} - {f.name for f in fields(TaskInfo)}
        return (CocoTaskInfo if coco_only & set(block) else TaskInfo)(**{**block, "skeleton": skeleton})

    def _category(self, i: int, category: Any) -> tuple[str, int]:
        """A COCO category -> (task, class index), matched by name in the task's classes."""
        first = next((t for t, info in self.tasks.items() if info.kind == "instances"), None)
        task = category.get("task", first) if isinstance(category, dict) else None
        info = self.tasks.get(task)
        if info is None or info.kind != "instances":
            self._fail(f"categories[{i}]", f"task {task!r} is not an instance task of the 'tasks' block")
        if category.get("name") not in info.classes:
            self._fail(f"categories[{i}]", f"name {category.get('name')!r} is not a class of task {task!r}")
        return task, info.classes.index(category["name"])

    def _image(self, i: int, entry: Any) -> tuple[int, ImageRecord]:
        where = f"images[{i}]"
        if not isinstance(entry, dict) or not all(k in entry for k in ("id", "file_name", "width", "height")):
            self._fail(where, "needs 'id', 'file_name', 'width' and 'height'")
        if type(entry["width"]) is not int or type(entry["height"]) is not int or type(entry["id"]) not in (int, str):
            self._fail(where, "'id' must be an int (or a str), 'width' and 'height' ints")
        for key in ("labels", "dense", "meta"):
            if not isinstance(entry.get(key, {}), dict):
                self._fail(f"{where}.{key}", f"expected an object, got {type(entry[key]).__name__}")
        targets: dict[str, Any] = {}
        for task in entry.get("instance_tasks", self._instance_tasks()):
            self._expect_kind(f"{where}.instance_tasks", task, ("instances",))
            targets[task] = []
        for task, value in entry.get("labels", {}).items():
            targets[task] = self._label(f"{where}.labels.{task}", task, value)
        for task, value in entry.get("dense", {}).items():
            targets[task] = self._dense(f"{where}.dense.{task}", task, value)
        image = ImageRecord(file_name=safe_relpath(entry["file_name"], self.path, where), width=entry["width"],
                            height=entry["height"], id=entry.get("source_id", entry["id"]),
                            targets=targets, meta=entry.get("meta", {}))
        return entry["id"], image

    def _instance_tasks(self) -> list[str]:
        return [task for task, info in self.tasks.items() if info.kind == "instances"]

    def _label(self, where: str, task: str, value: Any) -> int | list[int]:
        info = self._expect_kind(where, task, ("label",))
        if info.multi_label != isinstance(value, list):
            expected = "a list of class indices (multi-label)" if info.multi_label else "one class index"
            self._fail(where, f"task {task!r} expects {expected}, got {value!r}")
        values = value if info.multi_label else [value]
        bad = [v for v in values if type(v) is not int or not (0 <= v < len(info.classes) or not info.classes)]
        if bad:
            self._fail(where, f"class index {bad[0]!r} is not in [0, {len(info.classes)})")
        return list(values) if info.multi_label else value

    def _dense(self, where: str, task: str, value: Any) -> DenseRef:
        self._expect_kind(where, task, dense_kinds())
        if isinstance(value, str):
            return DenseRef(path=safe_relpath(value, self.path, where))
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            self._fail(where, "expected a path, or {'path': ..., 'scale': ...}")
        scale = value.get("scale", 1.0)
        if type(scale) not in (int, float) or scale <= 0:
            self._fail(where, f"scale must be a positive number, got {scale!r}")
        return DenseRef(path=safe_relpath(value["path"], self.path, where), scale=float(scale))

    def _expect_kind(self, where: str, task: str, kinds: tuple[str, ...]) -> TaskInfo:
        info = self.tasks.get(task)
        if info is None or info.kind not in kinds:
            self._fail(where, f"task {task!r} is not a {'/'.join(kinds)} task of the 'tasks' block")
        return info

    def _annotation(self, i: int, entry: dict[str, Any], image: ImageRecord) -> tuple[str, Annotation]:
        where = f"annotations[{i}] (id={entry.get('id')})"
        if entry.get("category_id") not in self.categories:
            self._fail(where, f"category_id {entry.get('category_id')!r} is not in 'categories'")
        task, category = self.categories[entry["category_id"]]
        if entry.get("task", task) != task:
            self._fail(where, f"task {entry['task']!r} differs from its category's task {task!r}")
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            self._fail(where, f"bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        box = self._exact_box(where, entry.get("bbox_xyxy"), (x, y, x + w, y + h))
        return task, Annotation(category=category, box=box,
                                segmentation=self._segmentation(where, entry.get("segmentation"), image),
                                keypoints=self._keypoints(where, task, entry.get("keypoints")),
                                iscrowd=bool(entry.get("iscrowd", 0)), attributes=entry.get("attributes", {}))

    def _exact_box(self, where: str, xyxy: Any, box: tuple[float, ...]) -> tuple[float, float, float, float]:
        """The writer's exact corners when given; they must agree with ``bbox`` up to rounding."""
        if xyxy is None:
            return box  # type: ignore[return-value]
        if not isinstance(xyxy, list) or len(xyxy) != 4 or \
                not all(isinstance(v, (int, float)) and abs(v - b) <= 1e-6 * max(1.0, abs(b)) for v, b in zip(xyxy, box)):
            self._fail(where, f"bbox_xyxy {xyxy!r} disagrees with bbox (x, y, x + w, y + h) = {list(box)}")
        return tuple(float(v) for v in xyxy)  # type: ignore[return-value]

    def _segmentation(self, where: str, value: Any, image: ImageRecord) -> Any:
        if value is None or _is_polygons(value):
            return value
        if not isinstance(value, dict):
            self._fail(where, "segmentation must be polygons (lists of >= 3 x, y pairs) or an RLE {'size', 'counts'}")
        try:
            return check_rle(value, image.height, image.width)
        except PARSE_ERRORS as err:
            self._fail(where, f"bad RLE: {describe(err)}")

    def _keypoints(self, where: str, task: str, value: Any) -> Keypoints | None:
        if value is None:
            return None
        k = len(self.tasks[task].keypoint_names)
        if not isinstance(value, list) or len(value) % 3 or (k and len(value) != 3 * k):
            self._fail(where, f"keypoints must be {3 * k if k else '3*K'} numbers [x, y, v, ...], "
                              f"got {len(value) if isinstance(value, list) else value!r}")
        points = list(keypoint_triplets(value))
        if not all(isinstance(x, (int, float)) and isinstance(y, (int, float)) and v in (0, 1, 2)
                   for x, y, v in points):
            self._fail(where, "keypoints must be numbers with visibility 0, 1 or 2")
        return [c for x, y, v in points for c in (float(x), float(y), int(v))]


def _is_polygons(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(isinstance(v, (int, float)) for v in p)
        for p in value)
