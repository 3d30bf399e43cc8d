"""Write one instance task of a :class:`DatasetRecord` as a COCO instances/keypoints JSON.

The output is what pycocotools and every COCO tool expect: XYWH boxes, ``area`` computed
by pycocotools from the mask (box area when there is none), 1-based skeleton, the original
category ids when the record came from COCO (:class:`CocoTaskInfo`), else ``index + 1``.
Decisions a reader of the file should know:

* only images *labelled* for the task are written: COCO cannot say "not labelled", and an
  image listed without annotations would read back as a negative;
* annotation ids are renumbered 1..N in record order; image ids are kept when they are
  unique integers, else renumbered 1..M;
* ``Annotation.attributes`` are written as a per-annotation ``attributes`` object
  (Datumaro's convention), ``ImageRecord.meta`` as extra image fields;
* image ``file_name``s are written as stored (relative to ``record.root``): read the file
  back with ``images_dir=record.root`` unless it sits in that folder.

Example:
    >>> import tempfile, pathlib
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> im = ImageRecord("a.jpg", 4, 4, targets={"objects": [Annotation(0, (0, 0, 2, 2))]})
    >>> rec = DatasetRecord(pathlib.Path("."), [im], {"objects": TaskInfo("instances", ["cat"])})
    >>> write(rec, pathlib.Path(tempfile.mkdtemp()) / "out.json")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtvision.data.formats._annotations import instance_task
from mtvision.data.formats.coco_categories import CocoTaskInfo
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
from mtvision.structures import TaskInfo, segmentation_area

__all__ = ["write"]

_IMAGE_KEYS = ("id", "file_name", "width", "height")


def write(record: DatasetRecord, path: str | Path, *, task: str = "objects",
          category_ids: Sequence[int] | None = None) -> None:
    """Write ``record.tasks[task]`` to ``path`` as COCO JSON (parent folders are created)."""
    info = instance_task(record, task)
    ids = list(category_ids or getattr(info, "category_ids", None) or range(1, len(info.classes) + 1))
    if len(ids) != len(info.classes) or len(set(ids)) != len(ids):
        raise ValueError(f"need {len(info.classes)} distinct category ids, got {ids}")
    labelled = [im for im in record.images if task in im.targets]
    image_ids = _image_ids(labelled)
    annotations = [_annotation(a, iid, ids, im) for iid, im in zip(image_ids, labelled)
                   for a in im.targets[task]]
    annotations = [{"id": n, **ann} for n, ann in enumerate(annotations, start=1)]
    data = {"images": [_image(im, iid) for iid, im in zip(image_ids, labelled)],
            "annotations": annotations, "categories": _categories(info, ids)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"), allow_nan=False)


def _image_ids(images: list[ImageRecord]) -> list[int]:
    ids = [im.id for im in images]
    if all(type(i) is int for i in ids) and len(set(ids)) == len(ids):
        return ids  # type: ignore[return-value]
    return list(range(1, len(images) + 1))


def _image(im: ImageRecord, image_id: int) -> dict[str, Any]:
    extra = {k: v for k, v in im.meta.items() if k not in _IMAGE_KEYS}
    return {"id": image_id, "file_name": im.file_name, "width": im.width, "height": im.height, **extra}


def _categories(info: TaskInfo, ids: list[int]) -> list[dict[str, Any]]:
    supers = info.supercategories if isinstance(info, CocoTaskInfo) else []
    cats = []
    for i, (cid, name) in enumerate(zip(ids, info.classes)):
        cat: dict[str, Any] = {"id": cid, "name": name, "supercategory": supers[i] if i < len(supers) else ""}
        if info.keypoint_names:
            cat["keypoints"] = list(info.keypoint_names)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in info.skeleton]
        cats.append(cat)
    return cats


def _annotation(a: Annotation, image_id: int, ids: list[int], im: ImageRecord) -> dict[str, Any]:
    x0, y0, x1, y1 = a.box
    seg = a.segmentation
    if isinstance(seg, dict) and isinstance(seg["counts"], bytes):
        seg = {"size": seg["size"], "counts": seg["counts"].decode("ascii")}
    area = segmentation_area(seg, im.height, im.width) if seg else (x1 - x0) * (y1 - y0)
    ann: dict[str, Any] = {"image_id": image_id, "category_id": ids[a.category],
                           "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area, "iscrowd": int(a.iscrowd),
                           "segmentation": seg or []}
    return {**ann, **keypoint_and_attribute_fields(a)}


def keypoint_and_attribute_fields(a: Annotation) -> dict[str, Any]:
    """COCO's ``keypoints`` / ``num_keypoints`` and the ``attributes`` extension, when present."""
    fields: dict[str, Any] = {}
    if a.keypoints is not None:
        fields["keypoints"] = a.keypoints
        fields["num_keypoints"] = sum(v > 0 for v in a.keypoints[2::3])
    if a.attributes:
        fields["attributes"] = a.attributes
    return fields
