"""``model.freeze`` and ``train.lr_mult``: frozen tensors and BatchNorm statistics unchanged by training,
multipliers in the optimizer's groups and in results.csv, unknown parts named with the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mtvision.engine.freeze import freeze, frozen_norms
from mtvision.engine.loggers import read_results
from mtvision.engine.optim import build_optimizer, build_scheduler
from mtvision.engine.parts import model_parts
from mtvision.engine.trainer import BalancingSettings, Trainer, TrainSettings

torch.set_num_threads(1)
TASKS = {"semseg": "semantic_segmentation", "depth": "depth"}


def _fit(model, make_dataset, records, tmp_path: Path, **settings) -> list[dict]:
    train, val = records
    trainer = Trainer(model, make_dataset(train, True, TASKS), make_dataset(val, False, TASKS),
                      TrainSettings(epochs=1, batch_size=4, warmup_epochs=0, predict_images=0, lr=1e-2,
                                    balancing=BalancingSettings(diagnostics=False), **settings), tmp_path / "run")
    trainer.fit()
    return read_results(tmp_path / "run" / "results.csv")


def test_frozen_tensors_and_batchnorm_statistics_are_unchanged(records, make_model, make_dataset,
                                                               tmp_path: Path) -> None:
    model = make_model(records[0], tasks=TASKS)
    frozen = freeze(model, ["backbone", "heads.depth"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = frozen_norms(model)
    assert norms and all(n.startswith("architecture.backbone.") for n in norms)
    model.train()  # what the trainer does every epoch: frozen BatchNorm stays in eval mode
    assert not any(m.training for n, m in model.named_modules() if n in norms)
    assert model.architecture.neck.training

    _fit(model, make_dataset, records, tmp_path)
    after = model.state_dict()
    stays = [k for k in after if k.startswith(("architecture.backbone.", "tasks.depth."))]
    assert set(frozen) < set(stays) and any("running_mean" in k for k in stays)
    for key in stays:  # weights and BatchNorm running statistics, bit for bit
        assert torch.equal(after[key], before[key]), key
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("architecture.neck."))
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("tasks.semseg."))


def test_stage_names_follow_the_trunk_under_another_architecture(records, make_model) -> None:
    model = make_model(records[0], tasks=TASKS, architecture="mtan")
    parts = model_parts(model)
    assert parts["backbone"] == ["architecture.trunk"]
    assert parts["backbone.layer2"] == ["architecture.trunk.stages.1.layer2"]
    frozen = freeze(model, ["backbone.layer1"])
    assert frozen and all(name.startswith("architecture.trunk.stages.0.layer1.") for name in frozen)
    assert all(isinstance(m, _BatchNorm) for n, m in model.named_modules() if n in frozen_norms(model))


def test_an_unknown_part_lists_the_valid_ones(records, make_model) -> None:
    model = make_model(records[0], tasks=TASKS)
    with pytest.raises(ValueError, match=r"model.freeze: unknown part 'backbon'; did you mean 'backbone'\?.*"
                                         r"heads.semseg, heads.depth"):
        freeze(model, ["backbon"])
    with pytest.raises(ValueError, match="train.lr_mult: unknown part 'heads.normals'"):
        build_optimizer(model, 1e-3, 0.0, lr_mult={"heads.normals": 2.0})


def test_lr_multipliers_reach_the_optimizer_groups(records, make_model) -> None:
    model = make_model(records[0], tasks=TASKS)
    mult = {"backbone": 0.1, "backbone.layer4": 0.5, "heads.depth": 2.0}
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=1e-4, lr_mult=mult)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        group = group_of[id(parameter)]
        want = "backbone.layer4" if ".body.layer4." in name else "backbone" if name.startswith(
            "architecture.backbone.") else "heads.depth" if name.startswith("tasks.depth.") else "default"
        assert group["name"] == want, name
        assert group["lr"] == pytest.approx(1e-3 * mult.get(want, 1.0))
        assert group["weight_decay"] == (1e-4 if parameter.ndim >= 2 else 0.0)
    assert optimizer.param_groups[0]["name"] == "default"
    scheduler = build_scheduler(optimizer, warmup_steps=0, total_steps=10)
    optimizer.step(), scheduler.step()  # the schedule scales every group by one factor
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates["backbone"] / rates["default"] == pytest.approx(0.1)


def test_group_rates_are_logged(records, make_model, make_dataset, tmp_path: Path) -> None:
    model = make_model(records[0], tasks=TASKS)
    (row,) = _fit(model, make_dataset, records, tmp_path, lr_mult={"backbone": 0.1})
    assert row["lr/backbone"] == pytest.approx(0.1 * row["lr/default"]) and row["lr"] == row["lr/default"]
