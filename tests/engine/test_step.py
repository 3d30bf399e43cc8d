"""train_step: losses, weights and grad norm as floats; non-finite losses skip the step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mtvision.balancing import create
from mtvision.balancing.backward import task_parameters
from mtvision.data.dataset import collate
from mtvision.engine.optim import build_optimizer, build_scheduler
from mtvision.engine.step import NonFiniteLossError, StepParts, train_step
from mtvision.engine.trainer import Trainer, TrainSettings


def _parts(model: torch.nn.Module, weights: list[float]) -> StepParts:
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0)
    return StepParts(optimizer, build_scheduler(optimizer, 0, 10), torch.amp.GradScaler("cpu", enabled=False),
                     create("fixed", num_tasks=len(weights), weights=weights), task_parameters(model))


@pytest.fixture()
def setup(records, make_model, make_dataset):
    model = make_model(records[0])
    batch = collate([make_dataset(records[0], train=False)[i] for i in range(4)])
    return model, batch


def test_step_reports_weighted_losses_and_updates(setup) -> None:
    model, batch = setup
    before = [p.detach().clone() for p in model.parameters()]
    values = train_step(model, batch, _parts(model, [1.0, 2.0, 0.5, 3.0]))
    names = list(model.tasks)
    assert values["skipped"] == 0.0
    assert [values[f"{n}/weight"] for n in names] == [1.0, 2.0, 0.5, 3.0]
    weighted = sum(values[f"{n}/weight"] * values[f"{n}/loss"] for n in names)
    assert values["loss"] == pytest.approx(weighted, rel=1e-5)
    assert values["grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_nonfinite_loss_skips_the_step_with_a_warning(setup, monkeypatch) -> None:
    model, batch = setup
    monkeypatch.setattr(model.tasks["depth"], "loss", lambda prediction, target: {"loss": prediction.sum() * math.nan})
    before = [p.detach().clone() for p in model.parameters()]
    parts = _parts(model, [1.0] * 4)
    with pytest.warns(RuntimeWarning, match="depth=nan"):
        values = train_step(model, batch, parts)
    assert values["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not parts.optimizer.state  # AdamW moments untouched too


def test_trainer_stops_after_consecutive_nonfinite_steps(records, make_model, make_dataset, monkeypatch,
                                                          tmp_path: Path) -> None:
    model = make_model(records[0])
    monkeypatch.setattr(model.tasks["normals"], "loss", lambda prediction, target: {"loss": prediction.sum() / 0.0})
    settings = TrainSettings(epochs=2, batch_size=2, max_nonfinite=3, predict_images=0)
    trainer = Trainer(model, make_dataset(records[0], True), make_dataset(records[1], False), settings, tmp_path)
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteLossError, match=r"3 consecutive.*normals"):
        trainer.fit()


def test_mixed_precision_step_with_loss_scaling(setup) -> None:
    """The CUDA fp16 path (autocast + GradScaler) exercised on the CPU with bf16."""
    model, batch = setup
    parts = _parts(model, [1.0] * 4)
    parts.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    parts.amp_dtype = torch.bfloat16
    before = [p.detach().clone() for p in model.parameters()]
    values = train_step(model, batch, parts)
    assert values["skipped"] == 0.0 and math.isfinite(values["loss"])
    assert 0 < values["grad_norm"] < 1e4  # unscaled before clipping and logging
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
