"""The official labelled NYU Depth v2: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5).

Silberman, Hoiem, Kohli & Fergus, "Indoor Segmentation and Support Inference from RGBD
Images", ECCV 2012 (cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html). The file holds 1449
images of 480 x 640; MATLAB writes arrays column-major, so HDF5 shows each transposed:

* ``images``  ``[1449, 3, 640, 480]`` uint8 RGB;
* ``depths``  ``[1449, 640, 480]`` float metres (in-painted);
* ``labels``  ``[1449, 640, 480]`` the 894 object classes, ``0`` = unlabelled.

Class sets (``classes=``): 40 (Gupta, Arbelaez & Malik, CVPR 2013) or 13 (Couprie et al.,
ICLR 2013). The 894 -> 40 table is *read* from ``classMapping40.mat`` (field ``mapClass``, 894
values; distributed with Gupta et al.'s code and in github.com/ankurhanda/nyuv2-meta-data),
because 894 numbers cannot be checked here against their source; 40 -> 13 is carried in
:data:`MAP_40_TO_13` (``class13Mapping.mat`` of the same repository, as used by e.g. MTAN's
preprocessing). Unlabelled pixels become void (255); ``k`` becomes class ``k - 1``.

Split (``split=``): ``splits.mat`` of the toolbox, ``trainNdxs`` (795) and ``testNdxs`` (654),
1-based; ``"val"`` and ``"test"`` both mean the 654, which LibMTL/MTAN call ``val``.
``mapping=`` and ``splits=`` default to files of those names beside the ``.mat``.

Images, labels and depth are extracted once into the cache (``<folder>/.mtvision/<stem>/``,
see :mod:`._derived`): one 2.8 GB HDF5 file cannot be decoded one image at a time by the
image loader. Image ``i`` (1-based, as in ``splits.mat``) is ``image/0001.png``; the record's
ids are these indices. Tasks: ``semseg`` and ``depth`` (the file has no normals).

Example:
    >>> MAP_40_TO_13[[1, 2, 22, 40]].tolist()  # wall, floor, ceiling, otherprop
    [12, 5, 3, 7]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from mtvision.data.errors import FormatError
from mtvision.data.formats._derived import Cache, check_labels
from mtvision.data.formats._files import image_size
from mtvision.data.formats.nyuv2 import CLASSES_13, VOID
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

#: NYU40 names by class 1..40 (Gupta et al. 2013; ``className`` of classMapping40.mat).
CLASSES_40 = ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
              "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
              "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
              "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
              "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop"]
#: NYU40 class (index 0..40, 0 = unlabelled) -> NYU13 class (1..13, 0 = unlabelled).
MAP_40_TO_13 = np.array([0, 12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5, 7, 3, 2, 6, 11,
                         7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7])
RAW_CLASSES = 894
FIELDS = ("images", "depths", "labels")
SPLIT_KEYS = {"train": "trainNdxs", "val": "testNdxs", "test": "testNdxs"}


@register_format("nyuv2_mat")
def read(path: str | Path, *, split: str | None = None, classes: int = 13, mapping: str | Path | None = None,
         splits: str | Path | None = None, cache: str | Path | None = None) -> DatasetRecord:
    """Read ``nyu_depth_v2_labeled.mat``: one split (or all 1449 images) with 13 or 40 classes."""
    path = Path(path)
    if classes not in (13, 40):
        raise FormatError(path, "classes", f"must be 13 or 40, got {classes!r}")
    lookup, mapping_file = _lookup(path, classes, mapping)
    indices, subsets = _split(path, split, splits)
    record = DatasetRecord(root=path.parent)
    store = Cache(path.parent, cache if cache is not None else path.parent / ".mtvision" / path.stem, "cache")
    with _open(path) as data:
        count = len(data["labels"])
        if wrong := [i for i in indices if not 1 <= i <= count]:
            raise FormatError(splits or path.with_name("splits.mat"), "", f"image indices {wrong[:5]} outside "
                                                                          f"1..{count} of {path.name}")
        for index in indices or range(1, count + 1):
            record.images.append(_image(data, path, index, lookup, classes, mapping_file, store, subsets))
    names = CLASSES_13 if classes == 13 else CLASSES_40
    record.tasks = {"semseg": TaskInfo(kind="semantic", classes=list(names), ignore_index=VOID),
                    "depth": TaskInfo(kind="depth")}
    return record


def detect(path: str | Path) -> bool:
    """A ``.mat`` file that is HDF5 (MATLAB v7.3 puts the HDF5 signature after a 512-byte header)."""
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".mat"):
        return False
    with open(p, "rb") as f:
        head = f.read(520)
    return b"\x89HDF\r\n\x1a\n" in (head[:8], head[512:520])


def _open(path: Path):  # noqa: ANN202 - h5py.File, imported lazily
    """The HDF5 file with its three fields checked; an unreadable file names the fix."""
    try:
        import h5py
    except ImportError as exc:  # an install without the dependency
        raise FormatError(path, "", "reading MATLAB v7.3 files needs h5py: pip install h5py") from exc
    try:
        data = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, "", f"cannot read as HDF5 / MATLAB v7.3 ({exc}); expected the labelled NYUv2 "
                                    "file nyu_depth_v2_labeled.mat") from None
    if missing := [f for f in FIELDS if f not in data]:
        data.close()
        raise FormatError(path, "", f"missing field(s) {missing}; it has {sorted(data)[:10]}, expected {list(FIELDS)}")
    return data


def _lookup(path: Path, classes: int, mapping: str | Path | None) -> tuple[np.ndarray, Path]:
    """Raw 894-class label -> 0-based class of the chosen set, ``VOID`` for unlabelled."""
    file = Path(mapping) if mapping is not None else path.with_name("classMapping40.mat")
    if not file.is_file():
        raise FormatError(file, "", "the 894 -> 40 class table is missing; put classMapping40.mat (from "
                                    "github.com/ankurhanda/nyuv2-meta-data) beside the .mat or pass mapping=<file>")
    try:
        table = np.asarray(loadmat(file)["mapClass"]).ravel()
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, NotImplementedError) as exc:
        raise FormatError(file, "mapClass", f"cannot read the 894 -> 40 table: {exc}") from None
    if len(table) != RAW_CLASSES:
        raise FormatError(file, "mapClass", f"{len(table)} entries, expected {RAW_CLASSES}")
    to40 = np.concatenate([[0], check_labels(table, 41, [], file, "mapClass")])
    target = MAP_40_TO_13[to40] if classes == 13 else to40
    return np.where(target == 0, VOID, target - 1).astype(np.uint8), file


def _split(path: Path, split: str | None, splits: str | Path | None) -> tuple[list[int], dict[int, str]]:
    """1-based indices of ``split`` (empty = every image) and each index's subset when known."""
    file = Path(splits) if splits is not None else path.with_name("splits.mat")
    if split is not None and split not in SPLIT_KEYS:
        raise FormatError(path, "split", f"must be one of {sorted(SPLIT_KEYS)} or None, got {split!r}")
    if not file.is_file():
        if split is not None:
            raise FormatError(file, "", "the 795/654 split file is missing; put splits.mat (trainNdxs, testNdxs) "
                                        "beside the .mat or pass splits=<file>")
        return [], {}
    try:
        content = loadmat(file)
        sets = {name: [int(i) for i in np.asarray(content[SPLIT_KEYS[name]]).ravel()] for name in ("train", "val")}
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, NotImplementedError) as exc:
        raise FormatError(file, "", f"cannot read trainNdxs / testNdxs: {exc}") from None
    subsets = {i: name for name, ids in sets.items() for i in ids}
    return (sets["val" if split == "test" else split] if split else []), subsets


