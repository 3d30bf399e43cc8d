"""Geometry and mask codecs shared by the annotation-tool readers (Label Studio, CVAT, LabelMe).

Annotation tools describe one object in many ways (rotated boxes, ellipses, brush strokes,
tool-specific run-length codes). This module turns them into the two forms a
:class:`~mtvision.data.record.Annotation` holds: COCO polygons and COCO compressed RLE.
It also holds :class:`Draft`, an instance whose class and keypoints are still *names*,
because a reader only knows the final label space once it has seen every file.

Example:
    >>> ellipse_polygon(10.0, 10.0, 2.0, 2.0, n=4)[0]
    (12.0, 10.0)
    >>> mask = np.zeros((4, 6), dtype=bool); mask[1:3, 2:5] = True
    >>> rle, box = mask_region(mask); rle["size"], box
    ([4, 6], (2.0, 1.0, 5.0, 3.0))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtvision.data.errors import FormatError
from mtvision.data.formats._annotations import box_from_points, flip_idx_from_names
from mtvision.data.record import Annotation, DatasetRecord
from mtvision.structures import Polygons, Rle, TaskInfo, decode_mask, mask_to_rle, rle_box

Box = tuple[float, float, float, float]
Point = tuple[float, float]
Keypoint = tuple[float, float, int]
MAX_PIXELS = 1 << 28  # masks are rasterised on the full image: refuse absurd sizes first


def bounds(points: Sequence[Point]) -> Box:
    """Axis-aligned XYXY bounds of at least one ``(x, y)`` point."""
    return box_from_points([p[0] for p in points], [p[1] for p in points])


def mask_region(mask: np.ndarray) -> tuple[Rle, Box] | None:
    """A full-image boolean mask as (RLE, box); ``None`` for an empty mask (it has no box)."""
    if not mask.any():
        return None
    rle = mask_to_rle(mask)
    return rle, rle_box(rle)


def flatten(points: Iterable[Point]) -> list[float]:
    """``[(x, y), ...]`` -> COCO's flat ``[x1, y1, x2, y2, ...]``."""
    return [float(c) for p in points for c in p]


def rotate(points: Iterable[Point], pivot: Point, degrees: float) -> list[Point]:
    """Rotate clockwise *on screen* (image y points down), as every labelling tool draws it."""
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    px, py = pivot
    return [(px + (x - px) * cos - (y - py) * sin, py + (x - px) * sin + (y - py) * cos) for x, y in points]


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0, n: int = 0) -> list[Point]:
    """Polygon approximating an ellipse; ``n = 0`` picks ~one vertex per 2 px of perimeter.

    Tools store circles/ellipses analytically; COCO masks need polygons, and 16..180
    vertices keep the area within 2.5 % of pi*rx*ry without bloating the record.
    """
    n = n or int(min(180, max(16, math.pi * (abs(rx) + abs(ry)) / 2)))
    pts = [(cx + rx * math.cos(2 * math.pi * i / n), cy + ry * math.sin(2 * math.pi * i / n)) for i in range(n)]
    return rotate(pts, (cx, cy), degrees) if degrees else pts


def paste(crop: np.ndarray, left: int, top: int, width: int, height: int) -> np.ndarray:
    """Place a mask cropped at ``(left, top)`` into a full ``height x width`` canvas, clipping."""
    full = np.zeros((height, width), dtype=bool)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + crop.shape[0], height), min(left + crop.shape[1], width)
    if y1 > y0 and x1 > x0:
        full[y0:y1, x0:x1] = crop[y0 - top : y1 - top, x0 - left : x1 - left]
    return full


