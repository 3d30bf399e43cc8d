"""Folder layouts: image-folder / CSV classification, and images paired with dense maps.

* ``read_image_folder(root)``: ``root/<class>/**/<image>`` -> single-label task ``"label"``
  (classes: the sorted folder names).
* ``read_csv(path)``: rows ``file,label`` (optional header) -> task ``"label"``; a label
  cell holding ``a;b`` makes the task multi-label (every row then a list, ``""`` = none).
* ``read_paired(root, images="images", semseg=..., depth=..., normals=...)``: each
  folder is paired with the images by relative path without extension (``images/a/x.jpg``
  <-> ``depth/a/x.png``), after stripping the per-folder stem suffix in ``suffixes``
  (e.g. ``{"images": "_rgb", "depth": "_depth"}``; with a suffix, other files are
  skipped, so images and maps may share one folder). Tasks: ``"semseg"`` (index or
  palette PNG, 255 = void), ``"depth"`` (16-bit PNG with ``depth_scale`` units per metre,
  or ``.npy`` in metres), ``"normals"`` (RGB PNG or ``.npy``). An image without a map is
  simply unlabelled for that task; a map without an image is an error.
* ``read(path)`` picks one: a ``.csv``; a folder with ``images/`` (dense folders found by
  name: semseg|masks|segmentation, depth, normals); else an image folder.

Image sizes come from the image headers; maps must match them. A CSV row whose image
is missing gets size 0 x 0 (unknown until loaded).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "depth"): (root / sub).mkdir()
    >>> Image.new("RGB", (8, 6)).save(root / "images" / "0001.jpg")
    >>> Image.fromarray(np.full((6, 8), 1500, np.uint16)).save(root / "depth" / "0001.png")
    >>> read(root).images[0].targets["depth"]
    DenseRef(path='depth/0001.png', scale=1000.0)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtvision.data.errors import FormatError
from mtvision.data.formats._files import image_size, load_png, read_text, safe_relpath
from mtvision.data.formats._shapes import finish_labels
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DENSE_DIRS = {"semseg": ("semseg", "masks", "segmentation"), "depth": ("depth",), "normals": ("normals",)}
HEADER_WORDS = {"file", "filename", "file_name", "image", "path", "image_path", "img"}


@register_format("folders")
def read(path: str | Path, **options: object) -> DatasetRecord:
    """Read whichever folder layout ``path`` is (see the module docstring)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return read_csv(p, **options)  # type: ignore[arg-type]
    if (p / "images").is_dir():
        found = {task: next((d for d in names if (p / d).is_dir()), None) for task, names in DENSE_DIRS.items()}
        return read_paired(p, **{**found, **options})  # type: ignore[arg-type]
    return read_image_folder(p, **options)  # type: ignore[arg-type]