def _image(data, path: Path, index: int, lookup: np.ndarray, classes: int, mapping: Path,  # noqa: ANN001
           store: Cache, subsets: dict[int, str]) -> ImageRecord:
    """Image ``index`` (1-based): its PNG, label PNG and depth ``.npy``, extracted once."""
    stem = f"{index:04d}"
    png, label, depth = f"image/{stem}.png", f"label{classes}/{stem}.png", f"depth/{stem}.npy"
    i = index - 1
    if store.fresh(png, [path]):
        width, height = image_size(store.path(png), path, f"images[{i}]")
    else:
        pixels = np.asarray(data["images"][i]).transpose(2, 1, 0)  # [3, W, H] -> [H, W, 3]
        height, width = pixels.shape[:2]
        store.rgb_png(png, pixels, [path])
    if not store.fresh(label, [path, mapping]):
        raw = check_labels(np.asarray(data["labels"][i]).T, RAW_CLASSES + 1, [], path, f"labels[{i}]")
        store.index_png(label, lookup[raw], [path, mapping])
    if not store.fresh(depth, [path]):
        store.npy(depth, np.asarray(data["depths"][i], dtype=np.float32).T.copy(), [path])
    targets = {"semseg": DenseRef(store.ref(label).as_posix()), "depth": DenseRef(store.ref(depth).as_posix())}
    meta = {"subset": subsets[index]} if index in subsets else {}
    return ImageRecord(store.ref(png).as_posix(), width, height, id=index, targets=targets, meta=meta)
