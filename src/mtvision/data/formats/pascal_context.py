"""PASCAL-Context multi-task, the layout of Vandenhende et al. (``PASCAL_MT``).

Vandenhende, Georgoulis, Van Gansbeke, Proesmans, Dai & Van Gool, "Multi-Task Learning for Dense
Prediction Tasks: A Survey", TPAMI 2021 (github.com/SimonVandenhende/Multi-Task-Learning-PyTorch,
``data/pascal_context.py``, itself from ASTMT, Maninis et al. CVPR 2019). Under the root:

* ``JPEGImages/<id>.jpg``; ``ImageSets/Context/{train,val}.txt`` (4998 / 5105 ids);
* ``pascal-context/trainval/<id>.mat`` (or ``pascal-context/<id>.mat``): ``LabelMap``, the 459
  raw classes, from which ``semseg`` (21 or 59 classes, :mod:`.pascal_context_classes`) and
  ``edges`` are derived;
* ``human_parts/<id>.mat``: ``anno.objects`` (``class_ind``, ``mask``, ``parts`` with
  ``part_name`` / ``mask``) -> ``parts``: the parts of every person (class 15) in 6 groups + background.
  An image without an annotated person is *unlabelled* for ``parts`` (their loader marks it all
  void and their evaluation skips it);
* ``sal_distill/<id>.png`` -> ``sal``, salient where the grey value / 255 > 0.5;
* ``normals_distill/<id>.png`` -> ``normals``, ``2 v / 255 - 1``, kept only on the raw classes of
  :data:`~.pascal_context_classes.NORMALS_IDS` (zero = no normal elsewhere); needs the ``LabelMap``.

Edges "as they define" (``_load_edge``): the pixels where ``cv2.Laplacian`` of the ``LabelMap``
(3 x 3 kernel ``[[0,1,0],[1,-4,1],[0,1,0]]``, mirrored border without repeating the edge pixel)
is non-zero, thinned to one pixel (Guo-Hall, ``skimage.morphology.thin``; here
:func:`mtvision.tasks.edge_bsds.thin_edges`, pixel for pixel the same).

``semantic=``: ``"voc21"`` (their default task: 20 VOC objects + background) or ``"context59"``
derive from the ``LabelMap``; ``"png"`` takes their ``semseg/VOC12/<id>.png`` (else
``semseg/pascal-context/<id>.png``) as given, 21 classes, 255 void -- what their loader reads.
Derived maps go to the cache (:mod:`._derived`). A missing file of one modality leaves that image
unlabelled for that task; a raw label outside 0..459 or an unknown part name is an error.

Example:
    >>> import numpy as np
    >>> label_edges(np.array([[1, 1, 1, 2, 2, 2]] * 5)).astype(int)[2].tolist()  # 2 px wide, thinned to 1
    [0, 0, 1, 0, 0, 0]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.io import loadmat

from mtvision.data.errors import FormatError
from mtvision.data.formats._derived import Cache, check_labels
from mtvision.data.formats._files import PIL_ERRORS, image_size, read_text
from mtvision.data.formats.pascal_context_classes import (
    CONTEXT59_IDS,
    CONTEXT59_NAMES,
    HUMAN_PARTS_6,
    NORMALS_IDS,
    PART_NAMES_6,
    PERSON,
    RAW_CLASSES,
    VOC21_IDS,
    VOC21_NAMES,
)
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo

SPLITS = ("train", "val")
VOID = 255
SEMANTIC = ("voc21", "context59", "png")


@register_format("pascal_context")
def read(path: str | Path, *, split: str | None = None, semantic: str = "voc21",
         cache: str | Path | None = None) -> DatasetRecord:
    """Read a ``PASCAL_MT`` root: one split of ``ImageSets/Context`` or both."""
    root = Path(path)
    if not detect(root):
        raise FormatError(root, "", "not a PASCAL-Context multi-task root: expected JPEGImages/ and "
                                    "ImageSets/Context/{train,val}.txt")
    if semantic not in SEMANTIC:
        raise FormatError(root, "semantic", f"must be one of {SEMANTIC}, got {semantic!r}")
    if split is not None and split not in SPLITS:
        raise FormatError(root, "split", f"must be one of {SPLITS} or None, got {split!r}")
    lookup = _semantic_lookup(semantic)
    record, store = DatasetRecord(root=root), Cache(root, cache, "cache")
    for subset in [split] if split else [s for s in SPLITS if _split_file(root, s).is_file()]:
        for line, image_id in _ids(_split_file(root, subset)):
            record.images.append(_image(root, image_id, subset, f"line {line}", semantic, lookup, store))
    classes = CONTEXT59_NAMES if semantic == "context59" else VOC21_NAMES
    record.tasks = {"semseg": TaskInfo(kind="semantic", classes=list(classes), ignore_index=VOID),
                    "parts": TaskInfo(kind="semantic", classes=list(PART_NAMES_6), ignore_index=VOID),
                    "sal": TaskInfo(kind="edges"), "normals": TaskInfo(kind="normals"), "edges": TaskInfo(kind="edges")}
    return record


def detect(path: str | Path) -> bool:
    """A folder with ``JPEGImages/`` and ``ImageSets/Context/`` (the multi-task split lists)."""
    p = Path(path)
    return (p / "JPEGImages").is_dir() and (p / "ImageSets" / "Context").is_dir()


def label_edges(label_map: np.ndarray) -> np.ndarray:
    """Vandenhende's edge map of a label map: thinned non-zero 4-neighbour Laplacian (see module doc)."""
    # imported here: the package ``mtvision.tasks`` imports every task module and torch, which the
    # data commands that only list or check formats should not wait for
    from mtvision.tasks.edge_bsds import thin_edges

    padded = np.pad(label_map.astype(np.float64), 1, mode="reflect")  # numpy "reflect" = OpenCV REFLECT_101
    laplacian = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * padded[1:-1, 1:-1]
    return thin_edges(laplacian != 0)


