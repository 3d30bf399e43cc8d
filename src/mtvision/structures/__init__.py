"""The ground floor every layer speaks (DESIGN §2): it imports nothing else of mtvision.

* :mod:`~mtvision.structures.sample` — the sample (:class:`Sample`, :class:`Instances`, :class:`Batch`);
* :mod:`~mtvision.structures.labels` — label spaces (:class:`TaskInfo`, ``TargetKind``);
* :mod:`~mtvision.structures.dense_maps` — :class:`DepthMap` / :class:`NormalMap` and their v2 kernels;
* :mod:`~mtvision.structures.frame` — the image frame (letterbox geometry and its inverse);
* :mod:`~mtvision.structures.masks` — the mask codec (RLE / polygons <-> masks, mask boxes);
* :mod:`~mtvision.structures.vectors` — lengths and unit vectors along one axis.

Example:
    >>> import torch
    >>> mask_to_rle(torch.ones(2, 3).numpy())
    {'size': [2, 3], 'counts': '06'}
"""

from mtvision.structures.dense_maps import DepthMap, NormalMap
from mtvision.structures.frame import (
                                       ImageFrame,
                                       LetterboxGeometry,
                                       fit_size,
                                       letterbox_frame,
                                       letterbox_geometry,
                                       resize_nearest,
)
from mtvision.structures.labels import VOID, TargetKind, TaskInfo
from mtvision.structures.masks import (
                                       Polygons,
                                       Rle,
                                       check_rle,
                                       decode_mask,
                                       mask_bounds,
                                       mask_to_rle,
                                       rle_box,
                                       segmentation_area,
                                       to_coco_rle,
)
from mtvision.structures.sample import Batch, Instances, Sample
from mtvision.structures.vectors import unit_vectors, vector_length

__all__ = ["Batch", "DepthMap", "ImageFrame", "Instances", "LetterboxGeometry", "NormalMap", "Polygons", "Rle",
           "Sample", "TargetKind", "TaskInfo", "check_rle", "decode_mask", "fit_size", "letterbox_frame",
           "letterbox_geometry", "mask_bounds", "mask_to_rle", "resize_nearest", "rle_box", "segmentation_area",
           "to_coco_rle", "unit_vectors", "vector_length", "VOID"]
