"""LabelMe JSON (one file per image; a folder of them is one dataset) -> :class:`DatasetRecord`.

Conventions:

* Shapes -> task ``"objects"``: ``rectangle`` (two opposite corners, any order) -> box;
  ``polygon``; ``circle`` (centre + a point on the rim) -> polygon; ``mask`` (base64 PNG
  pasted at the box's top-left) -> RLE; ``point``/``points``, ``line``/``linestrip`` have no
  area: an instance with their bounds as box and the coordinates in
  ``attributes["points"]`` / ``attributes["polyline"]``. Shape ``flags`` and
  ``description`` go to ``attributes``.
* ``group_id``: regions sharing ``(label, group_id)`` are one instance, as labelme2coco
  does; a point shape with that ``group_id`` becomes one of its keypoints (named by the
  point's label) when exactly one region label uses the id.
* ``__ignore__`` shapes (see ``ignore_labels``) are not objects: their box and segmentation
  go to ``meta["ignore_regions"]`` so a loss/metric can mask them, as labelme2voc paints
  them void.
* Image ``flags`` -> multi-label task ``"tags"`` (classes: the flag names); a file whose
  ``__ignore__`` flag is set gets no tags and ``meta["ignore"] = True``.
* Classes: the ``labels`` file/list (labelme's labels.txt; ``__ignore__`` and
  ``_background_`` skipped) in its order, else the sorted labels seen.
* Embedded images: when ``imagePath`` does not name an existing image (e.g. it names the
  JSON itself), the base64 ``imageData`` is kept in ``meta["image_data"]`` and the loader
  decodes it instead of opening ``file_name``; the size is read from that data.

Example:
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> shape = {"label": "cat", "points": [[30, 20], [10, 5]], "shape_type": "rectangle", "group_id": None}
    >>> _ = (folder / "a.json").write_text(json.dumps(
    ...     {"shapes": [shape], "imagePath": "a.jpg", "imageWidth": 64, "imageHeight": 48, "flags": {}}))
    >>> read(folder).images[0].targets["objects"][0].box
    (10.0, 5.0, 30.0, 20.0)
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import posixpath
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe, require
from mtvision.data.formats._files import image_size, load_json, read_text, safe_relpath
from mtvision.data.formats._shapes import (Draft, bounds, check_canvas, ellipse_polygon, finish_instances,
                                           finish_labels, flatten, mask_region, merge_group, paste)
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, ImageRecord

KIND = {"rectangle": "box", "polygon": "polygon", "ai_polygon": "polygon", "circle": "polygon", "mask": "mask",
        "ai_mask": "mask", "point": "points", "points": "points", "line": "polyline", "linestrip": "polyline"}
NOT_CLASSES = ("__ignore__", "_background_")


@register_format("labelme")
def read(path: str | Path, *, labels: str | Path | list[str] | None = None,
         ignore_labels: tuple[str, ...] = ("__ignore__",), root: str | Path | None = None) -> DatasetRecord:
    """Read one LabelMe JSON or every ``*.json`` under a folder (recursively, sorted)."""
    path = Path(path)
    record = DatasetRecord(root=Path(root) if root is not None else (path if path.is_dir() else path.parent))
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    drafts: list[list[Draft]] = []
    tags: list[list[str] | None] = []
    flag_names: dict[str, None] = {}
    for file in files:
        try:
            image, shapes, flags = _read_file(file, record.root, ignore_labels)
            flag_names.update(dict.fromkeys(k for k in flags if k != "__ignore__"))
        except FormatError:
            raise
        except PARSE_ERRORS as exc:
            raise FormatError(file, "", describe(exc)) from None
        record.images.append(image)
        drafts.append(shapes)
        tags.append(None if not flags or flags.get("__ignore__") else [k for k, v in flags.items() if v is True])
    if any(drafts) or labels is not None:
        keypoints = sorted({k for ds in drafts for d in ds for k in d.keypoints})
        finish_instances(record, drafts, str(path), _classes(labels), keypoints)
    if flag_names:
        finish_labels(record, tags, "tags", list(flag_names), multi_label=True, file=str(path))
    return record


def detect(path: str | Path) -> bool:
    """A LabelMe ``.json`` (or a folder whose first ``.json`` is one): has shapes + imagePath."""
    p = Path(path)
    if p.is_dir():
        p = next(iter(sorted(p.rglob("*.json"))), p)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(1 << 16).decode("utf-8", "ignore")
    return '"shapes"' in head and '"imagePath"' in head


def _classes(labels: str | Path | list[str] | None) -> list[str] | None:
    """Class order from labelme's labels.txt (or a list), without its non-class entries."""
    if labels is None:
        return None
    names = read_text(labels).splitlines() if isinstance(labels, (str, Path)) else list(labels)
    return [n.strip() for n in names if n.strip() and n.strip() not in NOT_CLASSES]


