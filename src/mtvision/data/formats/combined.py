"""The combined ``mtvision`` JSON: one file for every task of a dataset (DESIGN §3).

It is a COCO superset, so any COCO tool (pycocotools, detectron2, FiftyOne) still reads
the boxes, masks and keypoints of the instance tasks, while mtvision also finds the
image-level labels, the dense maps and the label spaces of every other task::

    {
      "info": {"format": "mtvision", "version": 1},
      "tasks": {                       # TaskInfo fields; skeleton 0-based like TaskInfo
        "objects": {"kind": "instances", "classes": ["ball", "cube"], "keypoint_names": ["top"], ...},
        "lighting": {"kind": "label", "classes": ["day", "night"], "multi_label": false, ...},
        "depth": {"kind": "depth", ...}
      },
      "images": [{
        "id": 1, "file_name": "images/000001.png", "width": 64, "height": 48,
        "instance_tasks": ["objects"],          # labelled for these (an empty list of boxes = negative)
        "labels": {"lighting": 1, "classes": [0, 2]},
        "dense": {"semseg": "semseg/000001.png", "depth": {"path": "depth/000001.png", "scale": 1000}},
        "meta": {...}, "source_id": "a7"        # only when present / when the id was not a unique int
      }],
      "annotations": [{                 # plain COCO, plus "task", "attributes" (and "bbox_xyxy", see below)
        "id": 1, "image_id": 1, "category_id": 1, "task": "objects", "bbox": [x, y, w, h],
        "area": 120.0, "iscrowd": 0, "segmentation": [[...]] | {"size": [h, w], "counts": "..."},
        "keypoints": [x, y, v, ...], "num_keypoints": 1, "attributes": {"occluded": false}
      }],
      "categories": [{"id": 1, "name": "ball", "supercategory": "objects", "task": "objects",
                      "keypoints": ["top"], "skeleton": [], "flip_idx": [0]}]
    }

Boxes are XYWH as in COCO; where floating-point rounding would make ``x + w`` differ from
the record's ``x2`` (e.g. ``x1 = -7.5e-06, x2 = 3.9999975``), the exact corners are also
written as ``bbox_xyxy`` and preferred on reading, so the round trip is exact.

Writing then reading back gives an equal record; ``meta`` and ``attributes`` are stored as
JSON, so they must be JSON values (a tuple comes back as a list).

COCO has one ``annotations`` list, so several instance tasks share it: categories are
numbered task after task (the first instance task gets ids ``1..C`` exactly as a plain
COCO export would, or its original ids when it was read from COCO: a ``CocoTaskInfo``
keeps ``category_ids`` and ``supercategories`` in its task block) and every category and
annotation names its task. Paths are relative to
the JSON's folder; a path that escapes it is refused, so a downloaded file cannot make the
loader read elsewhere on the disk.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> rec = DatasetRecord(root=root, tasks={"scene": TaskInfo(kind="label", classes=["a", "b"])})
    >>> rec.images.append(ImageRecord(file_name="x.png", width=4, height=4, targets={"scene": 1}))
    >>> read(write(rec, root / "data.json")) == rec
    True
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mtvision.data.errors import FormatError
from mtvision.data.formats._combined_read import Reader
from mtvision.data.formats._files import load_json
from mtvision.data.formats.coco_write import keypoint_and_attribute_fields
from mtvision.data.formats.registry import register_format
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, resolve
from mtvision.structures import TaskInfo, check_rle, dense_kinds, segmentation_area

FORMAT = "mtvision"
VERSION = 1


def detect(path: str | Path) -> bool:
    """True when ``path`` is a combined JSON (a COCO file alone has no ``tasks`` block)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("tasks"), dict) and "images" in data


# --- writing -------------------------------------------------------------------------


