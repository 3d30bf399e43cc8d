"""``train.distill`` (Learning without Forgetting): the targets are the old model's predictions on the
same augmented batch, they enter the step as those tasks' losses, and bad task lists are refused."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader

from mtvision.balancing import create
from mtvision.balancing.backward import task_parameters
from mtvision.data.dataset import collate
from mtvision.engine.distill import Distiller, check_tasks
from mtvision.engine.optim import build_optimizer, build_scheduler
from mtvision.engine.step import StepParts, train_step

torch.set_num_threads(1)
OLD = {"lighting": "classification", "semseg": "semantic_segmentation", "depth": "depth"}
NEW = {**OLD, "normals": "normals"}


def _parts(model, distill) -> StepParts:
    optimizer = build_optimizer(model, 1e-3, 0.0)
    return StepParts(optimizer=optimizer, scheduler=build_scheduler(optimizer, 0, 10),
                     scaler=torch.amp.GradScaler("cpu", enabled=False), method=create("ew", num_tasks=len(NEW)),
                     params=task_parameters(model), distill=distill)


def _normals_only_batch(records, make_dataset):
    """A batch of the new data: augmented (random flips), labelled for normals only."""
    dataset = make_dataset(records[0], True, {"normals": "normals"})
    return next(iter(DataLoader(dataset, batch_size=6, collate_fn=collate)))


def test_targets_are_the_old_models_predictions_on_the_same_augmented_batch(records, make_model, make_dataset,
                                                                           monkeypatch) -> None:
    teacher, student = make_model(records[0], seed=0, tasks=OLD), make_model(records[0], seed=1, tasks=NEW)
    distiller = Distiller(teacher, list(OLD), weight=0.5)
    seen = {}
    original = Distiller.targets
    monkeypatch.setattr(Distiller, "targets", lambda self, images: seen.setdefault("t", original(self, images)))
    batch = _normals_only_batch(records, make_dataset)
    values = train_step(student, batch, _parts(student, distiller))

    with torch.no_grad():
        expected = teacher.eval()(batch.images)  # the old model, on exactly the images the step saw
    assert set(seen["t"]) == set(OLD)
    for name in OLD:
        assert torch.equal(seen["t"][name], expected[name]), name
        assert values[f"{name}/loss"] > 0  # old tasks have a loss although the batch has no label of theirs
    assert values["normals/loss"] > 0


def test_a_copy_of_the_old_model_has_zero_distillation_loss(records, make_model, make_dataset) -> None:
    """KL, L1 (and cosine) vanish when the new model predicts what the old one did."""
    teacher = make_model(records[0], seed=0, tasks=OLD)
    student = copy.deepcopy(teacher).eval()
    batch = _normals_only_batch(records, make_dataset)
    with torch.no_grad():
        losses = Distiller(teacher, list(OLD))(student, student.features(batch.images), batch)
    assert set(losses) == set(OLD)
    for name, loss in losses.items():
        assert float(loss) == pytest.approx(0.0, abs=1e-5), name


def test_labelled_images_use_their_labels_not_the_old_model(records, make_model, make_dataset) -> None:
    teacher, student = make_model(records[0], seed=0, tasks=OLD), make_model(records[0], seed=1, tasks=NEW)
    batch = next(iter(DataLoader(make_dataset(records[0], True, NEW), batch_size=4, collate_fn=collate)))
    assert Distiller(teacher, list(OLD))(student, student.features(batch.images), batch) == {}


def test_distilled_tasks_must_exist_in_both_models(records, make_model) -> None:
    teacher, student = make_model(records[0], seed=0, tasks=OLD), make_model(records[0], seed=1, tasks=NEW)
    with pytest.raises(ValueError, match=r"'normals' is not a task of the old model \(it has: lighting, semseg, "
                                         r"depth\); fix train.distill.tasks"):
        check_tasks(teacher, student, ["depth", "normals"], "train.distill (old.pt)")
    with pytest.raises(ValueError, match="'lighting' is not a configured task"):
        check_tasks(teacher, make_model(records[0], tasks={"depth": "depth"}), ["lighting"], "x")
