"""Depth: L1 and silog losses over valid pixels, and the split metrics, by hand."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from mtvision.tasks import Task


def as_map(values: list[float]) -> torch.Tensor:
    """A ``[1, 1, 1, N]`` depth map."""
    return torch.tensor(values).reshape(1, 1, 1, -1)


def test_l1_skips_invalid_pixels(build: Callable[..., Task]) -> None:
    task = build("depth")
    loss = task.loss(as_map([1, 2, 3, 50]), as_map([1, 1, 4, 0]))["loss"]
    assert float(loss) == pytest.approx(2 / 3)


def test_silog_by_its_formula(build: Callable[..., Task]) -> None:
    task = build("depth", loss="silog")
    loss = task.loss(as_map([1, 2, 4, 50]), as_map([1, 1, 2, 0]))["loss"]
    log2 = math.log(2)  # g = (0, log 2, log 2) on the 3 valid pixels
    mean_g2, mean_g = 2 * log2**2 / 3, 2 * log2 / 3
    assert float(loss) == pytest.approx(math.sqrt(mean_g2 - 0.85 * mean_g**2))


def test_silog_is_scale_invariant_with_lambda_one(build: Callable[..., Task]) -> None:
    task = build("depth", loss="silog", silog_lambda=1.0)
    target = as_map([1, 2, 3])
    assert float(task.loss(3 * target, target)["loss"]) == pytest.approx(0.0, abs=1e-5)


def test_metrics_by_hand(build: Callable[..., Task]) -> None:
    metric = build("depth").make_metric()
    metric.update(as_map([1, 2, 3, 7]), as_map([1, 1, 4, 0]))
    # errors 0, 1, 1; relative 0, 1, 1/4; ratios 1, 2, 4/3 -> only the first is < 1.25
    expected = {"abs_err": 2 / 3, "abs_rel": 1.25 / 3, "rmse": math.sqrt(2 / 3), "delta1": 1 / 3}
    assert metric.compute() == pytest.approx(expected)


def test_output_is_positive_metres(build: Callable[..., Task]) -> None:
    task = build("depth", min_depth=0.01)
    assert float(task.activate(torch.tensor([-100.0]))) == pytest.approx(0.01)
    assert float(task.activate(torch.tensor([10.0]))) == pytest.approx(10.01, abs=1e-4)
    output = task.postprocess(as_map([1.0, 3.0]))[0]
    assert output.shape == (1, 2) and task.to_json(output) == {"min": 1.0, "max": 3.0, "mean": 2.0}


def test_unknown_loss_names_the_choices(build: Callable[..., Task]) -> None:
    with pytest.raises(ValueError, match=r"loss='l2' is not one of \('l1', 'silog'\)"):
        build("depth", loss="l2")
