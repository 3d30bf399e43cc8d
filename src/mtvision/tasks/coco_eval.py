"""COCO-style AP for boxes, masks and keypoints, computed by faster-coco-eval.

faster-coco-eval is a C++ re-implementation of pycocotools' ``COCOeval`` that returns
the same numbers (tested against pycocotools in ``tests/tasks/test_coco_eval.py``) several
times faster, so validation stays cheap. This module only turns ground truth and results
(in COCO's dict/list form) into the metric dictionary mtvision reports.

Keypoint OKS needs one sigma per keypoint: the dataset's (``TaskInfo.keypoint_sigmas``),
COCO's 17 person sigmas when there are 17 keypoints, else ``1 / K`` for each keypoint
(ultralytics' convention for custom keypoint sets).

Example:
    >>> gt = {"images": [{"id": 1, "width": 10, "height": 10}],
    ...       "categories": [{"id": 1, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4],
    ...                        "area": 16, "iscrowd": 0}]}
    >>> res = [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}]
    >>> coco_metrics(gt, res, "bbox")["ap50"]
    1.0
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any, Literal

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

IouType = Literal["bbox", "segm", "keypoints"]

# Per-keypoint OKS sigmas of the 17 COCO person keypoints (Lin et al. 2014; cocodataset.org).
COCO_PERSON_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                      0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]

# faster-coco-eval's stat labels -> mtvision metric names (suffixes after the iou type).
_NAMES = {"AP_all": "ap", "AP_50": "ap50", "AP_75": "ap75", "AP_small": "ap_small",
          "AP_medium": "ap_medium", "AP_large": "ap_large", "AR_third": "ar100", "AR_all": "ar"}


def default_sigmas(num_keypoints: int, sigmas: list[float] | None = None) -> list[float]:
    """The OKS sigmas to use: given ones, COCO's for 17 keypoints, else 1/K each."""
    if sigmas:
        return list(sigmas)
    return list(COCO_PERSON_SIGMAS) if num_keypoints == 17 else [1.0 / num_keypoints] * num_keypoints


def coco_metrics(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: IouType,
                 sigmas: list[float] | None = None) -> dict[str, float]:
    """AP/AR metrics of ``results`` against the COCO-format ground truth ``gt``.

    Returns keys ``ap, ap50, ap75, ap_small, ap_medium, ap_large`` (keypoints: no small),
    and ``ar100`` / ``ar``; -1 where COCO has nothing to average (no ground truth in a
    size range), as pycocotools does. No result at all gives 0 AP.
    """
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_gt = COCO(copy.deepcopy(gt))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        kwargs: dict[str, Any] = {}
        if iou_type == "keypoints":
            kwargs["kpt_oks_sigmas"] = np.asarray(default_sigmas(_num_keypoints(gt), sigmas))
        evaluator = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a: None, **kwargs)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats_as_dict
    return {name: float(stats[label]) for label, name in _NAMES.items() if label in stats}


def _num_keypoints(gt: dict[str, Any]) -> int:
    for category in gt.get("categories", []):
        if category.get("keypoints"):
            return len(category["keypoints"])
    for ann in gt.get("annotations", []):
        if ann.get("keypoints"):
            return len(ann["keypoints"]) // 3
    raise ValueError("keypoint evaluation needs keypoints in the ground truth")
