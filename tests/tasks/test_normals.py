"""Normals: cosine loss over valid pixels and the angle metrics, by hand."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from mtvision.tasks import Task


def vectors_at(degrees: list[float]) -> torch.Tensor:
    """A ``[1, 3, 1, N]`` map of unit vectors at ``degrees`` from +z, in the x-z plane."""
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    vectors = torch.stack([radians.sin(), torch.zeros_like(radians), radians.cos()])
    return vectors.float().reshape(1, 3, 1, -1)


def along_z(n: int) -> torch.Tensor:
    return vectors_at([0.0] * n)


def with_invalid(target: torch.Tensor) -> torch.Tensor:
    """``target`` plus one invalid (zero) pixel on the right."""
    return torch.cat([target, torch.zeros(1, 3, 1, 1)], dim=3)


def test_cosine_loss_with_a_right_angle(build: Callable[..., Task]) -> None:
    task = build("normals")
    prediction = torch.cat([vectors_at([0.0, 90.0]), vectors_at([180.0])], dim=3)  # last pixel is invalid
    loss = task.loss(prediction, with_invalid(along_z(2)))["loss"]
    assert float(loss) == pytest.approx(0.5)  # (1 - cos 0 + 1 - cos 90) / 2


def test_angle_metrics_by_hand(build: Callable[..., Task]) -> None:
    metric = build("normals").make_metric()
    metric.update(vectors_at([0.0, 10.0, 45.0, 90.0, 0.0]), with_invalid(along_z(4)))
    result = metric.compute()
    assert result["mean_angle"] == pytest.approx(36.25, abs=1e-4)
    assert result["median_angle"] == pytest.approx(27.5, abs=0.01)  # mean of the 2 middle ranks
    assert [result[k] for k in ("within_11_25", "within_22_5", "within_30")] == [0.5, 0.5, 0.5]


def test_median_of_an_odd_count_and_small_angles(build: Callable[..., Task]) -> None:
    metric = build("normals").make_metric()
    metric.update(vectors_at([0.3, 0.5, 40.0]), along_z(3))
    result = metric.compute()
    assert result["median_angle"] == pytest.approx(0.5, abs=0.006)  # 0.01-degree bins
    assert result["mean_angle"] == pytest.approx(40.8 / 3, abs=1e-4)  # atan2 keeps small angles exact


def test_prediction_is_unit_and_json(build: Callable[..., Task], pyramid: list[torch.Tensor]) -> None:
    task = build("normals")
    prediction = task(pyramid, (64, 64))
    assert torch.allclose(prediction.norm(dim=1), torch.ones(2, 64, 64), atol=1e-5)
    output = task.postprocess(vectors_at([90.0, 90.0]))[0]
    assert task.to_json(output) == {"mean_normal": [1.0, 0.0, 0.0]}
