"""Image-level classification: single-label (softmax) or multi-label (independent sigmoids).

``TaskInfo.multi_label`` picks the mode. Single-label trains with cross-entropy (optional
label smoothing, Szegedy et al. 2016) and reports top-1 accuracy, plus top-5 when there
are more than 5 classes (with 5 or fewer it is always 1). Multi-label trains with
BCE-with-logits and reports mAP (exact AP per class over the whole split, averaged over
classes with at least one positive) and micro F1 at ``threshold``.

The head pools every pyramid level globally and concatenates them (``pool="all"``) so the
classifier sees fine and coarse FPN levels alike; ``pool="coarsest"`` keeps only the last.

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = Classification("scene", TaskInfo(kind="label", classes=["a", "b"]), 8, [4, 8])
    >>> task([torch.zeros(2, 8, 4, 4), torch.zeros(2, 8, 2, 2)], (16, 16)).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtvision.draw import caption
from mtvision.structures import ImageFrame, TaskInfo
from mtvision.tasks._metrics import SplitMetric, average_precision, f_score, mean_ignoring_nan, safe_div
from mtvision.tasks.base import DISTILL_TEMPERATURE, Metric, Task, register, soft_cross_entropy
from mtvision.tasks.kinds import target_kind

POOLS = ("all", "coarsest")
TOP_SHOWN = 5  # classes listed by draw / to_json


def decode_label(value: int | list[int], info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> Tensor:
    """Single-label -> int64 scalar; multi-label (a list of class indices) -> ``[C]`` int64 0/1 vector."""
    if not info.multi_label:
        return torch.tensor(int(value), dtype=torch.int64)
    vector = torch.zeros(len(info.classes), dtype=torch.int64)
    vector[list(value)] = 1
    return vector


target_kind("label", dense=False, decode=decode_label)


@register("classification")
class Classification(Task):
    """Global pooling + one linear layer; softmax or sigmoid depending on ``multi_label``."""

    target_kind = "label"
    primary_metric = "top1"  # "map" for multi-label instances, set in __init__
    metrics_higher_is_better = {"top1": True, "top5": True, "map": True, "f1": True}

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], *,
                 label_smoothing: float = 0.0, threshold: float = 0.5, pool: str = "all") -> None:
        super().__init__(name=name, info=info, channels=channels, strides=strides)
        if not info.classes:
            raise ValueError(f"task {name!r}: classification needs TaskInfo.classes (the class names)")
        if pool not in POOLS:
            raise ValueError(f"task {name!r}: pool={pool!r} is not one of {POOLS}")
        self.multi_label = info.multi_label
        self.label_smoothing = label_smoothing
        self.threshold = threshold  # multi-label decision threshold (F1, postprocess)
        self.pool = pool
        levels = len(self.strides) if pool == "all" else 1
        self.head = nn.Linear(channels * levels, len(info.classes))
        keys = ("map", "f1") if self.multi_label else _topk_keys(len(info.classes))
        self.primary_metric = keys[0]  # type: ignore[misc]  # depends on the mode
        self.metrics_higher_is_better = dict.fromkeys(keys, True)  # type: ignore[misc]

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> Tensor:
        levels = features if self.pool == "all" else features[-1:]
        return self.head(torch.cat([x.mean(dim=(2, 3)) for x in levels], dim=1))

    def loss(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        logits, eps = prediction.float(), self.label_smoothing
        if self.multi_label:  # smoothing pulls each 0/1 target towards 1/2
            return {"loss": F.binary_cross_entropy_with_logits(logits, target.float() * (1 - eps) + eps / 2)}
        return {"loss": F.cross_entropy(logits, target, label_smoothing=eps)}

    def distill_loss(self, prediction: Tensor, teacher: Tensor) -> Tensor:
        """Softened KL to the old logits (T = 2, LwF); multi-label: BCE to the old sigmoid probabilities."""
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(prediction.float(), teacher.float().sigmoid())
        return soft_cross_entropy(prediction, teacher, DISTILL_TEMPERATURE)

    def baseline_statistics(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Class counts (per-class positives for multi-label) over the images."""
        if self.multi_label:
            return target.double().sum(dim=0), torch.tensor(float(len(target)))
        return torch.bincount(target.long(), minlength=len(self.info.classes)).double(), torch.tensor(float(len(target)))

    def constant_prediction(self, mean: Tensor, target: Tensor) -> Tensor:
        """Log class priors (argmax = the majority class), or per-class prevalence as log-odds."""
        shape = (len(target), len(self.info.classes))
        if self.multi_label:
            return torch.logit(mean.float().clamp(1e-6, 1 - 1e-6)).expand(shape).clone()
        return mean.float().clamp_min(1e-12).log().expand(shape).clone()

    def make_metric(self) -> Metric:
        if self.multi_label:
            return MultiLabelMetric(self.threshold)
        return TopKAccuracy(len(self.info.classes))

    def postprocess(self, prediction: Tensor) -> list[dict[str, Any]]:
        """``{"probs": [C], "label": int}`` (single) or ``{"probs": [C], "labels": [int]}`` (multi)."""
        logits = prediction.detach().float().cpu()
        if self.multi_label:
            probs = logits.sigmoid().numpy()
            return [{"probs": p, "labels": np.flatnonzero(p >= self.threshold).tolist()} for p in probs]
        probs = logits.softmax(dim=1).numpy()
        return [{"probs": p, "label": int(p.argmax())} for p in probs]

    def to_image_frame(self, output: dict[str, Any], frame: ImageFrame) -> dict[str, Any]:
        """Unchanged: an image-level label has no position."""
        return output

    def draw(self, image: np.ndarray, output: dict[str, Any]) -> np.ndarray:
        """The top classes and their scores in a box over the image's corner; those not
        predicted (below the threshold, or not the arg-max) in grey, so the answer stands out."""
        top = self._top(output)
        chosen = set(output["labels"]) if self.multi_label else {output["label"]}
        names = self.info.classes
        dim = [names.index(name) not in chosen for name in top]
        return caption(image, [f"{name} {score:.2f}" for name, score in top.items()], dim)

    def to_json(self, output: dict[str, Any]) -> dict[str, Any]:
        names = self.info.classes
        if self.multi_label:
            chosen: dict[str, Any] = {"labels": [names[i] for i in output["labels"]]}
        else:
            chosen = {"label": names[output["label"]], "score": float(output["probs"][output["label"]])}
        return {**chosen, "scores": self._top(output)}

    def _top(self, output: dict[str, Any]) -> dict[str, float]:
        """The ``TOP_SHOWN`` most probable classes, name -> probability, best first."""
        probs = output["probs"]
        order = np.argsort(-probs, kind="stable")[:TOP_SHOWN]
        return {self.info.classes[i]: round(float(probs[i]), 4) for i in order}


