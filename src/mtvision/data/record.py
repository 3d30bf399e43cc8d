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

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

TargetKind = Literal["instances", "label", "semantic", "depth", "normals", "edges"]
DENSE_KINDS: tuple[str, ...] = ("semantic", "depth", "normals", "edges")

Polygons = list[list[float]]  # COCO style: each polygon a flat [x1, y1, x2, y2, ...] in pixels
Rle = dict[str, Any]  # COCO RLE: {"size": [h, w], "counts": str | list[int]}
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


@dataclass
class TaskInfo:
    """The label space of one task, shared by every image of the dataset."""

    kind: TargetKind
    classes: list[str] = field(default_factory=list)
    multi_label: bool = False  # only for kind == "label"
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)  # 0-based index pairs
    flip_idx: list[int] = field(default_factory=list)  # keypoint index after a horizontal flip
    keypoint_sigmas: list[float] = field(default_factory=list)  # OKS sigmas; empty = default
    ignore_index: int = 255  # semantic: value meaning "void"


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
