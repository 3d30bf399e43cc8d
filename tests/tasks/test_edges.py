"""Edges: HED class-balanced BCE and the ODS F-score, by hand."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch

from mtvision.tasks import Task


def as_map(values: list[float]) -> torch.Tensor:
    return torch.tensor(values).reshape(1, 1, 1, -1)


def logits_of(probs: list[float]) -> torch.Tensor:
    return as_map([math.log(p / (1 - p)) for p in probs])


def test_weighted_bce_by_hand(build: Callable[..., Task]) -> None:
    task = build("edges")
    loss = task.loss(as_map([0.0, 0.0, 0.0, 2.0]), as_map([1, 0, 0, 0]).to(torch.uint8))["loss"]
    # 1 positive, 3 negatives -> pos_weight 3: (3 log 2 + 2 log 2 + log(1 + e^2)) / 4
    assert float(loss) == pytest.approx((5 * math.log(2) + math.log(1 + math.e**2)) / 4)


def test_ods_picks_the_best_threshold(build: Callable[..., Task]) -> None:
    metric = build("edges").make_metric()
    metric.update(logits_of([0.9, 0.7, 0.4, 0.2]), as_map([1, 0, 1, 0]).to(torch.uint8))
    # t in (0.2, 0.4]: predicted {0.9, 0.7, 0.4} -> P 2/3, R 1, F 0.8 (other ranges: 2/3, 1/2, 2/3)
    assert metric.compute() == pytest.approx({"ods_f": 0.8, "ods_threshold": 0.21})


def test_tolerance_accepts_a_one_pixel_offset(build: Callable[..., Task]) -> None:
    prediction, target = logits_of([0.1, 0.9, 0.1]), as_map([1, 0, 0]).to(torch.uint8)
    exact, tolerant = build("edges").make_metric(), build("edges", tolerance=1).make_metric()
    exact.update(prediction, target)
    tolerant.update(prediction, target)
    assert exact.compute()["ods_f"] == pytest.approx(0.5)  # only t <= 0.1 finds the edge: P 1/3, R 1
    assert tolerant.compute() == pytest.approx({"ods_f": 1.0, "ods_threshold": 0.11})


def test_postprocess_draw_and_json(build: Callable[..., Task]) -> None:
    task = build("edges")
    output = task.postprocess(logits_of([0.9, 0.2]))[0]
    assert output.shape == (1, 2) and output[0].tolist() == pytest.approx([0.9, 0.2])
    assert task.to_json(output) == {"edge_fraction": 0.5}
    picture = task.draw(np.full((1, 2, 3), 100, dtype=np.uint8), output)
    assert picture[0, :, 0].tolist() == [229, 51]  # white edges over the image darkened to 40


def test_test_metric_adds_bsds_scores_that_thin_before_matching() -> None:
    """A 2-px-thick prediction of a 1-px edge: the pixel F-score pays for the extra row
    (precision 1/2), BSDS thins it to one line first and matches it within the radius."""
    from mtvision.structures import TaskInfo
    from mtvision.tasks import create_task

    task = create_task("edges", "edges", TaskInfo(kind="edges"), channels=8, strides=[4], bsds_max_dist=0.05)
    assert set(task.test_metrics_higher_is_better) == {"ods_f", "bsds_ods_f", "bsds_ois_f"}
    target = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    target[:, :, 16, 4:28] = 1
    prediction = torch.full((2, 1, 32, 32), -8.0)
    prediction[:, :, 16:18, 4:28] = 8.0
    metric = task.make_test_metric()
    metric.update(prediction, target)
    result = metric.compute()
    assert result["ods_f"] == pytest.approx(2 / 3)  # P = 24 / 48, R = 1
    assert result["bsds_ods_f"] > 0.95 and result["bsds_ois_f"] == pytest.approx(result["bsds_ods_f"], abs=0.02)
    assert set(task.make_metric().compute()) == {"ods_f", "ods_threshold"}  # validation stays fast
