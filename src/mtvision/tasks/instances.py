"""The ``instances`` target kind: one image's annotations decoded into :class:`Instances`.

Declared here, beside the detection task that consumes it, so the one place that knows what
an instance target is also knows how to build it: boxes as given; masks rasterised with
pycocotools, only when some annotation has a segmentation (an annotation without one gets
its box as mask); keypoints ``[N, K, 2]`` with COCO visibility, ``v = 0`` for an annotation
that has none.

Example:
    >>> from types import SimpleNamespace as Ann
    >>> a = Ann(category=0, box=(1.0, 1.0, 3.0, 4.0), segmentation=None, keypoints=None, iscrowd=False, attributes={})
    >>> inst = decode_instances([a], TaskInfo(kind="instances", classes=["cup"]), (6, 5))
    >>> inst.boxes.tolist(), inst.masks is None
    ([[1.0, 1.0, 3.0, 4.0]], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor
from torchvision import tv_tensors

from mtvision.structures import Instances, TaskInfo, check_rle, decode_mask
from mtvision.tasks.kinds import target_kind

__all__ = ["decode_instances"]


def decode_instances(annotations: list[Any], info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> Instances:
    """One image's annotations (``data.record.Annotation``) as :class:`Instances` on a canvas of ``size`` (h, w)."""
    n = len(annotations)
    boxes = torch.tensor([a.box for a in annotations], dtype=torch.float32).reshape(n, 4)
    masks = None
    if any(a.segmentation is not None for a in annotations):
        masks = tv_tensors.Mask(torch.from_numpy(np.stack([_rasterise(a, size) for a in annotations])))
    keypoints, visibility = _keypoints(annotations, info, size)
    return Instances(
        boxes=tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
        labels=torch.tensor([a.category for a in annotations], dtype=torch.int64),
        masks=masks,
        keypoints=keypoints,
        visibility=visibility,
        iscrowd=torch.tensor([a.iscrowd for a in annotations], dtype=torch.bool),
        attributes=[dict(a.attributes) for a in annotations],
    )


def _rasterise(annotation: Any, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8 mask; the box when the annotation has no segmentation."""
    h, w = size
    segmentation = annotation.segmentation
    if segmentation is None:
        x1, y1, x2, y2 = annotation.box
        box = np.array([[x1, y1, x2 - x1, y2 - y1]], dtype=np.float64)
        return mask_utils.decode(mask_utils.frPyObjects(box, h, w)[0])
    if isinstance(segmentation, dict):  # pycocotools trusts RLE sizes; a wrong one reads garbage
        segmentation = check_rle(segmentation, h, w)
    return decode_mask(segmentation, h, w)


def _keypoints(annotations: list[Any], info: TaskInfo,
               size: tuple[int, int]) -> tuple[tv_tensors.KeyPoints | None, Tensor | None]:
    """``[N, K, 2]`` points + ``[N, K]`` visibility; an annotation without points gets v = 0."""
    k = len(info.keypoint_names) or max((len(a.keypoints) // 3 for a in annotations if a.keypoints), default=0)
    if k == 0:
        return None, None
    unlabelled = [0.0] * (3 * k)
    rows = [a.keypoints or unlabelled for a in annotations]
    wrong = next((len(row) for row in rows if len(row) != 3 * k), None)
    if wrong is not None:
        raise ValueError(f"an annotation has {wrong} keypoint values, expected {3 * k} ({k} x, y, v triplets)")
    table = torch.tensor(rows, dtype=torch.float32).view(len(rows), k, 3)
    return tv_tensors.KeyPoints(table[..., :2], canvas_size=size), table[..., 2].to(torch.int64)


target_kind("instances", dense=False, decode=decode_instances)
