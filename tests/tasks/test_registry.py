"""The registry, and one contract check run over every registered task type.

Each type in ``TASKS`` (detection included) is paired with every synthetic task of its
``target_kind`` and driven end to end on a fake pyramid against the targets of two
rendered scenes: forward over the batch, a finite differentiable loss, metric keys and
directions, DDP-style merge equal to one metric over the union, postprocess / draw /
to_json. Per-task numbers are checked in each task's own test file.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil

import numpy as np
import pytest
import torch

import mtvision.tasks
from mtvision.data.dataset import collate
from mtvision.data.synthetic import render_scene, synthetic_tasks
from mtvision.structures import Batch
from mtvision.tasks import TASKS, Task, available_tasks, create_task

SIZE = (64, 64)  # the pyramid fixture's image
INFOS = synthetic_tasks()
CASES = [(kind, name) for kind, cls in sorted(TASKS.items()) for name, info in INFOS.items()
         if info.kind == cls.target_kind]


@pytest.fixture(scope="module")
def scenes() -> Batch:
    """Two rendered scenes, every synthetic task labelled on both."""
    return collate([render_scene(seed, size=SIZE) for seed in (0, 1)])


@pytest.fixture(params=CASES, ids=[f"{kind}-{name}" for kind, name in CASES])
def task(request: pytest.FixtureRequest) -> Task:
    kind, name = request.param
    torch.manual_seed(0)
    return create_task(kind, name, INFOS[name], 16, [4, 8, 16, 32])


def test_every_registered_type_has_a_synthetic_case() -> None:
    """A type whose target kind no synthetic task has would drop out of this contract silently."""
    assert {kind for kind, _ in CASES} == set(TASKS)
    assert "detection" in TASKS and len(CASES) > len(TASKS)  # classification has a single- and a multi-label case


def test_every_task_class_of_the_package_is_registered() -> None:
    for module in pkgutil.iter_modules(mtvision.tasks.__path__, "mtvision.tasks."):
        for cls in vars(importlib.import_module(module.name)).values():
            if isinstance(cls, type) and issubclass(cls, Task) and cls.target_kind and cls.__module__ == module.name:
                assert TASKS.get(cls.kind) is cls, f"{cls.__qualname__} in {module.name} is not registered"


def test_unknown_kind_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown task type 'panoptic'; available: ") as error:
        create_task("panoptic", "p", None, 16, [4])  # type: ignore[arg-type]
    assert all(kind in str(error.value) for kind in available_tasks())


def test_forward_covers_the_batch(task: Task, pyramid: list[torch.Tensor], scenes: Batch) -> None:
    with torch.no_grad():
        prediction = task.eval()(pyramid, SIZE)
    assert len(prediction) == 2
    target = scenes.targets[task.name]
    if isinstance(target, torch.Tensor) and target.ndim >= 3:  # a dense map: predicted at the image's size
        assert prediction.shape[-2:] == target.shape[-2:] == SIZE


def test_loss_is_finite_and_reaches_the_head(task: Task, pyramid: list[torch.Tensor], scenes: Batch) -> None:
    present = torch.tensor([True, False])
    _, losses = task.train().forward_train(pyramid, SIZE, scenes.targets[task.name][:1], present)
    assert losses["loss"].ndim == 0 and torch.isfinite(losses["loss"]) and losses["loss"] > 0
    losses["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in task.parameters())


def test_a_metric_with_nothing_measured_is_nan(task: Task) -> None:
    result = task.make_metric().compute()
    assert set(result) >= set(task.metrics_higher_is_better) and all(math.isnan(v) for v in result.values())


def test_metric_keys_and_directions(task: Task, pyramid: list[torch.Tensor], scenes: Batch) -> None:
    metric = task.make_metric()
    with torch.no_grad():
        metric.update(task.eval()(pyramid, SIZE), scenes.targets[task.name])
    result = metric.compute()
    scored = set(result) - {"ods_threshold"}  # a threshold is reported, but is not a score
    assert scored == set(task.metrics_higher_is_better)
    assert task.primary_metric in scored
    assert all(math.isfinite(v) for v in result.values())


def test_merge_equals_one_metric_over_the_union(task: Task, pyramid: list[torch.Tensor], scenes: Batch) -> None:
    with torch.no_grad():
        prediction = task.eval()(pyramid, SIZE)
    target = scenes.targets[task.name]
    whole, first, second = task.make_metric(), task.make_metric(), task.make_metric()
    whole.update(prediction, target)
    first.update(prediction[:1], target[:1])  # a tensor or a list of Instances alike
    second.update(prediction[1:], target[1:])
    first.merge(second)
    assert first.compute() == pytest.approx(whole.compute(), abs=1e-9)


@pytest.mark.parametrize("image_size", [(64, 64), (48, 40)])
def test_postprocess_draw_and_json(task: Task, pyramid: list[torch.Tensor], image_size: tuple[int, int]) -> None:
    loud = [10 * level for level in pyramid]  # confident untrained heads: detections pass draw's score cut
    with torch.no_grad():
        outputs = task.postprocess(task.eval()(loud, SIZE))
    assert len(outputs) == 2
    image = np.full((*image_size, 3), 128, dtype=np.uint8)
    picture = task.draw(image, outputs[0])
    assert picture.shape == image.shape and picture.dtype == np.uint8
    assert (picture != image).any()  # something was drawn
    json.dumps(task.to_json(outputs[0]))