def detect(path: str | Path) -> bool:
    """A ``.csv``, a folder with ``images/`` + a dense folder, or class folders of images."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() == ".csv"
    if (p / "images").is_dir():
        return any((p / d).is_dir() for names in DENSE_DIRS.values() for d in names)
    subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")] if p.is_dir() else []
    return bool(subdirs) and all(any(f.suffix.lower() in IMAGE_EXTS for f in islice(d.rglob("*"), 64))
                                 for d in subdirs)


def read_image_folder(root: str | Path, task: str = "label") -> DatasetRecord:
    """``root/<class>/...`` images -> single-label classification (sorted class names)."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(root, "", "not a folder")
    record = DatasetRecord(root=root)
    stray = [f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
    if stray:
        raise FormatError(root, stray[0], "image outside a class folder: expected root/<class>/<image>")
    labels = []
    for path in _images(root):
        record.images.append(_image_record(root, path))
        labels.append([path.relative_to(root).parts[0]])
    finish_labels(record, labels, task, multi_label=False, file=str(root))
    return record


def read_csv(path: str | Path, image_root: str | Path | None = None, task: str = "label",
             multi_sep: str = ";") -> DatasetRecord:
    """``file,label`` rows -> classification; ``a;b`` labels make it multi-label."""
    path = Path(path)
    record = DatasetRecord(root=Path(image_root) if image_root is not None else path.parent)
    try:
        rows = [r for r in csv.reader(io.StringIO(read_text(path))) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise FormatError(path, "", f"invalid CSV: {exc}") from None
    if rows and rows[0][0].strip().lower() in HEADER_WORDS:
        rows = rows[1:]
    labels: list[list[str] | None] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        entry = f"row {i + 1}"
        if len(row) != 2:
            raise FormatError(path, entry, f"expected 2 columns (file,label), got {len(row)}")
        name = safe_relpath(row[0].strip(), path, entry)
        if name in seen:
            raise FormatError(path, entry, f"{name} is listed twice")
        seen.add(name)
        full = record.root / name
        width, height = image_size(full, path, entry) if full.is_file() else (0, 0)
        record.images.append(ImageRecord(name, width, height, id=name))
        labels.append([s.strip() for s in row[1].split(multi_sep) if s.strip()])
    multi = any(multi_sep in row[1] for row in rows) or any(not ls for ls in labels)
    finish_labels(record, labels, task, multi_label=multi, file=str(path))
    return record


def read_paired(root: str | Path, images: str = "images", semseg: str | None = None, depth: str | None = None,
                normals: str | None = None, classes: list[str] | None = None, depth_scale: float = 1000.0,
                suffixes: Mapping[str, str] | None = None) -> DatasetRecord:
    """Images + any of semantic-mask / depth / normal folders, paired by relative stem."""
    root, suffixes = Path(root), dict(suffixes or {})
    record = DatasetRecord(root=root)
    by_key = {}
    for path in _images(root / images, suffixes.get("images", "")):
        by_key[_key(path, root / images, suffixes.get("images", ""))] = len(record.images)
        record.images.append(_image_record(root, path))
    for task, folder in (("semseg", semseg), ("depth", depth), ("normals", normals)):
        if folder is not None:
            _attach_dense(record, by_key, task, root / folder, suffixes.get(task, ""), depth_scale)
    if semseg is not None:
        names = classes if classes is not None else _scan_classes(record)
        record.tasks["semseg"] = TaskInfo(kind="semantic", classes=list(names), ignore_index=255)
    for task, folder in (("depth", depth), ("normals", normals)):
        if folder is not None:
            record.tasks[task] = TaskInfo(kind=task)  # type: ignore[arg-type]
    return record


def _images(folder: Path, suffix: str = "") -> list[Path]:
    if not folder.is_dir():
        raise FormatError(folder, "", "image folder not found")
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.stem.endswith(suffix)
                  and not any(p.startswith(".") for p in f.relative_to(folder).parts))


def _key(path: Path, folder: Path, suffix: str) -> str:
    rel = path.relative_to(folder).with_suffix("").as_posix()
    return rel[: len(rel) - len(suffix)] if suffix else rel


def _image_record(root: Path, path: Path) -> ImageRecord:
    name = path.relative_to(root).as_posix()
    width, height = image_size(path, root, name)
    return ImageRecord(name, width, height, id=name)


def _attach_dense(record: DatasetRecord, by_key: dict[str, int], task: str, folder: Path, suffix: str,
                  depth_scale: float) -> None:
    """Pair each map in ``folder`` with its image; check its layout and size."""
    if not folder.is_dir():
        raise FormatError(folder, "", f"{task} folder not found")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in (".png", ".npy") and f.stem.endswith(suffix))
    for f in files:
        key = _key(f, folder, suffix)
        if key not in by_key:
            raise FormatError(f, "", f"{task} map has no image with the same name ({key}.*)")
        image = record.images[by_key[key]]
        if task in image.targets:
            raise FormatError(f, "", f"two {task} maps for image {image.file_name}")
        size = _map_size(f, task)
        if size != (image.width, image.height):
            raise FormatError(f, "", f"{task} map is {size[0]}x{size[1]}, image is {image.width}x{image.height}")
        scale = depth_scale if task == "depth" and f.suffix.lower() == ".png" else 1.0
        image.targets[task] = DenseRef(f.relative_to(record.root).as_posix(), scale)


def _map_size(f: Path, task: str) -> tuple[int, int]:
    """(width, height) of a map from its header, refusing channel layouts the task cannot use."""
    channels = 3 if task == "normals" else 1
    if f.suffix.lower() == ".npy":
        try:
            shape = np.load(f, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as exc:
            raise FormatError(f, "", f"cannot read .npy: {exc}") from None
        if len(shape) == 2 and channels == 1:
            return (shape[1], shape[0])
        if len(shape) == 3 and channels in (shape[0], shape[2]):
            return (shape[2], shape[1]) if shape[0] == channels else (shape[1], shape[0])
        raise FormatError(f, "", f"{task} .npy has shape {shape}, expected {channels} channel(s)")
    try:
        with Image.open(f) as im:
            size, bands = im.size, len(im.getbands())
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise FormatError(f, "", f"cannot read PNG: {exc}") from None
    if bands != channels or (task == "semseg" and im.mode not in ("L", "P", "I;16", "I")):
        raise FormatError(f, "", f"{task} PNG mode {im.mode!r} has {bands} channel(s), expected {channels}"
                          + (" (index or palette PNG, not colour)" if task == "semseg" else ""))
    return size


def _scan_classes(record: DatasetRecord) -> list[str]:
    """Without ``classes``: names "0".."max" from the largest non-void index in the masks."""
    top = -1
    for image in record.images:
        ref = image.targets.get("semseg")
        if isinstance(ref, DenseRef):
            values = np.unique(load_png(record.root / ref.path, ref.path, "", ("L", "P", "I;16", "I"))).astype(int)
            top = max(top, int(values[values != 255].max(initial=-1)))
    return [str(i) for i in range(top + 1)]
