"""Balancing in training: gradient methods end to end, UW in the optimizer, config and CLI names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.balancing import create
from mtvision.cli.build import balancing_method
from mtvision.config import ConfigError, load_config
from mtvision.data.dataset import collate
from mtvision.engine.loggers import read_results
from mtvision.engine.step import train_step
from mtvision.engine.trainer import BalancingSettings, Trainer, TrainSettings


@pytest.mark.parametrize(("method", "gradients", "every"), [("pcgrad", "parameters", 1),
                                                             ("mgda_ub", "representation", 2)])
def test_gradient_method_logs_weights_norms_cosines_and_plots(records, make_model, make_dataset, tmp_path: Path,
                                                              method: str, gradients: str, every: int) -> None:
    model = make_model(records[0])
    settings = TrainSettings(epochs=1, batch_size=4, predict_images=0,
                             balancing=BalancingSettings(gradients=gradients, every=every))  # type: ignore[arg-type]
    Trainer(model, make_dataset(records[0], True), make_dataset(records[1], False), settings, tmp_path,
            method=create(method, num_tasks=len(model.tasks))).fit()
    row = read_results(tmp_path / "results.csv")[-1]
    for column in ("train/depth/weight", "balance/depth/weight", "balance/semseg/grad_norm",
                   "balance/lighting~semseg/cosine", "balance/depth~normals/cosine"):
        assert column in row, column
    assert -1.0 <= row["balance/depth~normals/cosine"] <= 1.0
    assert (tmp_path / "balance.png").is_file() and (tmp_path / "conflicts.png").is_file()


def test_uw_log_variances_are_optimised_without_decay(records, make_model, make_dataset, tmp_path: Path) -> None:
    model = make_model(records[0])
    method = create("uw", num_tasks=len(model.tasks))
    trainer = Trainer(model, make_dataset(records[0], True), make_dataset(records[1], False),
                      TrainSettings(batch_size=4, weight_decay=0.1, warmup_epochs=0), tmp_path, method=method)
    groups = [g for g in trainer.parts.optimizer.param_groups if any(p is method.log_vars for p in g["params"])]
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    batch = collate([make_dataset(records[0], train=False)[i] for i in range(4)])
    values = train_step(trainer.model, batch, trainer.parts)
    assert values["skipped"] == 0.0
    assert not torch.equal(method.log_vars.detach(), torch.zeros(len(model.tasks)))


def test_unknown_method_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown balancing method 'pcgard'; did you mean 'pcgrad'\?"):
        load_config(None, ["balancing.method=pcgard"])
    with pytest.raises(ConfigError, match=r"has no option 'temprature'; its options: temperature"):
        load_config(None, ["balancing.method=dwa", "balancing.options={temprature: 1}"])
    assert load_config(None, ["balancing.method=Nash-MTL"]).balancing.method == "nash_mtl"


def test_fixed_weights_by_task_name_become_the_method_option(records) -> None:
    cfg = load_config(None, ["balancing.method=fixed", "balancing.weights={depth: 0.5}"])
    infos = {name: records[0].tasks[name] for name in ("semseg", "depth", "normals")}
    weights = balancing_method(cfg, infos).weigh(torch.ones(3))  # type: ignore[operator]
    assert weights.tolist() == [1.0, 0.5, 1.0]
