"""The registry, and one contract check run over every built-in task type.

Each task is driven end to end on a fake pyramid: forward shape, a finite differentiable
loss, metric keys and directions, DDP-style merge equal to one metric over the union,
postprocess / draw / to_json. Per-task numbers are checked in each task's own test file.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from mtvision.tasks import Task, available_tasks, create_task

BUILT_IN = {"classification", "semantic_segmentation", "depth", "normals", "edges"}
CLASSES = [f"c{i}" for i in range(7)]


def random_target(task: Task, batch: int, generator: torch.Generator) -> Any:
    """A valid batched target of ``task``'s kind for 64x64 images (with some invalid pixels)."""
    c, shape = len(task.info.classes), (batch, 1, 64, 64)
    if task.kind == "classification" and task.info.multi_label:
        return torch.randint(0, 2, (batch, c), generator=generator)
    if task.kind == "classification":
        return torch.randint(0, c, (batch,), generator=generator)
    if task.kind == "semantic_segmentation":
        target = torch.randint(0, c, shape[:1] + shape[2:], generator=generator)
        return target.masked_fill(torch.rand(target.shape, generator=generator) < 0.1, task.info.ignore_index)
    if task.kind == "depth":
        invalid = torch.rand(shape, generator=generator) < 0.1
        return (torch.rand(shape, generator=generator) * 10).masked_fill(invalid, 0)
    if task.kind == "normals":
        return torch.nn.functional.normalize(torch.randn((batch, 3, 64, 64), generator=generator), dim=1)
    return (torch.rand(shape, generator=generator) < 0.1).to(torch.uint8)


EXPECTED_SHAPE = {"classification": (2, 7), "semantic_segmentation": (2, 7, 64, 64), "depth": (2, 1, 64, 64),
                  "normals": (2, 3, 64, 64), "edges": (2, 1, 64, 64)}
CASES = [("classification", False), ("classification", True), ("semantic_segmentation", False),
         ("depth", False), ("normals", False), ("edges", False)]


@pytest.fixture(params=CASES, ids=[f"{k}{'-multi' if m else ''}" for k, m in CASES])
def task(request: pytest.FixtureRequest, build: Callable[..., Task]) -> Task:
    kind, multi = request.param
    return build(kind, classes=CLASSES, multi_label=multi)


def test_registry_lists_the_built_in_types() -> None:
    assert BUILT_IN <= set(available_tasks())


def test_unknown_kind_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown task type 'panoptic'; available: ") as error:
        create_task("panoptic", "p", None, 16, [4])  # type: ignore[arg-type]
    assert all(kind in str(error.value) for kind in BUILT_IN)


def test_forward_shape(task: Task, pyramid: list[torch.Tensor]) -> None:
    assert task(pyramid, (64, 64)).shape == EXPECTED_SHAPE[task.kind]


def test_loss_is_finite_and_reaches_the_head(task: Task, pyramid: list[torch.Tensor]) -> None:
    present = torch.tensor([True, False])
    target = random_target(task, 1, torch.Generator().manual_seed(1))
    _, losses = task.forward_train(pyramid, (64, 64), target, present)
    assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in task.parameters())


def test_metric_keys_and_directions(task: Task, pyramid: list[torch.Tensor]) -> None:
    metric = task.make_metric()
    assert all(math.isnan(v) for v in metric.compute().values())  # nothing measured yet
    metric.update(task(pyramid, (64, 64)), random_target(task, 2, torch.Generator().manual_seed(2)))
    result = metric.compute()
    scored = set(result) - {"ods_threshold"}  # a threshold is reported, but is not a score
    assert scored == set(task.metrics_higher_is_better)
    assert task.primary_metric in scored
    assert all(math.isfinite(v) for v in result.values())


def test_merge_equals_one_metric_over_the_union(task: Task, pyramid: list[torch.Tensor]) -> None:
    prediction = task(pyramid, (64, 64)).detach()
    target = random_target(task, 2, torch.Generator().manual_seed(3))
    whole, first, second = task.make_metric(), task.make_metric(), task.make_metric()
    whole.update(prediction, target)
    first.update(prediction[:1], target[:1])
    second.update(prediction[1:], target[1:])
    first.merge(second)
    assert first.compute() == pytest.approx(whole.compute(), abs=1e-9)


@pytest.mark.parametrize("image_size", [(64, 64), (48, 40)])
def test_postprocess_draw_and_json(task: Task, pyramid: list[torch.Tensor], image_size: tuple[int, int]) -> None:
    outputs = task.postprocess(task(pyramid, (64, 64)))
    assert len(outputs) == 2
    image = np.full((*image_size, 3), 128, dtype=np.uint8)
    picture = task.draw(image, outputs[0])
    assert picture.shape == image.shape and picture.dtype == np.uint8
    json.dumps(task.to_json(outputs[0]))

