"""NYUv2 as MTAN and LibMTL ship it: ``{train,val}/{image,label,depth,normal}/<i>.npy``.

The layout of Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention" (CVPR
2019; github.com/lorenmt/mtan, ``create_dataset.py``), reused unchanged by LibMTL
(``examples/nyu/create_dataset.py``, Lin & Zhang, JMLR 2023) and by Auto-Lambda, Nash-MTL and
FAMO: 795 training and 654 validation images of 288 x 384, every file one ``.npy`` per image
index, stored channels-last (their loader applies ``np.moveaxis(..., -1, 0)``):

* ``image/<i>.npy``  ``[288, 384, 3]`` float in [0, 1];
* ``label/<i>.npy``  ``[288, 384]`` 13 classes (:data:`CLASSES_13`), ``-1`` = not labelled;
* ``depth/<i>.npy``  ``[288, 384, 1]`` metres, ``0`` = no measurement;
* ``normal/<i>.npy`` ``[288, 384, 3]`` unit normals in [-1, 1], the zero vector = none.

Tasks: ``semseg`` (13 classes, void 255), ``depth``, ``normals``. ``read`` takes a split
folder (``nyuv2/train``: what ``data.source`` / ``data.val`` name) or the root holding
``train/`` and ``val/`` (both, ``meta["subset"]`` says which; ``split=`` keeps one).

Images and labels are converted once into the cache (see :mod:`._derived`): a float image
becomes an 8-bit PNG (within 0.5/255 of the stored value) because the image loader decodes
image files, and each label map is checked against the 13 classes and written as an index PNG
with ``-1`` -> 255, the project's void. Depth and normal ``.npy`` files are referenced as they
are: the dense decoders read channels-last arrays. A missing label, depth or normal file
leaves that image unlabelled for the task (partial labels); a map without an image is an error.

Example:
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> for sub in ("image", "label"): (root / "train" / sub).mkdir(parents=True)
    >>> np.save(root / "train/image/0.npy", np.zeros((4, 6, 3), np.float32))
    >>> np.save(root / "train/label/0.npy", np.full((4, 6), -1.0, np.float32))
    >>> record = read(root / "train")
    >>> record.images[0].file_name, record.images[0].targets["semseg"].path, len(record.tasks["semseg"].classes)
    ('.mtvision/image/0.png', '.mtvision/label/0.png', 13)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtvision.data.errors import FormatError
from mtvision.data.formats._derived import Cache, check_labels, to_uint8_image
from mtvision.data.formats._files import image_size
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

SPLITS = ("train", "val")
#: The 13 classes of Couprie et al. (ICLR 2013) as MTAN's ``label`` arrays number them 0..12
#: (names from ankurhanda/nyuv2-meta-data, whose class13Mapping.mat maps the 40 classes to them).
CLASSES_13 = ["bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table",
              "tv", "wall", "window"]
VOID = 255


@register_format("nyuv2")
def read(path: str | Path, *, split: str | None = None, cache: str | Path | None = None) -> DatasetRecord:
    """Read a split folder (``nyuv2/train``) or the root holding ``train/`` and ``val/``."""
    root = Path(path)
    if _is_split(root):
        if split is not None:
            raise FormatError(root, "split", f"{root} is already one split folder; split={split!r} applies to "
                                             "the root holding train/ and val/")
        folders = [("", root)]
    else:
        names = [s for s in SPLITS if _is_split(root / s)] if split is None else [split]
        if not names or not all(_is_split(root / s) for s in names):
            raise FormatError(root, "", f"not an NYUv2 (MTAN/LibMTL) folder: expected image/<i>.npy in "
                                        f"{root} or in its {' / '.join(names or SPLITS)} sub-folder(s)")
        folders = [(s, root / s) for s in names]
    record = DatasetRecord(root=root)
    store = Cache(root, cache, "cache")
    for subset, folder in folders:
        stems = _stems(folder / "image")
        _refuse_orphans(folder, set(stems))
        for stem in stems:
            record.images.append(_image(record.root, folder, subset, stem, store))
    record.tasks = {"semseg": TaskInfo(kind="semantic", classes=list(CLASSES_13), ignore_index=VOID),
                    "depth": TaskInfo(kind="depth"), "normals": TaskInfo(kind="normals")}
    return record


def detect(path: str | Path) -> bool:
    """A folder with ``image/*.npy``, or whose ``train/`` or ``val/`` has one."""
    p = Path(path)
    return p.is_dir() and (_is_split(p) or any(_is_split(p / s) for s in SPLITS))


def _is_split(folder: Path) -> bool:
    return (folder / "image").is_dir() and next((folder / "image").glob("*.npy"), None) is not None


def _stems(folder: Path) -> list[str]:
    """File stems in numeric order (0, 1, 2, ..., 10), the order of MTAN's index."""
    stems = [f.stem for f in folder.glob("*.npy") if not f.name.startswith(".")]
    return sorted(stems, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def _image(root: Path, folder: Path, subset: str, stem: str, store: Cache) -> ImageRecord:
    """One image: its PNG in the cache, and whichever of label / depth / normal exists."""
    prefix = f"{subset}/" if subset else ""
    source = folder / "image" / f"{stem}.npy"
    png = f"{prefix}image/{stem}.png"
    if store.fresh(png, [source]):
        name = store.ref(png)
        width, height = image_size(store.path(png), source, "")
    else:
        pixels = to_uint8_image(_load(source), source)
        height, width = pixels.shape[:2]
        name = store.rgb_png(png, pixels, [source])
    image = ImageRecord(name.as_posix(), width, height, id=f"{prefix}{stem}" if subset else int_or_str(stem),
                        meta={"subset": subset} if subset else {})
    label = folder / "label" / f"{stem}.npy"
    if label.is_file():
        image.targets["semseg"] = DenseRef(_label_png(store, label, f"{prefix}label/{stem}.png", (height, width)))
    for task, sub, channels in (("depth", "depth", 1), ("normals", "normal", 3)):
        file = folder / sub / f"{stem}.npy"
        if file.is_file():
            _check_shape(file, channels, (height, width))
            image.targets[task] = DenseRef(file.relative_to(root).as_posix())
    return image


def _label_png(store: Cache, label: Path, relative: str, size: tuple[int, int]) -> str:
    """The label map, checked against the 13 classes, as an index PNG with -1 -> 255."""
    if not store.fresh(relative, [label]):
        values = check_labels(_load(label), len(CLASSES_13), [-1], label, "")
        values = values.squeeze(-1) if values.ndim == 3 and values.shape[-1] == 1 else values
        if values.shape != size:
            raise FormatError(label, "", f"label map is {values.shape}, its image is {size}")
        store.index_png(relative, np.where(values < 0, VOID, values), [label])
    return store.ref(relative).as_posix()


def _check_shape(file: Path, channels: int, size: tuple[int, int]) -> None:
    """The array header only (memory-mapped): ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` of its image."""
    try:
        shape = np.load(file, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise FormatError(file, "", f"cannot read .npy: {exc}") from None
    accepted = {(*size, channels), (channels, *size)} | ({size} if channels == 1 else set())
    if tuple(shape) not in accepted:
        raise FormatError(file, "", f"shape {tuple(shape)}, expected {channels} channel(s) of the image's {size}")


def _refuse_orphans(folder: Path, stems: set[str]) -> None:
    """A label, depth or normal file whose image is missing: a broken copy, not a partial label."""
    for sub in ("label", "depth", "normal"):
        for file in sorted((folder / sub).glob("*.npy")) if (folder / sub).is_dir() else []:
            if file.stem not in stems:
                raise FormatError(file, "", f"{sub} map without an image (expected {folder / 'image' / file.name})")


def _load(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FormatError(file, "", f"cannot read .npy: {exc}") from None


def int_or_str(stem: str) -> int | str:
    """MTAN's integer index as the image id, a stem that is not a number as itself."""
    return int(stem) if stem.isdigit() else stem
