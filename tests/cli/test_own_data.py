"""A new user's first hour: a dataset path alone trains its own tasks; every file in configs/ runs;
offline and missing-package settings fail before training with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.cli import validate as validate_module
from mtvision.config import ConfigError, load_config
from mtvision.engine.loggers import read_results
from tests.cli.conftest import ok

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
COCO = "coco/wkentaro__labelme/examples/instance_segmentation/data_dataset_coco/annotations.json"
# The smallest run of any config: one epoch, a tiny trunk, few small synthetic scenes.
TINY = ["train.epochs=1", "data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.size=32",
        "data.image_size=32", "data.batch_size=4", "data.workers=0", "model.backbone=test_resnet.r160_in1k",
        "model.neck_channels=16", "train.predict_images=1", "train.warmup_epochs=0"]


def test_a_coco_export_alone_trains_its_own_tasks(runner: CliRunner, tmp_path: Path, fixtures_dir: Path) -> None:
    """Before: the seven demo tasks stayed configured ('not in the dataset') until each was set to null."""
    output = ok(runner, ["train", f"data.source={fixtures_dir / COCO}", *TINY])
    assert "1 task (objects)" in output
    saved = yaml.safe_load((tmp_path / "runs" / "demo" / "config.yaml").read_text())
    assert saved["tasks"] == {"objects": {"type": "detection", "options": {"masks": True}}}  # polygons: masks
    rows = read_results(tmp_path / "runs" / "demo" / "results.csv")
    assert "val/objects/segm_ap50" in rows[-1] and "train/objects/loss" in rows[-1]


def test_task_overrides_edit_the_datasets_tasks(runner: CliRunner, tmp_path: Path, fixtures_dir: Path) -> None:
    ok(runner, ["train", f"data.source={fixtures_dir / COCO}", "tasks.objects.options.masks=false", *TINY])
    saved = yaml.safe_load((tmp_path / "runs" / "demo" / "config.yaml").read_text())
    assert saved["tasks"]["objects"]["options"] == {"masks": False}


def test_without_a_source_the_demo_tasks_stay() -> None:
    assert len(load_config(None, []).tasks) == 7
    assert load_config(None, ["data.source=x.json"]).tasks == "auto"  # resolved by the CLI, which reads x.json
    with pytest.raises(ConfigError, match="edit the dataset's own tasks"):
        load_config(None, ["data.source=x.json", "tasks.x=null"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_runs_one_tiny_epoch(path: Path, runner: CliRunner, tmp_path: Path,
                                          request: pytest.FixtureRequest) -> None:
    """Each example config trains as written but for its size (and a placeholder source: a real export)."""
    config = yaml.safe_load(path.read_text())
    overrides = [*TINY, f"run.output={tmp_path / 'runs'}"]
    source = config.get("data", {}).get("source", "synthetic")
    if source == "data/mine/annotations.json":  # the own-data example's placeholder: a real COCO export
        overrides.append(f"data.source={request.getfixturevalue('fixtures_dir') / COCO}")
    elif source != "synthetic":
        paths = [entry["path"] if isinstance(entry, dict) else entry for entry in
                 (source if isinstance(source, list) else [source])]
        if not all(Path(p).exists() for p in paths):
            pytest.skip(f"{path.name} needs its dataset ({', '.join(paths)}), which is not here")
    output = ok(runner, ["train", str(path), *overrides])
    assert "run saved to" in output


def test_tensorboard_without_the_package_fails_before_training(runner: CliRunner, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = validate_module.importlib.util.find_spec
    monkeypatch.setattr(validate_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = runner.invoke(app, ["train", *TINY, "logging.tensorboard=true"])
    assert result.exit_code == 2 and "pip install tensorboard" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / ".cache").exists()  # nothing rendered


def test_pretrained_offline_fails_fast_in_one_line(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "_in_hub_cache", lambda repo: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["train", *TINY, "model.backbone=resnet50", "model.pretrained=true"])
    assert result.exit_code == 2
    assert "model.pretrained: true downloads the ImageNet weights of resnet50" in result.output
    assert "HF_HUB_OFFLINE is set" in result.output and "Traceback" not in result.output
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(validate_module, "reachable", lambda url, timeout=3.0: False)
    result = runner.invoke(app, ["train", *TINY, "model.backbone=resnet50", "model.pretrained=true"])
    assert result.exit_code == 2 and "https://huggingface.co cannot be reached" in result.output
