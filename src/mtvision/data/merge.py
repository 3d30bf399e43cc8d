"""Several sources describing the same images -> one multi-task record.

Users label different tasks in different tools (boxes in CVAT, keypoints in Label Studio,
depth from a sensor folder, image labels in a CSV). Merging matches their images by file
name — with Label Studio's upload-hash prefix removed (readers put the clean name in
``meta["match_name"]``) — or by image id, and unions the tasks.

Nothing is guessed: an image whose size differs between sources, a task labelled by two
sources for the same image, or a class missing from the label space fixed by the first
source is reported as a :class:`Conflict`, and the later source's label is not used.

Example:
    >>> from pathlib import Path
    >>> from mtvision.data.record import DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> a = DatasetRecord(Path("/d"), [ImageRecord("x.png", 4, 4, targets={"scene": 0})],
    ...                   {"scene": TaskInfo("label", ["in", "out"])})
    >>> b = DatasetRecord(Path("/d"), [ImageRecord("x.png", 4, 4, targets={"kind": 1})],
    ...                   {"kind": TaskInfo("label", ["cat", "dog"])})
    >>> merged = merge_records([a, b])
    >>> merged.record.coverage(), merged.conflicts
    ({'scene': 1, 'kind': 1}, [])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, ImageTarget, resolve
from mtvision.structures import TaskInfo

# Label Studio stores uploads as "<8 hex>-<original name>".
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


@dataclass
class Conflict:
    """A disagreement between sources that merging refused to resolve by guessing."""

    image: str
    source: int  # index of the source whose label was not used
    problem: str

    def __str__(self) -> str:
        return f"{self.image} (source {self.source}): {self.problem}"


@dataclass
class MergeResult:
    record: DatasetRecord
    conflicts: list[Conflict] = field(default_factory=list)


def match_key(image: ImageRecord, by: Literal["name", "id"] = "name") -> str:
    """The key images are matched on: the file's base name without an upload-hash prefix, or the id."""
    if by == "id":
        return str(image.id)
    name = image.meta.get("match_name") or Path(image.file_name).name
    return _UPLOAD_PREFIX.sub("", name)


def merge_records(sources: list[DatasetRecord], by: Literal["name", "id"] = "name") -> MergeResult:
    """Merge ``sources`` in order; the first source to define a task fixes its label space.

    Image and dense-map paths become absolute, since the sources live in different folders.
    """
    merged = DatasetRecord(root=Path("/"))
    by_key: dict[str, ImageRecord] = {}
    conflicts: list[Conflict] = []
    for index, source in enumerate(sources):
        remaps = _adopt_tasks(merged.tasks, source.tasks)
        for image in source.images:
            key = match_key(image, by)
            if key not in by_key:
                by_key[key] = _absolute(replace(image, targets={}), source.root)
                merged.images.append(by_key[key])
            conflicts += _add_targets(by_key[key], image, source, index, remaps, merged.tasks)
    return MergeResult(merged, conflicts)


def _adopt_tasks(tasks: dict[str, TaskInfo], incoming: dict[str, TaskInfo]) -> dict[str, list[int | None]]:
    """Register new tasks; for known ones map the source's class indices into the fixed space."""
    remaps = {}
    for name, info in incoming.items():
        known = tasks.setdefault(name, info)
        remaps[name] = [known.classes.index(c) if c in known.classes else None for c in info.classes]
    return remaps


def _add_targets(into: ImageRecord, image: ImageRecord, source: DatasetRecord, index: int,
                 remaps: dict[str, list[int | None]], tasks: dict[str, TaskInfo]) -> list[Conflict]:
    name = match_key(image)
    if _known(image) and _known(into) and (into.width, into.height) != (image.width, image.height):
        return [Conflict(name, index, f"size {image.width}x{image.height} differs from "
                                      f"{into.width}x{into.height} given by an earlier source")]
    if not _known(into):  # readers give 0x0 when the export does not say (e.g. a CSV row)
        into.width, into.height = image.width, image.height
    conflicts = []
    for task, target in image.targets.items():
        if task in into.targets:
            conflicts.append(Conflict(name, index, f"task {task!r} is already labelled by an earlier source"))
            continue
        if tasks[task].kind != source.tasks[task].kind:
            conflicts.append(Conflict(name, index, f"task {task!r} is {source.tasks[task].kind} here but "
                                                   f"{tasks[task].kind} in an earlier source"))
            continue
        remapped, unknown = _remap(target, remaps[task], source.tasks[task].classes)
        if unknown:
            conflicts.append(Conflict(name, index, f"task {task!r}: unknown classes {sorted(unknown)}"))
            continue
        into.targets[task] = _absolute_target(remapped, source.root)
    return conflicts


def _known(image: ImageRecord) -> bool:
    return image.width > 0 and image.height > 0


def _remap(target: ImageTarget, remap: list[int | None], classes: list[str]) -> tuple[ImageTarget, set[str]]:
    """Re-index the class ids of a target; returns the class names with no place in the fixed space."""
    if isinstance(target, DenseRef) or not remap:
        return target, set()  # dense maps keep their own encoding
    ids = _class_ids(target)
    unknown = {classes[i] if 0 <= i < len(classes) else str(i)
               for i in ids if not 0 <= i < len(remap) or remap[i] is None}
    if unknown:
        return target, unknown
    return _with_class_ids(target, [remap[i] for i in ids]), set()  # type: ignore[misc]


def _class_ids(target: ImageTarget) -> list[int]:
    if isinstance(target, int):
        return [target]
    return [t.category if isinstance(t, Annotation) else t for t in target]  # type: ignore[union-attr]


def _with_class_ids(target: ImageTarget, ids: list[int]) -> ImageTarget:
    if isinstance(target, int):
        return ids[0]
    return [replace(t, category=i) if isinstance(t, Annotation) else i
            for t, i in zip(target, ids)]  # type: ignore[arg-type]


def _absolute(image: ImageRecord, root: Path) -> ImageRecord:
    return replace(image, file_name=str(resolve(Path(root).absolute(), image.file_name)))


def _absolute_target(target: ImageTarget, root: Path) -> ImageTarget:
    if isinstance(target, DenseRef):
        return replace(target, path=str(resolve(Path(root).absolute(), target.path)))
    return target