def decode_cvat_rle(counts: Sequence[int], width: int, height: int, file: str, entry: str) -> np.ndarray:
    """CVAT ``<mask rle="...">``: run lengths over its own box, row-major, starting with zeros."""
    if any(c < 0 for c in counts) or sum(counts) != width * height:
        raise FormatError(file, entry, f"mask rle sums to {sum(counts)}, expected width*height = {width * height}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(height, width)


# Label Studio brush RLE (label_studio_converter.brush, after thi-ng's rle-pack). The bytes
# form one big-endian bit stream:
#   32 bits  num        number of decoded values (= width * height * 4: RGBA, row-major)
#    5 bits  word_size - 1
#   4x4 bits rle_sizes[k] - 1   (bit widths of the four run-length classes)
# then, until num values are produced, one chunk:
#    1 bit   repeat flag x
#    2 bits  k, then rle_sizes[k] bits: run = that value + 1
#   x = 1 -> one word_size value repeated `run` times; x = 0 -> `run` literal values.
# The mask is the alpha channel (every 4th value) being non-zero.
def decode_ls_brush(rle: Sequence[int], width: int, height: int, file: str, entry: str) -> np.ndarray:
    """Label Studio brush RLE -> boolean ``[height, width]`` mask (spec in the comment above)."""
    if not all(isinstance(b, int) and 0 <= b < 256 for b in rle):
        raise FormatError(file, entry, "brush 'rle' must be a list of byte values 0..255")
    bits = (np.unpackbits(np.asarray(rle, dtype=np.uint8)) + 48).tobytes().decode("ascii")
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise FormatError(file, entry, "brush rle ends before its declared length")
        pos += n
        return int(bits[pos - n : pos], 2)

    num, word = read(32), read(5) + 1
    if num > len(bits) << 14:  # a chunk of >= 4 bits yields <= 2**16 values: refuse absurd lengths early
        raise FormatError(file, entry, f"brush rle too short for its declared {num} values")
    if num != width * height * 4:
        raise FormatError(file, entry, f"brush rle holds {num} values, expected 4 * {width} x {height}")
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = min(num, i + 1 + read(sizes[read(2)]))
        if repeat:
            out[i:j] = min(read(word), 255)
        else:
            out[i:j] = [min(read(word), 255) for _ in range(j - i)]
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


@dataclass
class Draft:
    """An instance before the label space is fixed: class and keypoint slots are names."""

    label: str
    box: Box
    segmentation: Polygons | Rle | None = None
    keypoints: dict[str, Keypoint] = field(default_factory=dict)
    iscrowd: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_annotation(self, classes: Mapping[str, int], keypoint_names: Sequence[str]) -> Annotation:
        kps = [c for n in keypoint_names for c in self.keypoints.get(n, (0.0, 0.0, 0))] if keypoint_names else None
        return Annotation(classes[self.label], self.box, self.segmentation, kps, self.iscrowd, self.attributes)


def merge_group(members: list[tuple[str, Draft]], width: int, height: int) -> Draft:
    """One instance from shapes a tool grouped (CVAT/LabelMe ``group_id``).

    ``members`` pairs each draft with its kind (box, polygon, mask, skeleton, points,
    polyline). The first box (else region, else skeleton) leads: its class, and its box
    when it is a box (else the union of all boxes). Polygons and masks unite; every
    ``points`` shape becomes keypoints named by its label (``label.i`` if several).
    """
    if len(members) == 1:
        return members[0][1]
    rank = {"box": 0, "polygon": 1, "mask": 1, "skeleton": 2}
    members = sorted(members, key=lambda m: rank.get(m[0], 3))
    lead_tag, lead = members[0]
    segs = [d.segmentation for kind, d in members if kind in ("box", "polygon", "mask") and d.segmentation is not None]
    polygons = [poly for s in segs if isinstance(s, list) for poly in s]
    masks = [s for s in segs if isinstance(s, dict)]
    if masks:
        layers = [decode_mask(s, height, width) for s in masks + ([polygons] if polygons else [])]
        lead.segmentation = mask_to_rle(np.any(layers, axis=0))
    elif polygons:
        lead.segmentation = polygons
    if lead_tag != "box":
        lead.box = bounds([c for _, d in members for c in (d.box[:2], d.box[2:])])
    for kind, d in members:
        if kind == "points":
            flat = d.attributes.pop("points")
            pts = list(zip(flat[::2], flat[1::2]))
            names = [d.label] if len(pts) == 1 else [f"{d.label}.{i}" for i in range(len(pts))]
            lead.keypoints.update({n: (x, y, 2) for n, (x, y) in zip(names, pts)})
        if d is not lead:
            lead.keypoints.update(d.keypoints)
            lead.attributes = {**d.attributes, **lead.attributes}
    return lead


def check_canvas(width: int, height: int, file: str, entry: str) -> None:
    """Refuse a mask canvas that is empty or absurdly large before allocating it."""
    if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
        raise FormatError(file, entry, f"mask size {width}x{height} is out of range (1 .. {MAX_PIXELS} pixels)")


def finish_instances(
    record: DatasetRecord,
    drafts: Sequence[list[Draft] | None],
    file: str,
    classes: Sequence[str] | None = None,
    keypoint_names: Sequence[str] = (),
    skeleton: Sequence[tuple[int, int]] = (),
    task: str = "objects",
) -> None:
    """Turn per-image drafts (``None`` = image not labelled) into the ``objects`` task.

    ``classes`` fixes the order (a tool's declared label list); without it classes are the
    sorted names seen, so adding files never reorders indices arbitrarily.
    """
    seen = {d.label for ds in drafts if ds for d in ds}
    order = list(classes) if classes is not None else sorted(seen)
    undeclared = sorted(seen - set(order))
    if undeclared:
        raise FormatError(file, "labels", f"labels {undeclared} are used but not declared in {order}")
    index = {name: i for i, name in enumerate(order)}
    for image, ds in zip(record.images, drafts):
        if ds is not None:
            image.targets[task] = [d.to_annotation(index, keypoint_names) for d in ds]
    record.tasks[task] = TaskInfo(
        kind="instances", classes=order, keypoint_names=list(keypoint_names),
        skeleton=list(skeleton), flip_idx=flip_idx_from_names(keypoint_names),
    )


def finish_labels(
    record: DatasetRecord,
    labels: Sequence[list[str] | None],
    task: str,
    classes: Sequence[str] | None = None,
    multi_label: bool | None = None,
    file: str = "",
) -> None:
    """Image-level labels by name -> a ``label`` task (``None`` = image not labelled).

    Single-label unless told otherwise or some image carries other than exactly one label.
    """
    seen = {n for names in labels if names for n in names}
    order = list(classes) if classes is not None else sorted(seen)
    if seen - set(order):
        raise FormatError(file, task, f"labels {sorted(seen - set(order))} are not declared in {order}")
    multi = multi_label if multi_label is not None else any(n is not None and len(n) != 1 for n in labels)
    index = {name: i for i, name in enumerate(order)}
    for image, names in zip(record.images, labels):
        if names is not None:
            ids = sorted({index[n] for n in names})
            if not multi and len(ids) != 1:
                raise FormatError(file, f"{task} of {image.file_name}", f"single-label task got {names}")
            image.targets[task] = ids if multi else ids[0]
    record.tasks[task] = TaskInfo(kind="label", classes=order, multi_label=multi)
