"""Semantic segmentation: CE with void pixels, confusion-matrix mIoU / accuracy by hand."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from mtvision.tasks import Task

VOID = 255


def one_hot_logits(labels: list[list[int]], classes: int) -> torch.Tensor:
    """Logits ``[1, C, H, W]`` whose argmax is ``labels``."""
    return torch.nn.functional.one_hot(torch.tensor([labels]), classes).permute(0, 3, 1, 2).float()


def test_cross_entropy_skips_void_pixels(build: Callable[..., Task]) -> None:
    task = build("semantic_segmentation", classes=["a", "b"])
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, 0, 0] = 2.0  # pixel (0, 0): logits (2, 0), target 0
    logits[0, 1, 1, 1] = 50.0  # the void pixel: a huge loss if it counted
    target = torch.tensor([[[0, 1], [0, VOID]]])
    loss = task.loss(logits, target)["loss"]
    assert float(loss) == pytest.approx((math.log(1 + math.exp(-2)) + 2 * math.log(2)) / 3)


def test_all_void_batch_gives_zero_loss_with_a_gradient(build: Callable[..., Task]) -> None:
    task = build("semantic_segmentation", classes=["a", "b"])
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = task.loss(logits, torch.full((1, 2, 2), VOID))["loss"]
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None


def test_miou_and_pixel_accuracy_by_hand(build: Callable[..., Task]) -> None:
    task = build("semantic_segmentation", classes=["a", "b", "absent"])
    prediction = one_hot_logits([[0, 1, 0], [1, 1, 0]], 3)
    target = torch.tensor([[[0, 0, VOID], [1, 1, VOID]]])
    metric = task.make_metric()
    metric.update(prediction, target)
    # class a: TP 1, FN 1 -> 1/2; class b: TP 2, FP 1 -> 2/3; "absent" appears nowhere: skipped.
    assert metric.compute() == pytest.approx({"miou": (1 / 2 + 2 / 3) / 2, "pixel_acc": 3 / 4})


def test_class_only_predicted_counts_with_iou_zero(build: Callable[..., Task]) -> None:
    task = build("semantic_segmentation", classes=["a", "b"])
    metric = task.make_metric()
    metric.update(one_hot_logits([[0, 1]], 2), torch.tensor([[[0, 0]]]))
    assert metric.compute() == pytest.approx({"miou": (1 / 2 + 0) / 2, "pixel_acc": 1 / 2})


def test_postprocess_and_json(build: Callable[..., Task]) -> None:
    task = build("semantic_segmentation", classes=["a", "b", "c"])
    output = task.postprocess(one_hot_logits([[2, 2], [2, 0]], 3))[0]
    assert output.tolist() == [[2, 2], [2, 0]]
    assert task.to_json(output) == {"classes": {"c": 0.75, "a": 0.25}}
