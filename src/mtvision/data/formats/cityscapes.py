"""Cityscapes layout -> :class:`DatasetRecord` with ``semseg`` and ``objects`` tasks.

Layout: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and, next to it,
``gtFine/<split>/<city>/<stem>_gtFine_{labelTrainIds,labelIds,instanceIds}.png``.

* ``semseg``: ``*_labelTrainIds.png`` (19 training classes, 255 = void) by default, or
  ``*_labelIds.png`` (the 34 label ids) with ``semantic="labelIds"``; ``"auto"`` takes
  train ids when the files exist. The masks are referenced, not read.
* ``objects`` from ``*_instanceIds.png``: a value >= 1000 is one instance of label id
  ``value // 1000``; a value < 1000 of a class that has instances (person .. bicycle) is a
  crowd region (``iscrowd=True``); other values < 1000 are stuff and no object. Classes
  are the 34 label names indexed by label id, so ``category`` == the Cityscapes label id.
* ``meta["subset"]`` (the split) and ``meta["city"]``; ``split=`` keeps one split.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("leftImg8bit", "gtFine"): (root / sub / "val" / "ulm").mkdir(parents=True)
    >>> Image.new("RGB", (4, 2)).save(root / "leftImg8bit/val/ulm/ulm_0_1_leftImg8bit.png")
    >>> ids = np.array([[7, 26001, 26001, 7], [7, 26001, 26002, 7]], np.uint16)
    >>> Image.fromarray(ids).save(root / "gtFine/val/ulm/ulm_0_1_gtFine_instanceIds.png")
    >>> [(a.category, a.box) for a in read(root).images[0].targets["objects"]]  # two cars (label id 26)
    [(26, (1.0, 0.0, 3.0, 2.0)), (26, (2.0, 1.0, 3.0, 2.0))]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtvision.data.errors import FormatError
from mtvision.data.formats._files import image_size, load_png
from mtvision.data.formats._shapes import mask_region
from mtvision.data.formats.registry import register_format
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

# (name, trainId) by label id 0..33, from cityscapesScripts' labels.py.
LABELS: list[tuple[str, int]] = [
    ("unlabeled", 255), ("ego vehicle", 255), ("rectification border", 255), ("out of roi", 255),
    ("static", 255), ("dynamic", 255), ("ground", 255), ("road", 0), ("sidewalk", 1), ("parking", 255),
    ("rail track", 255), ("building", 2), ("wall", 3), ("fence", 4), ("guard rail", 255), ("bridge", 255),
    ("tunnel", 255), ("pole", 5), ("polegroup", 255), ("traffic light", 6), ("traffic sign", 7),
    ("vegetation", 8), ("terrain", 9), ("sky", 10), ("person", 11), ("rider", 12), ("car", 13), ("truck", 14),
    ("bus", 15), ("caravan", 255), ("trailer", 255), ("train", 16), ("motorcycle", 17), ("bicycle", 18),
]
HAS_INSTANCES = range(24, 34)  # person .. bicycle
TRAIN_CLASSES = [name for name, train_id in sorted(LABELS, key=lambda x: x[1]) if train_id != 255]
SUFFIX = "_leftImg8bit.png"


@register_format("cityscapes")
def read(path: str | Path, *, split: str | None = None, semantic: str = "auto", gt: str = "gtFine") -> DatasetRecord:
    """Read a Cityscapes root (the folder holding ``leftImg8bit/``)."""
    root = Path(path)
    if not (root / "leftImg8bit").is_dir():
        raise FormatError(root, "", "no leftImg8bit/ folder: not a Cityscapes root")
    if semantic not in ("auto", "trainIds", "labelIds"):
        raise FormatError(root, "semantic", f"must be 'auto', 'trainIds' or 'labelIds', got {semantic!r}")
    record = DatasetRecord(root=root)
    images = sorted((root / "leftImg8bit").glob(f"{split or '*'}/*/*{SUFFIX}"))
    if semantic == "auto":
        semantic = "trainIds" if any(_gt(root, p, gt, "labelTrainIds").is_file() for p in images) else "labelIds"
    for path in images:
        record.images.append(_image(root, path, gt, semantic))
    if any("semseg" in im.targets for im in record.images):
        classes = TRAIN_CLASSES if semantic == "trainIds" else [name for name, _ in LABELS]
        record.tasks["semseg"] = TaskInfo(kind="semantic", classes=list(classes), ignore_index=255)
    if any("objects" in im.targets for im in record.images):
        record.tasks["objects"] = TaskInfo(kind="instances", classes=[name for name, _ in LABELS])
    return record


def detect(path: str | Path) -> bool:
    """A folder with ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``."""
    folder = Path(path) / "leftImg8bit"
    return folder.is_dir() and next(folder.glob(f"*/*/*{SUFFIX}"), None) is not None


def _gt(root: Path, image: Path, gt: str, kind: str) -> Path:
    """The ground-truth file of ``kind`` that belongs to ``image``."""
    rel = image.relative_to(root / "leftImg8bit")
    return root / gt / rel.parent / rel.name.replace(SUFFIX, f"_{gt}_{kind}.png")


def _image(root: Path, path: Path, gt: str, semantic: str) -> ImageRecord:
    name = path.relative_to(root).as_posix()
    width, height = image_size(path, name, "")
    split, city = path.relative_to(root / "leftImg8bit").parts[:2]
    image = ImageRecord(name, width, height, id=path.name.removesuffix(SUFFIX), meta={"subset": split, "city": city})
    semseg = _gt(root, path, gt, "labelTrainIds" if semantic == "trainIds" else "labelIds")
    if semseg.is_file():
        image.targets["semseg"] = DenseRef(semseg.relative_to(root).as_posix())
    instances = _gt(root, path, gt, "instanceIds")
    if instances.is_file():
        image.targets["objects"] = _instances(instances, (width, height))
    return image


def _instances(path: Path, size: tuple[int, int]) -> list[Annotation]:
    """Decode ``*_instanceIds.png`` into one RLE-masked annotation per instance / crowd region."""
    ids = load_png(path, path, "", ("I;16", "I", "L")).astype(np.int64)
    if (ids.shape[1], ids.shape[0]) != size:
        raise FormatError(path, "", f"is {ids.shape[1]}x{ids.shape[0]}, image is {size[0]}x{size[1]}")
    out = []
    for value in np.unique(ids):
        label, crowd = (int(value) // 1000, False) if value >= 1000 else (int(value), True)
        if label >= len(LABELS):
            raise FormatError(path, f"value {value}", f"label id {label} is not a Cityscapes label (0..33)")
        if crowd and label not in HAS_INSTANCES:
            continue  # stuff: belongs to semseg, not to objects
        rle, box = mask_region(ids == value)  # type: ignore[misc]  # value occurs, so the mask is not empty
        out.append(Annotation(label, box, rle, iscrowd=crowd, attributes={"instance_id": int(value)}))
    return out