def _split_file(root: Path, split: str) -> Path:
    return root / "ImageSets" / "Context" / f"{split}.txt"


def _ids(file: Path) -> list[tuple[int, str]]:
    if not file.is_file():
        raise FormatError(file, "", "split list not found")
    return [(n, line.strip()) for n, line in enumerate(read_text(file).splitlines(), 1) if line.strip()]


def _semantic_lookup(semantic: str) -> np.ndarray:
    """Raw id (0..459) -> class of the chosen set (``VOID`` where not scored)."""
    if semantic == "voc21":
        lookup = np.zeros(RAW_CLASSES + 1, np.uint8)  # not a VOC object: background
        lookup[VOC21_IDS] = np.arange(len(VOC21_IDS))
    else:
        lookup = np.full(RAW_CLASSES + 1, VOID, np.uint8)
        lookup[CONTEXT59_IDS] = np.arange(len(CONTEXT59_IDS))
    return lookup


def _image(root: Path, image_id: str, subset: str, line: str, semantic: str, lookup: np.ndarray,
           store: Cache) -> ImageRecord:
    """One image and whichever of its five targets exist."""
    jpeg = root / "JPEGImages" / f"{image_id}.jpg"
    if not jpeg.is_file():
        raise FormatError(_split_file(root, subset), line, f"image {jpeg} not found")
    width, height = image_size(jpeg, jpeg, "")
    image = ImageRecord(f"JPEGImages/{image_id}.jpg", width, height, id=image_id, meta={"subset": subset})
    maps = _LazyLabelMap(_label_file(root, image_id), (height, width))
    if semantic == "png":
        png = next((p for p in (root / "semseg" / "VOC12" / f"{image_id}.png",
                                root / "semseg" / "pascal-context" / f"{image_id}.png") if p.is_file()), None)
        if png is not None:
            image.targets["semseg"] = DenseRef(png.relative_to(root).as_posix())
    elif maps.file is not None:
        name = f"semseg_{semantic}/{image_id}.png"
        image.targets["semseg"] = DenseRef(_cached(store, name, [maps.file], lambda: lookup[maps.get()], "index"))
    if maps.file is not None:
        edges = f"edges/{image_id}.png"
        image.targets["edges"] = DenseRef(_cached(store, edges, [maps.file], lambda: label_edges(maps.get()), "index"))
    _parts(root, image, store)
    _saliency(root, image, store)
    _normals(root, image, maps, store)
    return image


def _cached(store: Cache, relative: str, sources: list[Path], make: Any, kind: str) -> str:
    """The cached derived map, computed by ``make()`` only when missing or stale."""
    if not store.fresh(relative, sources):
        {"index": store.index_png, "npy": store.npy}[kind](relative, make(), sources)
    return store.ref(relative).as_posix()


class _LazyLabelMap:
    """The image's raw ``LabelMap``, loaded at most once and only if a derived map is stale."""

    def __init__(self, file: Path | None, size: tuple[int, int]) -> None:
        self.file, self.size, self._array = file, size, None

    def get(self) -> np.ndarray:
        if self._array is None:
            assert self.file is not None
            raw = _field(_loadmat(self.file), "LabelMap", self.file)
            self._array = check_labels(raw, RAW_CLASSES + 1, [], self.file, "LabelMap")
            if self._array.shape != self.size:
                raise FormatError(self.file, "LabelMap", f"is {self._array.shape}, its image is {self.size}")
        return self._array