def write(record: DatasetRecord, path: str | Path) -> Path:
    """Write ``record`` as a combined JSON at ``path``; returns ``path``.

    Image and dense-map paths are rewritten relative to ``path``'s folder, which must
    contain them (else :class:`FormatError`).
    """
    path = Path(path)
    categories, category_ids = _categories(record.tasks)
    coco_ids = _coco_image_ids(record.images)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, (image, coco_id) in enumerate(zip(record.images, coco_ids)):
        entry = f"images[{i}]"
        images.append(_image_entry(record, image, coco_id, path, entry))
        for task, target in image.targets.items():
            if record.tasks[task].kind != "instances":
                continue
            for j, ann in enumerate(target):
                where = f"{entry}.targets.{task}[{j}]"
                if (task, ann.category) not in category_ids:
                    raise FormatError(path, where, f"category {ann.category} is not a class of task {task!r}")
                ann_entry = _annotation_entry(ann, image, path, where)
                ann_entry.update(id=len(annotations) + 1, image_id=coco_id, task=task,
                                 category_id=category_ids[task, ann.category])
                annotations.append(ann_entry)
    data = {
        "info": {"format": FORMAT, "version": VERSION},
        "tasks": {name: _task_block(info) for name, info in record.tasks.items()},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    try:
        text = json.dumps(data, separators=(",", ":"))
    except TypeError as err:  # e.g. a tensor left in meta or attributes
        raise FormatError(path, "", f"a meta, attribute or coordinate value is not JSON: {err}") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _task_block(info: TaskInfo) -> dict[str, Any]:
    return {**asdict(info), "skeleton": [list(pair) for pair in info.skeleton]}


def _categories(tasks: dict[str, TaskInfo]) -> tuple[list[dict[str, Any]], dict[tuple[str, int], int]]:
    """COCO categories of every instance task, numbered task after task.

    A task read from COCO keeps its original ids (``CocoTaskInfo.category_ids``, e.g.
    1..90) unless they clash with an earlier task's, so results files still match.
    """
    categories: list[dict[str, Any]] = []
    ids: dict[tuple[str, int], int] = {}
    for task, info in tasks.items():
        if info.kind != "instances":
            continue
        original = list(getattr(info, "category_ids", []))
        if len(original) != len(info.classes) or set(original) & set(ids.values()):
            original = []
        supers = list(getattr(info, "supercategories", [])) or [task] * len(info.classes)
        for index, name in enumerate(info.classes):
            category_id = original[index] if original else max(ids.values(), default=0) + 1
            category = {"id": category_id, "name": name, "supercategory": supers[index], "task": task}
            if info.keypoint_names:
                category.update(keypoints=list(info.keypoint_names), flip_idx=list(info.flip_idx),
                                skeleton=[[a + 1, b + 1] for a, b in info.skeleton])
            ids[task, index] = category["id"]
            categories.append(category)
    return categories, ids


def _coco_image_ids(images: list[ImageRecord]) -> list[int]:
    """Keep the int ids (results files refer to them) unless they clash; number the rest after them."""
    ints = [im.id for im in images if type(im.id) is int]
    keep = len(set(ints)) == len(ints)
    fresh = iter(range(max(ints, default=0) + 1 if keep else 1, 2**62))
    return [im.id if keep and type(im.id) is int else next(fresh) for im in images]  # type: ignore[misc]


def _image_entry(record: DatasetRecord, image: ImageRecord, coco_id: int, path: Path, entry: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": coco_id, "file_name": _relative(record.root, image.file_name, path, entry),
                           "width": image.width, "height": image.height}
    if image.id != coco_id:
        out["source_id"] = image.id
    if unknown := sorted(set(image.targets) - set(record.tasks)):
        raise FormatError(path, entry, f"targets for task(s) {unknown} missing from record.tasks")
    kinds = {task: record.tasks[task].kind for task in image.targets}
    if any(info.kind == "instances" for info in record.tasks.values()):
        out["instance_tasks"] = [task for task, kind in kinds.items() if kind == "instances"]
    labels = {task: value for task, value in image.targets.items() if kinds[task] == "label"}
    if labels:
        out["labels"] = {task: value if isinstance(value, int) else list(value) for task, value in labels.items()}
    dense = {task: ref for task, ref in image.targets.items() if kinds[task] in dense_kinds()}
    if dense:
        out["dense"] = {task: _dense_entry(record.root, ref, path, f"{entry}.dense.{task}")
                        for task, ref in dense.items()}
    if image.meta:
        out["meta"] = image.meta
    return out


def _dense_entry(root: Path, ref: DenseRef, path: Path, entry: str) -> str | dict[str, Any]:
    relative = _relative(root, ref.path, path, entry)
    return relative if ref.scale == 1.0 else {"path": relative, "scale": ref.scale}


def _relative(root: Path, file: str, path: Path, entry: str) -> str:
    """``file`` (relative to ``root``) rewritten relative to the JSON's folder."""
    target = os.path.abspath(resolve(root, file))
    relative = Path(os.path.relpath(target, os.path.abspath(path.parent))).as_posix()
    if relative.startswith("../") or relative == "..":
        raise FormatError(path, entry, f"{target} is outside {path.parent}; write the JSON in a folder "
                                       "that contains the images and maps")
    return relative


def _annotation_entry(ann: Annotation, image: ImageRecord, path: Path, entry: str) -> dict[str, Any]:
    x1, y1, x2, y2 = ann.box
    out: dict[str, Any] = {"bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": int(ann.iscrowd)}
    if x1 + (x2 - x1) != x2 or y1 + (y2 - y1) != y2:  # XYWH cannot hold every XYXY box exactly
        out["bbox_xyxy"] = [x1, y1, x2, y2]
    if ann.segmentation is not None:
        segmentation = ann.segmentation
        if isinstance(segmentation, dict):  # validated, and bytes counts made JSON-ready
            try:
                segmentation = check_rle(segmentation, image.height, image.width)
            except ValueError as err:
                raise FormatError(path, entry, str(err)) from err
        out["segmentation"] = segmentation
        out["area"] = float(segmentation_area(segmentation, image.height, image.width))
    else:
        out["area"] = float((x2 - x1) * (y2 - y1))
    return {**out, **keypoint_and_attribute_fields(ann)}


# --- reading -------------------------------------------------------------------------


@register_format("combined")
def read(path: str | Path) -> DatasetRecord:
    """Read a combined JSON; any malformed entry raises :class:`FormatError` naming it."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise FormatError(path, "", "no 'tasks' block: not a combined mtvision JSON (plain COCO? use formats.coco)")
    return Reader(path, data).record()
