"""One contract run over every registered architecture (DESIGN §6: one check, every member).

For each: every task type predicts at the right shape; every parameter is trained by the
tasks that use it and by no other (one ``autograd.grad`` per task); the parameters it calls
a task's own are touched by that task alone; a state dict round trip reproduces the
outputs; partial labels leave an absent task without loss; the representation it declares
is what ``features`` returns. Architecture-specific equalities live in each one's own file.
"""

from __future__ import annotations

import pytest
import torch

from mtvision.models import MultiTaskModel
from mtvision.models.architectures import ARCHITECTURES, available_architectures
from mtvision.structures import Batch
from tests.models.architectures.conftest import KINDS, SIZE, make

torch.set_num_threads(1)
NAMES = available_architectures()


@pytest.fixture(scope="module", params=NAMES)
def model(request: pytest.FixtureRequest) -> MultiTaskModel:
    return make(request.param)


def test_every_architecture_of_the_issue_is_registered() -> None:
    assert set(NAMES) >= {"hard", "mtan", "cross_stitch", "mmoe", "padnet", "mti_net", "branched"}
    assert all(ARCHITECTURES[name].name == name for name in NAMES)


def test_every_task_type_predicts_at_its_shape(model: MultiTaskModel, scenes: Batch) -> None:
    with torch.no_grad():
        out = model.eval()(scenes.images)
    assert set(out) == set(KINDS)
    for name in ("semseg", "depth", "normals", "edges"):
        assert out[name].shape[0] == 2 and out[name].shape[-2:] == SIZE, name
    assert out["classes"].shape == (2, 4) and out["lighting"].shape == (2, 3)
    assert len(out["objects"]) == 2 and {"boxes", "masks", "keypoints"} <= set(out["objects"][0])


def _task_gradients(model: MultiTaskModel, batch: Batch) -> dict[str, dict[str, bool]]:
    """For each task: which parameters its loss reaches (autograd gives a gradient, possibly a
    zero one: timm zero-initialises the last BatchNorm of each residual block, which blocks the
    gradient of the convolutions before it at initialisation, not their connection)."""
    torch.manual_seed(0)
    _, losses = model.train()(batch.images, batch)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    reached = {}
    for task, parts in losses.items():
        grads = torch.autograd.grad(parts["loss"], [p for _, p in named], retain_graph=True, allow_unused=True)
        reached[task] = {n: g is not None for (n, _), g in zip(named, grads)}
    return reached


def test_each_parameter_is_trained_by_its_tasks_only(model: MultiTaskModel, scenes: Batch) -> None:
    reached = _task_gradients(model, scenes)
    ids = {id(p): n for n, p in model.named_parameters()}
    own = {task: {ids[id(p)] for p in model.own_parameters(task)} for task in model.tasks}
    for task, hits in reached.items():
        strangers = {n for other in model.tasks if other != task for n in own[other]}
        assert not [n for n in strangers if hits[n]], f"{task} reaches other tasks' own parameters"
        assert any(hits[n] for n in own[task]) and any(hits[n] for n in hits if n not in own[task]), task
    untouched = [n for n in reached[next(iter(reached))] if not any(hits[n] for hits in reached.values())]
    assert not untouched, f"no task trains {untouched[:5]}"


def test_an_absent_task_has_no_loss(model: MultiTaskModel, scenes: Batch) -> None:
    present = {**scenes.present, "depth": torch.zeros(2, dtype=torch.bool)}
    batch = Batch(scenes.images, scenes.targets, present, scenes.meta)
    _, losses = model.train()(batch.images, batch)
    assert "depth" not in losses and set(losses) == set(KINDS) - {"depth"}


def test_state_dict_round_trip_reproduces_outputs(model: MultiTaskModel, scenes: Batch) -> None:
    twin = make(model.architecture.name, seed=1)
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        a, b = model.eval()(scenes.images), twin.eval()(scenes.images)
    for name in ("semseg", "depth", "normals", "edges", "classes"):
        assert torch.equal(a[name], b[name]), name


def test_parameter_counts_split_shared_from_each_task(model: MultiTaskModel) -> None:
    counts = model.parameter_counts()
    assert counts["shared"] + sum(counts[f"task/{t}"] for t in model.tasks) == counts["total"]
    assert all(counts[f"task/{t}"] >= counts[f"head/{t}"] > 0 for t in model.tasks)
