"""COCO AP of a detection task over a whole split, exact across DDP ranks.

Each image's ground truth and detections are kept in COCO's own form (XYWH boxes, RLE
masks, flat keypoints); image ids are assigned only at :meth:`compute`, so metrics merged
from several ranks never collide. The AP itself comes from :func:`coco_metrics`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtvision.structures import Instances, TaskInfo, mask_to_rle
from mtvision.tasks.base import Metric
from mtvision.tasks.coco_eval import coco_metrics

_PREFIX = {"bbox": "bbox", "segm": "segm", "keypoints": "kpt"}
# The per-size APs stay out of the run tables: they are -1 whenever a split has no object
# of that size (every object of a small image is "small"); `mtvision eval-coco` shows them.
_REPORTED = ("ap", "ap50", "ap75")


class DetectionMetric(Metric):
    """bbox AP (+ mask AP, + keypoint AP with OKS) in COCO's definition."""

    def __init__(self, info: TaskInfo, masks: bool, keypoints: bool) -> None:
        super().__init__()
        self.info = info
        self.iou_types = ["bbox"] + (["segm"] if masks else []) + (["keypoints"] if keypoints else [])
        self.images: list[dict[str, Any]] = []  # per image: size, gt annotations, detections

    def update(self, prediction: list[dict[str, Tensor]], target: list[Instances]) -> None:
        for detections, instances in zip(prediction, target):
            size = tuple(instances.boxes.canvas_size)
            self.images.append({"size": size, "gt": _ground_truth(instances), "dt": _results(detections)})

    def merge(self, other: Metric) -> None:
        super().merge(other)
        self.images.extend(getattr(other, "images", []))

    def compute(self) -> dict[str, float]:
        if not self.images:  # nothing measured: undefined (NaN), as every task's metric reports it
            return {f"{_PREFIX[t]}_{k}": math.nan for t in self.iou_types for k in _REPORTED}
        gt, results = self._coco()
        metrics = {}
        for iou_type in self.iou_types:
            scores = coco_metrics(gt, results, iou_type, self.info.keypoint_sigmas or None)
            metrics.update({f"{_PREFIX[iou_type]}_{k}": scores[k] for k in _REPORTED})
        return metrics

    def _coco(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        images, annotations, results = [], [], []
        for image_id, record in enumerate(self.images, start=1):
            h, w = record["size"]
            images.append({"id": image_id, "height": h, "width": w})
            annotations += [{**a, "id": len(annotations) + i + 1, "image_id": image_id}
                            for i, a in enumerate(record["gt"])]
            results += [{**d, "image_id": image_id} for d in record["dt"]]
        categories = [{"id": i + 1, "name": name, "keypoints": self.info.keypoint_names,
                       "skeleton": [[a + 1, b + 1] for a, b in self.info.skeleton]}
                      for i, name in enumerate(self.info.classes)]
        return {"images": images, "annotations": annotations, "categories": categories}, results


def _xywh(boxes: Tensor) -> np.ndarray:
    b = boxes.as_subclass(Tensor).detach().cpu().double().numpy().reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def _rle(mask: Tensor) -> dict[str, Any]:
    return mask_to_rle(mask.detach().cpu().numpy())


def _flat_keypoints(xy: Tensor, third: Tensor) -> list[float]:
    return torch.cat([xy.detach().cpu().double(), third.detach().cpu().double().unsqueeze(-1)], -1).flatten().tolist()


def _ground_truth(instances: Instances) -> list[dict[str, Any]]:
    boxes = _xywh(instances.boxes)
    out = []
    for i in range(len(instances)):
        ann = {"category_id": int(instances.labels[i]) + 1, "bbox": boxes[i].tolist(),
               "iscrowd": int(instances.iscrowd[i]), "area": float(boxes[i, 2] * boxes[i, 3])}
        if instances.masks is not None:
            ann["segmentation"] = _rle(instances.masks[i])
            ann["area"] = float(instances.masks[i].sum())
        if instances.keypoints is not None:
            ann["keypoints"] = _flat_keypoints(instances.keypoints[i].as_subclass(Tensor), instances.visibility[i])
            ann["num_keypoints"] = int((instances.visibility[i] > 0).sum())
        out.append(ann)
    return out


def _results(detections: dict[str, Tensor]) -> list[dict[str, Any]]:
    boxes = _xywh(detections["boxes"])
    out = []
    for i in range(len(boxes)):
        res = {"category_id": int(detections["labels"][i]) + 1, "bbox": boxes[i].tolist(),
               "score": float(detections["scores"][i])}
        if "masks" in detections:
            res["segmentation"] = _rle(detections["masks"][i])
        if "keypoints" in detections:
            res["keypoints"] = _flat_keypoints(detections["keypoints"][i], torch.ones(detections["keypoints"].shape[1]))
        out.append(res)
    return out