def _read_file(file: Path, root: Path, ignore: tuple[str, ...]) -> tuple[ImageRecord, list[Draft], dict[str, bool]]:
    """One JSON -> its image, merged instances (ignore regions to meta) and image flags."""
    data = load_json(file)
    image = _image(data, file, root)
    shapes = require(data, "shapes", file, "", list)
    members: dict[Any, list[tuple[str, Draft]]] = defaultdict(list)
    ignored = []
    for j, (key, kind, draft) in enumerate(_shapes(shapes, image.width, image.height, file)):
        if draft.label in ignore:
            ignored.append({"box": draft.box, "segmentation": draft.segmentation})
        else:
            members[key if key is not None else f"#{j}"].append((kind, draft))
    if ignored:
        image.meta["ignore_regions"] = ignored
    flags = data.get("flags") or {}
    if not isinstance(flags, dict) or not all(isinstance(v, bool) for v in flags.values()):
        raise FormatError(file, "flags", "must be an object of name -> true/false")
    if flags.get("__ignore__"):
        image.meta["ignore"] = True
    return image, [merge_group(m, image.width, image.height) for m in members.values()], flags


def _image(data: dict[str, Any], file: Path, root: Path) -> ImageRecord:
    """Image path (relative to the JSON, kept inside ``root``), size, and embedded data."""
    if not file.resolve().is_relative_to(root.resolve()):
        raise FormatError(file, "", f"file lies outside the dataset root {root}")
    json_rel = file.resolve().relative_to(root.resolve())
    folder = json_rel.parent.as_posix()
    rel = require(data, "imagePath", file, "", str).replace("\\", "/")
    name = safe_relpath(posixpath.join(folder, rel), file, "imagePath")
    embedded = data.get("imageData")
    on_disk = (root / name).is_file() and not name.lower().endswith(".json")
    meta: dict[str, Any] = {}
    if on_disk or not embedded:
        size = _declared_size(data, file) or (image_size(root / name, file, "imagePath") if on_disk else None)
        if size is None:
            raise FormatError(file, "imagePath", f"image {name} not found and no imageData/imageWidth to size it")
    else:
        size = _embedded_size(embedded, file)
        declared = _declared_size(data, file)
        if declared and declared != size:
            raise FormatError(file, "imageData", f"embedded image is {size}, imageWidth/imageHeight say {declared}")
        meta["image_data"] = embedded
    return ImageRecord(name, size[0], size[1], id=json_rel.with_suffix("").as_posix(), meta=meta)


def _declared_size(data: dict[str, Any], file: Path) -> tuple[int, int] | None:
    """``(imageWidth, imageHeight)``; old LabelMe files omit them (``None``)."""
    w, h = data.get("imageWidth"), data.get("imageHeight")
    if w is None and h is None:
        return None
    if not (type(w) is int and type(h) is int and w > 0 and h > 0):
        raise FormatError(file, "imageWidth/imageHeight", f"must be positive integers, got {w!r:.20} x {h!r:.20}")
    return (w, h)


