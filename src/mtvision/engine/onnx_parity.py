"""Does the exported graph answer like the PyTorch model? Measured per task, judged per output kind.

* batched outputs (logits, depth, normals, edge logits): the largest absolute difference of
  the raw outputs, and the share of equal labels after post-processing (class, pixel class);
* detection: detections matched greedily by label and IoU; the share matched with box IoU >=
  ``match_iou`` over the larger of the two counts, the mean IoU of matched pasted masks, and
  the largest keypoint difference in pixels.

The tolerances (:data:`FLOAT32`, :data:`HALF`) are documented in ``docs/export.md`` with the
errors measured on the test models.

Example:
    >>> import numpy as np
    >>> box_iou(np.array([[0, 0, 2, 2.]]), np.array([[1, 0, 3, 2.]])).round(3).tolist()
    [[0.333]]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["FLOAT32", "HALF", "Check", "Tolerance", "box_iou", "compare", "failures"]


@dataclass(frozen=True)
class Tolerance:
    """Worst acceptable value of each check (``max_abs``, ``keypoints_px``: at most; the rest: at least)."""

    max_abs: float = 1e-3
    labels: float = 0.999
    boxes: float = 0.99
    masks: float = 0.99
    keypoints_px: float = 0.5
    match_iou: float = 0.99


FLOAT32 = Tolerance()
#: float16 weights: measured on the tiny test models (docs/export.md), with margin
HALF = Tolerance(max_abs=0.05, labels=0.99, boxes=0.9, masks=0.9, keypoints_px=4.0, match_iou=0.9)


@dataclass(frozen=True)
class Check:
    """One measured agreement: ``task``, what was compared, its value and its bound."""

    task: str
    name: str
    value: float
    bound: float
    at_most: bool

    @property
    def ok(self) -> bool:
        return bool(self.value <= self.bound) if self.at_most else bool(self.value >= self.bound)

    def __str__(self) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{self.task:>12} {self.name:<14} {self.value:10.3g}  (tolerance {sign} {self.bound:g})" + \
            ("" if self.ok else "  FAIL")


def compare(raw: dict[str, Any], onnx_raw: dict[str, Any], post: dict[str, list[Any]],
            onnx_post: dict[str, list[Any]], tolerance: Tolerance = FLOAT32) -> list[Check]:
    """Every check of every task: ``raw``/``post`` from PyTorch, ``onnx_*`` from onnxruntime."""
    checks: list[Check] = []
    for task in raw:
        if isinstance(raw[task], Tensor):
            diff = (raw[task].float() - onnx_raw[task].float()).abs().max() if raw[task].numel() else 0.0
            checks.append(Check(task, "max_abs", float(diff), tolerance.max_abs, True))
            equal, total = _label_agreement(post[task], onnx_post[task])
            if total:
                checks.append(Check(task, "labels", equal / total, tolerance.labels, False))
        else:
            checks += _detection_checks(task, post[task], onnx_post[task], tolerance)
    return checks


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def _integers(value: Any) -> Iterator[np.ndarray]:
    """Every integer label inside a post-processed output (arrays, ints, lists of ints, dicts)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _integers(item)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        yield value.ravel()
    elif isinstance(value, int) and not isinstance(value, bool):
        yield np.array([value])
    elif isinstance(value, list) and all(isinstance(v, int) for v in value):
        yield np.array([hash(tuple(value))])  # a multi-label set agrees only as a whole


def _label_agreement(a: list[Any], b: list[Any]) -> tuple[int, int]:
    pairs = [(x, y) for p, q in zip(a, b) for x, y in zip(_integers(p), _integers(q))]
    return sum(int((x == y).sum()) for x, y in pairs), sum(x.size for x, _ in pairs)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` IoU of XYXY boxes."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def _match(a: dict[str, np.ndarray], b: dict[str, np.ndarray], min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (best IoU first) of same-label detections with IoU >= ``min_iou``."""
    iou = box_iou(a["boxes"], b["boxes"]) * (a["labels"][:, None] == b["labels"][None, :])
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((int(i), int(j)))
            used_a.add(i)
            used_b.add(j)
    return pairs


def _detection_checks(task: str, a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]],
                      tol: Tolerance) -> list[Check]:
    matched, counted, mask_iou, keypoint_px = 0, 0, [], 0.0
    for x, y in zip(a, b):
        pairs = _match(x, y, tol.match_iou)
        matched, counted = matched + len(pairs), counted + max(len(x["boxes"]), len(y["boxes"]))
        for i, j in pairs:
            if "masks" in x:
                union = np.logical_or(x["masks"][i], y["masks"][j]).sum()
                mask_iou.append(np.logical_and(x["masks"][i], y["masks"][j]).sum() / union if union else 1.0)
            if "keypoints" in x:
                keypoint_px = max(keypoint_px, float(np.abs(x["keypoints"][i] - y["keypoints"][j]).max()))
    checks = [Check(task, "boxes_matched", matched / counted if counted else 1.0, tol.boxes, False)]
    if "masks" in (a[0] if a else {}):
        checks.append(Check(task, "mask_iou", float(np.mean(mask_iou)) if mask_iou else 1.0, tol.masks, False))
    if "keypoints" in (a[0] if a else {}):
        checks.append(Check(task, "keypoints_px", keypoint_px, tol.keypoints_px, True))
    return checks
