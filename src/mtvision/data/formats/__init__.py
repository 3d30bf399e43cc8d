"""The format registry: every annotation format by name, and detection of a path's format.

``FORMATS`` is a plain dict filled by each format module's ``@register_format`` (see
:mod:`~mtvision.data.formats.registry`) when the explicit imports below run, so it is
complete as soon as this package is imported (no plugin left unregistered until some other module
happens to be imported). Each module has ``read(path, **options) -> DatasetRecord`` and
``detect(path) -> bool``; ``WRITERS`` holds those that also have ``write(record, path)``.

Detection tries the formats in ``DETECTION_ORDER``, most specific first, because several
detectors accept more than their own format:

* ``combined`` before ``coco``: a combined file *is* a COCO file (plus a ``tasks`` block);
* ``cvat``, ``yolo``, ``voc``, ``cityscapes``, ``nyuv2`` (``image/*.npy``), ``nyuv2_mat`` (an
  HDF5 ``.mat``) look for marker files or folders, cheap and unambiguous, so they come before
  ``labelme``, whose folder check walks the tree for a ``.json`` and is the slowest;
* ``pascal_context`` before ``voc``: its root is a VOC-style folder (``JPEGImages/``) whose
  ``ImageSets/Context/`` marks the multi-task layout;
* ``folders`` last: it accepts any folder whose sub-folders hold images, which includes a
  Cityscapes root (``leftImg8bit/``, ``gtFine/``) and a mask-only VOC folder.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ann.json"
    >>> _ = path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    >>> detect_format(path)
    'coco'
    >>> get_format("coco").__name__
    'mtvision.data.formats.coco'
    >>> get_format("kitti")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'kitti'; valid formats: cityscapes, coco, combined, cvat, folders, ..., yolo
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mtvision.data.errors import FormatError
from mtvision.data.formats import (  # noqa: F401
    cityscapes,
    coco,
    combined,
    cvat,
    folders,
    label_studio,
    labelme,
    nyuv2,
    nyuv2_mat,
    pascal_context,
    voc,
    yolo,
)
from mtvision.data.formats.registry import FORMATS

DETECTION_ORDER: tuple[str, ...] = ("combined", "coco", "label_studio", "cvat", "yolo", "pascal_context", "voc",
                                     "cityscapes", "nyuv2", "nyuv2_mat", "labelme", "folders")
WRITERS: dict[str, ModuleType] = {name: module for name, module in FORMATS.items() if hasattr(module, "write")}


def get_format(name: str) -> ModuleType:
    """The module of format ``name``; an unknown name fails with the list of valid ones."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; valid formats: {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


def get_writer(name: str) -> ModuleType:
    """The module of a format that can be written; other names fail with the writable ones."""
    if name not in WRITERS:
        raise ValueError(f"cannot write format {name!r}; writable formats: {', '.join(sorted(WRITERS))}")
    return WRITERS[name]


def detect_format(path: str | Path) -> str:
    """The name of the first format (in ``DETECTION_ORDER``) whose detector accepts ``path``.

    Raises :class:`FormatError` when the path does not exist or no detector accepts it; the
    message lists the formats so the user can pass one explicitly.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "", "no such file or folder")
    for name in DETECTION_ORDER:
        if FORMATS[name].detect(path):
            return name
    raise FormatError(path, "", f"not a dataset of any known format ({', '.join(DETECTION_ORDER)}); "
                                "name the format explicitly if it is one of them")