def _label_file(root: Path, image_id: str) -> Path | None:
    candidates = (root / "pascal-context" / "trainval" / f"{image_id}.mat", root / "pascal-context" / f"{image_id}.mat")
    return next((p for p in candidates if p.is_file()), None)


def _parts(root: Path, image: ImageRecord, store: Cache) -> None:
    """``parts`` when the image has a person with annotated parts; absent otherwise."""
    file = root / "human_parts" / f"{image.id}.mat"
    relative = f"parts/{image.id}.png"
    if not file.is_file():
        return
    if store.fresh(relative, [file]):
        image.targets["parts"] = DenseRef(store.ref(relative).as_posix())
        return
    target = _part_map(file, (image.height, image.width))
    if target is not None:
        image.targets["parts"] = DenseRef(store.index_png(relative, target, [file]).as_posix())


def _part_map(file: Path, size: tuple[int, int]) -> np.ndarray | None:
    """Background 0, each person's parts by :data:`HUMAN_PARTS_6`; ``None`` without a person's parts."""
    anno = _field(_loadmat(file), "anno", file)
    try:
        objects = np.asarray(anno[0, 0]["objects"]).ravel()
        target = None
        for n, obj in enumerate(objects):
            parts = np.asarray(obj["parts"]).ravel()
            if int(np.asarray(obj["class_ind"]).ravel()[0]) != PERSON or parts.size == 0 or parts.dtype.names is None:
                continue
            target = np.zeros(size, np.uint8) if target is None else target
            for part in parts:
                name = str(np.asarray(part["part_name"]).ravel()[0])
                if name not in HUMAN_PARTS_6:
                    raise FormatError(file, f"anno.objects[{n}]", f"unknown person part {name!r}; "
                                                                  f"known: {sorted(HUMAN_PARTS_6)}")
                mask = np.asarray(part["mask"]).astype(bool)
                if mask.shape != size:
                    raise FormatError(file, f"anno.objects[{n}] part {name}", f"mask is {mask.shape}, image {size}")
                target[mask] = HUMAN_PARTS_6[name]
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise FormatError(file, "anno", f"not a PASCAL-Part annotation struct ({exc})") from None
    return target


def _saliency(root: Path, image: ImageRecord, store: Cache) -> None:
    file = root / "sal_distill" / f"{image.id}.png"
    if file.is_file():
        image.targets["sal"] = DenseRef(_cached(store, f"sal/{image.id}.png", [file],
                                                lambda: (_grey(file, image) / 255.0 > 0.5).astype(np.uint8), "index"))


def _normals(root: Path, image: ImageRecord, maps: _LazyLabelMap, store: Cache) -> None:
    file = root / "normals_distill" / f"{image.id}.png"
    if not file.is_file() or maps.file is None:
        return

    def make() -> np.ndarray:
        rgb = _png(file, image, "RGB").astype(np.float32)
        keep = np.isin(maps.get(), list(NORMALS_IDS))
        return np.where(keep[..., None], 2.0 * rgb / 255.0 - 1.0, 0.0).astype(np.float32)

    image.targets["normals"] = DenseRef(_cached(store, f"normals/{image.id}.npy", [file, maps.file], make, "npy"))


def _grey(file: Path, image: ImageRecord) -> np.ndarray:
    return _png(file, image, "L").astype(np.float32)


def _png(file: Path, image: ImageRecord, mode: str) -> np.ndarray:
    try:
        with Image.open(file) as im:
            array = np.asarray(im.convert(mode))
    except PIL_ERRORS as exc:
        raise FormatError(file, "", f"cannot read PNG: {exc}") from None
    if array.shape[:2] != (image.height, image.width):
        raise FormatError(file, "", f"is {array.shape[1]}x{array.shape[0]}, its image {image.width}x{image.height}")
    return array


def _loadmat(file: Path) -> dict[str, Any]:
    try:
        return loadmat(file)
    except (OSError, ValueError, TypeError, IndexError, EOFError, NotImplementedError) as exc:  # scipy: garbage
        raise FormatError(file, "", f"cannot read MATLAB file: {exc}") from None


def _field(content: dict[str, Any], name: str, file: Path) -> Any:
    if name not in content:
        fields = sorted(k for k in content if not k.startswith("__"))
        raise FormatError(file, "", f"missing field {name!r}; it has {fields}")
    return content[name]
