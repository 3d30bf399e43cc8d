"""On-disk description of a dataset: what every format reader returns and writer takes.

A :class:`DatasetRecord` is light (no pixels): image paths, per-image targets as parsed
from the annotation files, and per-task label spaces. :mod:`mtvision.data.loading` turns an
:class:`ImageRecord` into a tensor :class:`~mtvision.structures.Sample` lazily.

Targets of an image are keyed by task name, like ``Sample.targets``; a task missing from
``ImageRecord.targets`` means "not labelled for this task" (partial labels). The value's
type follows the task's kind:

* ``"instances"`` -> ``list[Annotation]`` (an empty list is a labelled negative image);
* ``"label"``     -> ``int`` (single-label) or ``list[int]`` (multi-label class indices);
* ``"semantic"``, ``"depth"``, ``"normals"``, ``"edges"`` -> :class:`DenseRef`.

Example:
    >>> rec = DatasetRecord(root=Path("."), tasks={"scene": TaskInfo(kind="label", classes=["a", "b"])})
    >>> rec.images.append(ImageRecord(file_name="x.png", width=4, height=4, targets={"scene": 1}))
    >>> rec.coverage()
    {'scene': 1}
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

from mtvision.structures import Polygons, Rle, TaskInfo

Keypoints = list[float]  # COCO style: flat [x1, y1, v1, x2, y2, v2, ...] in pixels, v an int in {0, 1, 2}


@dataclass(slots=True)
class Annotation:
    """One object instance as annotated: box + optional mask / keypoints / attributes.

    Readers build millions of these, so an annotation is kept to a handful of objects the
    garbage collector has to track: ``slots`` (no per-instance ``__dict__``) and keypoints
    as one flat list in COCO order, the very list a COCO file holds, rather than K tuples.
    """

    category: int  # index into TaskInfo.classes (contiguous, 0-based)
    box: tuple[float, float, float, float]  # XYXY pixels
    segmentation: Polygons | Rle | None = None
    keypoints: Keypoints | None = None  # 3 * K values (x, y, v); v = 0 means "not labelled"
    iscrowd: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class DenseRef:
    """A dense per-pixel map stored in its own file, loaded lazily.

    ``scale`` converts stored values to physical units for depth (metres = value / scale,
    e.g. 1000 for millimetre PNGs); for normals stored as 8/16-bit PNG the reader maps
    ``[0, max]`` to ``[-1, 1]``; ``.npy`` files hold the physical values directly.
    """

    path: str  # relative to DatasetRecord.root, or absolute
    scale: float = 1.0


ImageTarget = Union[list[Annotation], int, list[int], DenseRef]


@dataclass
class ImageRecord:
    """One image and its targets per task (absent task = not labelled)."""

    file_name: str  # relative to DatasetRecord.root, or absolute
    width: int
    height: int
    id: int | str | None = None
    targets: dict[str, ImageTarget] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetRecord:
    """A dataset as read from disk: root folder, images, and per-task label spaces."""

    root: Path
    images: list[ImageRecord] = field(default_factory=list)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)

    def image_path(self, image: ImageRecord) -> Path:
        return resolve(self.root, image.file_name)

    def coverage(self) -> dict[str, int]:
        """Number of images labelled for each task."""
        return {name: sum(name in im.targets for im in self.images) for name in self.tasks}


def keypoint_triplets(keypoints: Keypoints) -> Iterator[tuple[float, float, float]]:
    """``(x, y, v)`` per keypoint of a flat COCO keypoint list.

    Example:
        >>> list(keypoint_triplets([1.0, 2.0, 2, 0.0, 0.0, 0]))
        [(1.0, 2.0, 2), (0.0, 0.0, 0)]
    """
    values = iter(keypoints)
    return zip(values, values, values)


def resolve(root: Path, path: str) -> Path:
    """``path`` relative to ``root`` unless it is absolute."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def thin_labels(record: DatasetRecord, fractions: Mapping[str, float], seed: int) -> DatasetRecord:
    """``record`` with each task of ``fractions`` labelled on only that share of its images.

    Of the ``n`` images labelled for a task, exactly ``max(1, round(fraction * n))`` keep the
    label, drawn with a generator seeded by ``seed`` and the task name (so the subset is the
    same for every model of a comparison and independent of the other tasks); the rest become
    unlabelled for that task (partial labels), keeping their other tasks.
    """
    if unknown := sorted(set(fractions) - set(record.tasks)):
        raise ValueError(f"label_fraction names {', '.join(unknown)}, not tasks of the dataset: {', '.join(record.tasks)}")
    images = [replace(image, targets=dict(image.targets)) for image in record.images]
    for task, fraction in fractions.items():
        labelled = [i for i, image in enumerate(images) if task in image.targets]
        if not labelled:
            continue
        keep = set(random.Random(f"{seed}:{task}").sample(labelled, max(1, round(fraction * len(labelled)))))
        for i in set(labelled) - keep:
            del images[i].targets[task]
    return replace(record, images=images)


def split_record(record: DatasetRecord, val_fraction: float, seed: int) -> tuple[DatasetRecord, DatasetRecord]:
    """A seeded random hold-out: ``(train, val)`` with at least one image in each."""
    if len(record.images) < 2:
        raise ValueError(f"{record.root}: {len(record.images)} image(s); a validation split needs at least 2")
    order = list(range(len(record.images)))
    random.Random(seed).shuffle(order)
    count = min(len(order) - 1, max(1, round(val_fraction * len(order))))
    return _subset(record, order[count:]), _subset(record, order[:count])


def _subset(record: DatasetRecord, indices: list[int]) -> DatasetRecord:
    return replace(record, images=[record.images[i] for i in sorted(indices)])