def _topk_keys(num_classes: int) -> tuple[str, ...]:
    """Top-5 accuracy only means something with more than 5 classes."""
    return ("top1", "top5") if num_classes > 5 else ("top1",)


class TopKAccuracy(SplitMetric):
    """Top-1 (and top-5) accuracy from hit counts: exact sums over ranks."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.keys = _topk_keys(num_classes)
        self.ks = [int(key[3:]) for key in self.keys]

    def update(self, prediction: Tensor, target: Tensor) -> None:
        hits = prediction.topk(max(self.ks), dim=1).indices == target[:, None]
        for key, k in zip(self.keys, self.ks):
            self.add(key, hits[:, :k].any(dim=1).sum())
        self.add("count", torch.tensor(len(target)))

    def result(self) -> dict[str, float]:
        return {key: float(self.sums[key] / self.sums["count"]) for key in self.keys}


class MultiLabelMetric(SplitMetric):
    """mAP from every score of the split (concatenated items) and micro F1 from TP/FP/FN sums."""

    keys = ("map", "f1")

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def update(self, prediction: Tensor, target: Tensor) -> None:
        scores, labels = prediction.float().sigmoid(), target.bool()
        self.append("scores", scores)
        self.append("labels", labels)
        decided = scores >= self.threshold
        self.add("tp", (decided & labels).sum())
        self.add("fp", (decided & ~labels).sum())
        self.add("fn", (~decided & labels).sum())

    def result(self) -> dict[str, float]:
        scores, labels = torch.cat(self.items["scores"]), torch.cat(self.items["labels"])
        ap = torch.tensor([average_precision(scores[:, c], labels[:, c]) for c in range(scores.shape[1])])
        tp, fp, fn = self.sums["tp"], self.sums["fp"], self.sums["fn"]
        f1 = f_score(safe_div(tp, tp + fp), safe_div(tp, tp + fn))
        return {"map": mean_ignoring_nan(ap), "f1": float(f1)}
