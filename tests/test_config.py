"""Config: YAML + key=value overrides, typed, with errors that name the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtvision.config import Config, ConfigError, dump_config, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_unknown_key_suggests_the_closest_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epoch' — did you mean 'train\.epochs'\?"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"unknown key 'tasks\.depth\.optons' — did you mean 'tasks\.depth\.opt"):
        load_config(None, ["tasks.depth.optons={loss: silog}"])
    with pytest.raises(ConfigError, match=r"unknown key 'modle' — did you mean 'model'"):
        load_config(None, ["modle.backbone=resnet18"])


def test_wrong_type_names_the_field_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  synthetic:\n    num_train: many\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: data.synthetic.num_train: Input should be a valid integer")
    with pytest.raises(ConfigError, match=r"run\.device: String should match pattern"):
        load_config(None, ["run.device=gpu"])


def test_overrides_are_yaml_scalars() -> None:
    cfg = load_config(None, ["data.image_size=[48, 64]", "train.grad_clip=null", "train.amp=off",
                             "tasks.edges=null", "tasks.depth.options={loss: silog}", "model.pretrained=true"])
    assert cfg.data.image_size == (48, 64) and cfg.train.grad_clip is None and cfg.train.amp == "off"
    assert "edges" not in cfg.tasks and cfg.tasks["depth"].options == {"loss": "silog"}
    assert cfg.model.pretrained is True
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(None, ["train.epochs"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.epochs=2", "tasks.lighting=null"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_demo_yaml_is_the_default_but_the_best_metric_its_budget_and_examples_load() -> None:
    demo = load_config(CONFIGS / "demo.yaml")
    assert demo.train.best_metric == "val/semseg/miou" and Config().train.best_metric is None
    assert demo.train.eval_every == 2 and Config().train.eval_every == 1  # the demo's time budget
    assert demo.train.epochs == 7 and Config().train.epochs == 8  # likewise
    demo.train.best_metric, demo.train.eval_every, demo.train.epochs = None, 1, 8
    assert demo == Config()
    for path in CONFIGS.glob("*.yaml"):
        load_config(path)
