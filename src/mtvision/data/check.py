"""The dataset doctor: find what would silently hurt training before it starts.

Checks every image and annotation of a :class:`DatasetRecord` and returns a list of
:class:`Finding` s — errors (unreadable or truncated images, boxes outside the image or
degenerate, invalid polygons, keypoint counts that do not match the task, class ids out of
range, missing dense maps) and warnings (duplicate images, images without any label).
:func:`fixed` returns a cleaned copy of the record; the source files are never touched.

Example:
    >>> from pathlib import Path
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> rec = DatasetRecord(Path("."), [ImageRecord("a.png", 10, 10, targets={"objects": [
    ...     Annotation(category=3, box=(0.0, 0.0, 4.0, 4.0))]})], {"objects": TaskInfo("instances", ["x"])})
    >>> [f.code for f in check_record(rec, read_images=False)]
    ['class_out_of_range']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal

from PIL import Image, UnidentifiedImageError

from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, resolve
from mtvision.structures import TaskInfo

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: where it is (image, task, annotation index) and what it is."""

    severity: Severity
    code: str
    image: str
    message: str
    task: str | None = None
    index: int | None = None  # annotation index within the image's task target

    def __str__(self) -> str:
        where = self.image + (f" [{self.task}" + (f"#{self.index}" if self.index is not None else "") + "]"
                              if self.task else "")
        return f"{self.severity}: {where}: {self.message}"


def check_record(record: DatasetRecord, read_images: bool = True) -> list[Finding]:
    """Every finding for ``record``; ``read_images`` decodes each image (slower, finds truncation)."""
    findings: list[Finding] = []
    digests: dict[str, str] = {}
    for image in record.images:
        if read_images:
            findings += _check_image_file(record, image, digests)
        if not image.targets:
            findings.append(Finding("warning", "unlabelled", image.file_name, "image has no label for any task"))
        for task, target in image.targets.items():
            findings += _check_target(record, image, task, record.tasks[task], target)
    return findings


def fixed(record: DatasetRecord, findings: list[Finding]) -> DatasetRecord:
    """A copy without the images and annotations that have errors (warnings are kept)."""
    bad_images = {f.image for f in findings if f.severity == "error" and f.task is None}
    bad_parts = {(f.image, f.task, f.index) for f in findings if f.severity == "error" and f.task}
    images = [_without(image, bad_parts) for image in record.images if image.file_name not in bad_images]
    return replace(record, images=images)


def _without(image: ImageRecord, bad: set[tuple[str, str | None, int | None]]) -> ImageRecord:
    targets = {}
    for task, target in image.targets.items():
        if (image.file_name, task, None) in bad:
            continue
        if isinstance(target, list) and target and isinstance(target[0], Annotation):
            target = [a for i, a in enumerate(target) if (image.file_name, task, i) not in bad]
        targets[task] = target
    return replace(image, targets=targets)


def _check_image_file(record: DatasetRecord, image: ImageRecord, digests: dict[str, str]) -> list[Finding]:
    path = record.image_path(image)
    try:
        data = path.read_bytes()
        with Image.open(path) as picture:
            picture.load()  # decodes fully: truncated files fail here, not in training
            size = picture.size
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        return [Finding("error", "unreadable_image", image.file_name, f"cannot read {path}: {error}")]
    findings = []
    if size != (image.width, image.height):
        findings.append(Finding("error", "size_mismatch", image.file_name,
                                f"file is {size[0]}x{size[1]} but annotated as {image.width}x{image.height}"))
    digest = hashlib.sha1(data).hexdigest()
    if digest in digests:
        findings.append(Finding("warning", "duplicate_image", image.file_name,
                                f"same content as {digests[digest]}"))
    digests.setdefault(digest, image.file_name)
    return findings


def _check_target(record: DatasetRecord, image: ImageRecord, task: str, info: TaskInfo,
                  target: object) -> list[Finding]:
    if isinstance(target, DenseRef):
        if not resolve(record.root, target.path).is_file():
            return [Finding("error", "missing_map", image.file_name, f"dense map {target.path} not found", task)]
        return []
    if isinstance(target, list) and (not target or isinstance(target[0], Annotation)):
        return [f for i, a in enumerate(target) for f in _check_annotation(image, task, info, i, a)]
    labels = [target] if isinstance(target, int) else list(target)  # type: ignore[call-overload]
    wrong = [c for c in labels if not 0 <= c < len(info.classes)]
    if wrong:
        return [Finding("error", "class_out_of_range", image.file_name,
                        f"class ids {wrong} outside 0..{len(info.classes) - 1}", task)]
    return []


def _check_annotation(image: ImageRecord, task: str, info: TaskInfo, index: int,
                      ann: Annotation) -> list[Finding]:
    def finding(code: str, message: str) -> Finding:
        return Finding("error", code, image.file_name, message, task, index)

    problems = []
    if not 0 <= ann.category < len(info.classes):
        problems.append(finding("class_out_of_range", f"class id {ann.category} outside 0..{len(info.classes) - 1}"))
    x1, y1, x2, y2 = ann.box
    if not (x2 > x1 and y2 > y1):
        problems.append(finding("degenerate_box", f"box {list(ann.box)} has no area"))
    elif x1 < -1 or y1 < -1 or x2 > image.width + 1 or y2 > image.height + 1:  # 1 px slack for rounding
        problems.append(finding("box_out_of_bounds", f"box {list(ann.box)} leaves the {image.width}x{image.height} image"))
    if isinstance(ann.segmentation, list):
        for polygon in ann.segmentation:
            if len(polygon) < 6 or len(polygon) % 2:
                problems.append(finding("invalid_polygon", f"polygon with {len(polygon)} coordinates "
                                                           "(needs an even number, at least 6)"))
    k = len(info.keypoint_names)
    if ann.keypoints is not None and k and len(ann.keypoints) != 3 * k:
        problems.append(finding("keypoint_count", f"{len(ann.keypoints)} keypoint values, the task defines {k} "
                                                  f"keypoints ({3 * k} values x, y, v)"))
    return problems
