"""Semantic segmentation: one class per pixel, with a void label that is never scored.

Loss: per-pixel cross-entropy, averaged over the non-void pixels of the batch. Metrics come
from one ``[C, C]`` confusion matrix (rows = target, columns = prediction) summed over the
split, so they are exact under DDP: pixel accuracy ``trace / total`` and mIoU, the mean of
``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` over the classes present in the target *or* the
prediction of the split (a class absent from both has an undefined IoU and is skipped,
as in torchmetrics / mmseg's ``nanmean``). Void pixels count in neither.

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = SemanticSegmentation("seg", TaskInfo(kind="semantic", classes=["bg", "fg"]), 8, [4])
    >>> task([torch.zeros(1, 8, 4, 4)], (16, 16)).shape
    torch.Size([1, 2, 16, 16])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision import tv_tensors

from mtvision.draw import Key, class_key, colorize_labels
from mtvision.structures import TaskInfo
from mtvision.tasks._metrics import SplitMetric, masked_mean, mean_ignoring_nan, safe_div
from mtvision.tasks.base import DISTILL_TEMPERATURE, Metric, register, soft_cross_entropy
from mtvision.tasks.dense_head import DenseTask, constant_map, overlay, per_image
from mtvision.tasks.kinds import single_channel, target_kind


def decode_semantic(array: np.ndarray, info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> tv_tensors.Mask:
    """An index map (PNG or .npy) as an int64 ``Mask [H, W]``; ``info.ignore_index`` marks void."""
    return tv_tensors.Mask(torch.from_numpy(single_channel(array, "semantic").astype(np.int64)))


target_kind("semantic", dense=True, decode=decode_semantic)


@register("semantic_segmentation")
class SemanticSegmentation(DenseTask):
    """Dense head with one logit map per class."""

    target_kind = "semantic"
    primary_metric = "miou"
    label_map = True
    metrics_higher_is_better = {"miou": True, "pixel_acc": True}

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], *, hidden: int = 32) -> None:
        if not info.classes:
            raise ValueError(f"task {name!r}: semantic_segmentation needs TaskInfo.classes (the class names)")
        super().__init__(name, info, channels, strides, out_channels=len(info.classes), hidden=hidden)

    def loss(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Cross-entropy over non-void pixels (0, not NaN, when a batch has none)."""
        void = self.info.ignore_index
        per_pixel = F.cross_entropy(prediction.float(), target, ignore_index=void, reduction="none")
        return {"loss": masked_mean(per_pixel, target != void)}

    def distill_loss(self, prediction: Tensor, teacher: Tensor) -> Tensor:
        """Per-pixel softened KL to the old logits (T = 2, LwF's classification loss at every pixel)."""
        return soft_cross_entropy(prediction, teacher, DISTILL_TEMPERATURE)

    def baseline_statistics(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Pixel count per class over the non-void pixels."""
        valid = target[target != self.info.ignore_index].long()
        return torch.bincount(valid, minlength=len(self.info.classes)).double(), torch.tensor(float(len(valid)))

    def constant_prediction(self, mean: Tensor, target: Tensor) -> Tensor:
        """Logits of the majority class everywhere."""
        return constant_map(F.one_hot(mean.argmax(), len(mean)).float(), target)

    def make_metric(self) -> Metric:
        return ConfusionMetric(len(self.info.classes), self.info.ignore_index)

    def postprocess(self, prediction: Tensor) -> list[np.ndarray]:
        """One ``[H, W]`` int64 class-index map per image."""
        return per_image(prediction.argmax(dim=1))

    def draw(self, image: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Class colours blended over the image (the palette every picture of a class uses)."""
        return overlay(image, colorize_labels(output, len(self.info.classes)), alpha=0.5)

    def legend(self, output: np.ndarray) -> Key:
        """The colours of the classes present, largest area first."""
        counts = np.bincount(output.ravel().clip(0), minlength=len(self.info.classes))[:len(self.info.classes)]
        ids = [i for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
        return class_key(ids, self.info.classes)

    def to_json(self, output: np.ndarray) -> dict[str, Any]:
        """``{"classes": {name: pixel fraction}}`` for the classes present, largest first."""
        counts = np.bincount(output.ravel(), minlength=len(self.info.classes))
        order = np.argsort(-counts, kind="stable")
        return {"classes": {self.info.classes[i]: round(float(counts[i] / output.size), 4)
                            for i in order if counts[i] > 0}}


class ConfusionMetric(SplitMetric):
    """mIoU and pixel accuracy from a confusion matrix (rows target, columns prediction)."""

    keys = ("miou", "pixel_acc")

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def update(self, prediction: Tensor, target: Tensor) -> None:
        valid = target != self.ignore_index
        pairs = target[valid] * self.num_classes + prediction.argmax(dim=1)[valid]
        counts = torch.bincount(pairs, minlength=self.num_classes**2)
        self.add("confusion", counts.reshape(self.num_classes, self.num_classes))

    def result(self) -> dict[str, float]:
        confusion = self.sums["confusion"]
        tp = confusion.diagonal()
        union = confusion.sum(0) + confusion.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
        return {"miou": mean_ignoring_nan(iou), "pixel_acc": float(safe_div(tp.sum(), confusion.sum()))}