def _decode_png(b64: Any, file: Path, entry: str) -> Image.Image:
    """A base64 image as an opened PIL image (header read, pixels decoded lazily)."""
    try:
        return Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    except (binascii.Error, OSError, ValueError, TypeError, Image.DecompressionBombError) as exc:
        raise FormatError(file, entry, f"cannot decode base64 image: {exc}") from None


def _embedded_size(b64: Any, file: Path) -> tuple[int, int]:
    """Size of the ``imageData`` image from its header alone."""
    with _decode_png(b64, file, "imageData") as im:
        return im.size


def _shapes(shapes: list[Any], width: int, height: int, file: Path) -> list[tuple[Any, str, Draft]]:
    """Each shape -> (group key, kind for merging, draft), grouping as labelme2coco does."""
    parsed = [(_shape(s, width, height, file, f"shapes[{j}]"), s) for j, s in enumerate(shapes)]
    region_labels: dict[Any, set[str]] = defaultdict(set)
    for (kind, draft), s in parsed:
        if kind not in ("points", "polyline") and s.get("group_id") is not None:
            region_labels[s["group_id"]].add(draft.label)
    out = []
    for (kind, draft), s in parsed:
        gid = s.get("group_id")
        owner = region_labels.get(gid, set())
        label = next(iter(owner)) if kind == "points" and len(owner) == 1 else draft.label
        out.append(((label, gid) if gid is not None else None, kind, draft))
    return out


def _shape(s: Any, width: int, height: int, file: Path, entry: str) -> tuple[str, Draft]:
    """One shape -> (merge kind, draft); circles become polygons, masks full-image RLE."""
    label = require(s, "label", file, entry, str)
    shape_type = s.get("shape_type") or "polygon"
    if shape_type not in KIND:
        raise FormatError(file, entry, f"unknown shape_type {shape_type!r}, expected one of {sorted(KIND)}")
    pts = [(float(x), float(y)) for x, y in require(s, "points", file, entry, list)]
    if not pts or not all(math.isfinite(c) for p in pts for c in p):
        raise FormatError(file, entry, "points must be a non-empty list of finite [x, y]")
    need = {"rectangle": 2, "circle": 2, "polygon": 3, "ai_polygon": 3, "line": 2, "linestrip": 2, "mask": 2}
    if len(pts) < need.get(shape_type, 1):
        raise FormatError(file, entry, f"{shape_type} needs {need[shape_type]} points, got {len(pts)}")
    attrs = dict(s["flags"]) if isinstance(s.get("flags"), dict) else {}
    if s.get("description"):
        attrs["description"] = s["description"]
    kind = KIND[shape_type]
    if shape_type == "circle":
        (cx, cy), (px, py) = pts[:2]
        pts = ellipse_polygon(cx, cy, math.hypot(px - cx, py - cy), math.hypot(px - cx, py - cy))
    if kind == "mask":
        rle, box = _mask(s, pts, width, height, file, entry)
        return kind, Draft(label, box, rle, attributes=attrs)
    if kind == "box":
        return kind, Draft(label, bounds(pts[:2]), attributes=attrs)
    if kind == "polygon":
        return kind, Draft(label, bounds(pts), [flatten(pts)], attributes=attrs)
    return kind, Draft(label, bounds(pts), attributes={**attrs, kind: flatten(pts)})


def _mask(s: dict[str, Any], pts: list[tuple[float, float]], width: int, height: int, file: Path,
          entry: str) -> tuple[dict, tuple[float, float, float, float]]:
    """LabelMe mask: a PNG covering the shape's box, pasted at its top-left corner."""
    check_canvas(width, height, str(file), entry)
    with _decode_png(require(s, "mask", file, entry, str), file, entry) as im:
        check_canvas(*im.size, str(file), entry)
        crop = np.asarray(im.convert("L")) > 0
    x0, y0, _, _ = bounds(pts[:2])
    region = mask_region(paste(crop, int(x0), int(y0), width, height))
    if region is None:
        raise FormatError(file, entry, "mask is empty inside the image")
    return region
