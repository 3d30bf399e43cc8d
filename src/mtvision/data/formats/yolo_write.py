"""Write one instance task of a :class:`DatasetRecord` as an Ultralytics YOLO dataset.

Output: ``images/<subset>/...`` (symlinks to the record's images by default, or copies,
or nothing), ``labels/<subset>/....txt`` and ``data.yaml`` (no ``path`` key, so both
Ultralytics and :func:`~mtvision.data.formats.yolo.read` take the YAML's folder as root).
The subset is ``ImageRecord.meta["subset"]`` ("train" when missing); Ultralytics also
wants a ``val`` entry, which is only written when the record has such a subset. The label
type follows what the task holds:

* keypoint names -> pose (``kpt_shape: [K, 3]``; an object without keypoints gets K zero
  triplets, COCO's "not labelled"; masks are not written, pose lines have no place for them);
* else any mask -> segment (a box-only object is written as its 4 corners, since
  Ultralytics reads every line of a segment file as a polygon; a multi-part polygon is
  joined into one outline by zero-area bridges; an RLE mask is traced into the outer
  outlines of its regions first, see :mod:`~mtvision.data.formats._outlines`);
* else detect.

Only images labelled for the task are written (an image without a label file would be a
negative for Ultralytics); an empty list gives an empty label file. ``iscrowd`` objects
are skipped, as in Ultralytics' own COCO converter: a crowd region is not one object.

Example:
    >>> import tempfile, pathlib
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> im = ImageRecord("a.jpg", 10, 10, targets={"objects": [Annotation(0, (0, 0, 5, 5))]})
    >>> rec = DatasetRecord(pathlib.Path("."), [im], {"objects": TaskInfo("instances", ["cat"])})
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> write(rec, out, images="none")
    >>> (out / "labels" / "train" / "a.txt").read_text()
    '0 0.250000 0.250000 0.500000 0.500000\\n'
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml

from mtvision.data.errors import FormatError
from mtvision.data.formats._annotations import instance_task
from mtvision.data.formats._outlines import mask_outlines
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord, keypoint_triplets
from mtvision.structures import TaskInfo, decode_mask

__all__ = ["write"]

Mode = Literal["detect", "segment", "pose"]


def write(record: DatasetRecord, path: str | Path, *, task: str = "objects",
          images: Literal["link", "copy", "none"] = "link") -> None:
    """Write labels, ``data.yaml`` and (unless ``images="none"``) the images under ``path``."""
    if images not in ("link", "copy", "none"):
        raise ValueError(f"images must be 'link', 'copy' or 'none', got {images!r}")
    info = instance_task(record, task)
    out, mode = Path(path), _mode(record, task, info)
    written: set[tuple[str, str]] = set()
    for im in (im for im in record.images if task in im.targets):
        subset = str(im.meta.get("subset") or "train")
        rel = _output_name(im.file_name, subset)
        if (subset, rel) in written:
            raise FormatError(out, im.file_name, f"two images would both be written as images/{subset}/{rel}")
        written.add((subset, rel))
        label = (out / "labels" / subset / rel).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = [_line(a, im, mode, len(info.keypoint_names), out) for a in im.targets[task] if not a.iscrowd]
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if images != "none":
            _place_image(record.image_path(im), out / "images" / subset / rel, images)
    _write_yaml(out, info, mode, sorted({s for s, _ in written}))


def _mode(record: DatasetRecord, task: str, info: TaskInfo) -> Mode:
    if info.keypoint_names:
        return "pose"
    has_mask = any(a.segmentation for im in record.images for a in im.targets.get(task, []))  # type: ignore[union-attr]
    return "segment" if has_mask else "detect"


def _output_name(file_name: str, subset: str) -> str:
    """The image path under ``images/<subset>/``: the record path minus ``images/[<subset>/]``."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return path.name
    parts = list(path.parts)
    if parts[:1] == ["images"]:
        parts = parts[2:] if parts[1:2] == [subset] and len(parts) > 2 else parts[1:]
    return "/".join(parts)


def _line(a: Annotation, im: ImageRecord, mode: Mode, k: int, out: Path) -> str:
    w, h = im.width, im.height
    if mode == "segment":
        points = _outline(a, im)
        return " ".join([str(a.category), *(f"{v / (w if i % 2 == 0 else h):.6f}" for i, v in enumerate(points))])
    x0, y0, x1, y1 = a.box
    values = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
    fields = [str(a.category), *(f"{v:.6f}" for v in values)]
    if mode == "pose":
        if a.keypoints is not None and len(a.keypoints) != 3 * k:
            raise FormatError(out, im.file_name, f"an object has {len(a.keypoints)} keypoint values, "
                                                 f"the task {k} keypoints ({3 * k} values x, y, v)")
        for x, y, v in keypoint_triplets(a.keypoints or [0.0] * (3 * k)):
            fields += [f"{x / w:.6f}", f"{y / h:.6f}", str(int(v))]
    return " ".join(fields)


def _outline(a: Annotation, im: ImageRecord) -> list[float]:
    """One flat polygon in pixels: the mask's parts joined (an RLE mask traced first), or the box corners."""
    seg = a.segmentation
    if isinstance(seg, dict):
        seg = mask_outlines(decode_mask(seg, im.height, im.width))
    if not seg:
        x0, y0, x1, y1 = a.box
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    first = list(seg[0])
    outline = first + first[:2]
    for part in seg[1:]:  # there and back along the same bridge: no area added
        outline += list(part) + list(part[:2]) + first[:2]
    return outline if len(seg) > 1 else first


def _place_image(source: Path, dest: Path, how: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    if how == "copy":
        shutil.copy2(source, dest)
    else:
        os.symlink(source.resolve(), dest)


def _write_yaml(out: Path, info: TaskInfo, mode: Mode, subsets: list[str]) -> None:
    cfg: dict = {s: f"images/{s}" for s in subsets}
    cfg["names"] = dict(enumerate(info.classes))
    if mode == "pose":
        cfg["kpt_shape"] = [len(info.keypoint_names), 3]
        if info.flip_idx:
            cfg["flip_idx"] = list(info.flip_idx)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
