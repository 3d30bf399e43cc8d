"""Classification: losses, accuracy, AP / mAP / F1 against hand-computed values."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from mtvision.tasks import Task
from mtvision.tasks._metrics import average_precision

SIX = [f"c{i}" for i in range(6)]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_cross_entropy_by_hand(build: Callable[..., Task]) -> None:
    task = build("classification", classes=["a", "b"])
    loss = task.loss(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1]))["loss"]
    assert float(loss) == pytest.approx((math.log(2) + math.log(1 + math.e**2)) / 2)


def test_label_smoothing_by_hand(build: Callable[..., Task]) -> None:
    task = build("classification", classes=["a", "b"], label_smoothing=0.1)
    log_z = math.log(1 + math.e**2)  # log p0 = 2 - log_z, log p1 = -log_z; q = (0.95, 0.05)
    loss = task.loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))["loss"]
    assert float(loss) == pytest.approx(-(0.95 * (2 - log_z) + 0.05 * -log_z))


def test_multi_label_bce_by_hand(build: Callable[..., Task]) -> None:
    task = build("classification", classes=["a", "b"], multi_label=True)
    loss = task.loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1, 0]]))["loss"]
    assert float(loss) == pytest.approx((math.log(2) + math.log(1 + math.e**2)) / 2)


def test_top1_top5_accuracy(build: Callable[..., Task]) -> None:
    task = build("classification", classes=SIX)
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1]] * 3)
    metric = task.make_metric()
    metric.update(logits, torch.tensor([0, 4, 5]))  # top-1 hit, top-5 hit, miss
    assert metric.compute() == pytest.approx({"top1": 1 / 3, "top5": 2 / 3})


def test_top5_only_with_more_than_five_classes(build: Callable[..., Task]) -> None:
    task = build("classification", classes=SIX[:5])
    assert set(task.metrics_higher_is_better) == {"top1"}
    metric = task.make_metric()
    metric.update(torch.eye(5)[:2], torch.tensor([0, 2]))
    assert metric.compute() == {"top1": 0.5}


def test_average_precision_by_hand() -> None:
    ap = average_precision(torch.tensor([0.9, 0.8, 0.3]), torch.tensor([1, 0, 1]))
    assert ap == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_ties_and_no_positive() -> None:
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == pytest.approx(0.5)
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == pytest.approx(0.5)
    assert math.isnan(average_precision(torch.tensor([0.5]), torch.tensor([0])))


def test_map_and_micro_f1_by_hand(build: Callable[..., Task]) -> None:
    task = build("classification", classes=["a", "b", "never"], multi_label=True)
    assert task.primary_metric == "map"
    probs = [[0.9, 0.2, 0.1], [0.8, 0.7, 0.1], [0.3, 0.1, 0.1]]
    labels = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    metric = task.make_metric()
    metric.update(torch.tensor([[logit(p) for p in row] for row in probs]), labels)
    # AP: a = (1 + 2/3) / 2, b = 1, "never" has no positive and is skipped.
    # At 0.5: TP = 2 (0.9 a, 0.7 b), FP = 1 (0.8 a), FN = 1 (0.3 a) -> F1 = 4 / 6.
    assert metric.compute() == pytest.approx({"map": (5 / 6 + 1) / 2, "f1": 2 / 3})


def test_postprocess_and_json(build: Callable[..., Task]) -> None:
    single = build("classification", classes=["a", "b"])
    output = single.postprocess(torch.tensor([[0.0, math.log(3)]]))[0]
    assert output["label"] == 1 and output["probs"].tolist() == pytest.approx([0.25, 0.75])
    assert single.to_json(output) == {"label": "b", "score": pytest.approx(0.75), "scores": {"b": 0.75, "a": 0.25}}
    multi = build("classification", classes=["a", "b"], multi_label=True)
    output = multi.postprocess(torch.tensor([[logit(0.6), logit(0.4)]]))[0]
    assert multi.to_json(output) == {"labels": ["a"], "scores": {"a": 0.6, "b": 0.4}}


def test_coarsest_pool_and_bad_options(build: Callable[..., Task], pyramid: list[torch.Tensor]) -> None:
    task = build("classification", classes=SIX, pool="coarsest")
    assert task.head.in_features == 16 and task(pyramid, (64, 64)).shape == (2, 6)
    with pytest.raises(ValueError, match="pool='max'"):
        build("classification", classes=SIX, pool="max")
    with pytest.raises(ValueError, match="needs TaskInfo.classes"):
        build("classification")
