"""The ground floor every layer speaks (DESIGN §2): it imports nothing else of mtvision.

* :mod:`~mtvision.structures.sample` — the sample (:class:`Sample`, :class:`Instances`, :class:`Batch`,
  ``mask_bounds``);
* :mod:`~mtvision.structures.labels` — label spaces (:class:`TaskInfo`, ``TargetKind``);
* :mod:`~mtvision.structures.dense_maps` — :class:`DepthMap` / :class:`NormalMap` and their v2 kernels;
* :mod:`~mtvision.structures.frame` — the image frame (letterbox geometry and its inverse);
* :mod:`~mtvision.structures.masks` — the mask codec (RLE / polygons <-> masks, RLE boxes);
* :mod:`~mtvision.structures.vectors` — lengths and unit vectors along one axis.

Names are imported on first use (PEP 562 module ``__getattr__``, the pattern of Scientific
Python's SPEC 1): ``labels``, ``masks`` and ``registry`` need no torch, so the data commands,
which only read and write annotation files, start without importing torch and torchvision
(seconds on a CPU machine; ``benchmarks/cli_startup.py``).

Example:
    >>> import torch
    >>> from mtvision.structures import mask_to_rle  # loads structures.masks now
    >>> mask_to_rle(torch.ones(2, 3).numpy())
    {'size': [2, 3], 'counts': '06'}
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module defining it
_HOMES = {
    **dict.fromkeys(["DepthMap", "NormalMap"], "dense_maps"),
    **dict.fromkeys(["ImageFrame", "LetterboxGeometry", "fit_size", "letterbox_frame", "letterbox_geometry",
                     "resize_nearest"], "frame"),
    **dict.fromkeys(["MAP_FILE_KINDS", "VOID", "TargetKind", "TaskInfo", "dense_kinds", "kind_names"], "labels"),
    **dict.fromkeys(["Polygons", "Rle", "check_rle", "decode_mask", "mask_to_rle", "rle_box", "segmentation_area",
                     "to_coco_rle"], "masks"),
    **dict.fromkeys(["Batch", "Instances", "Sample", "mask_bounds"], "sample"),
    **dict.fromkeys(["unit_vectors", "vector_length"], "vectors"),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access, and keep the name here."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
