"""`mtvision config` (every key, default, comment), `data init` (a starter config that trains), and a
CLI that answers `--help` without importing torch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from mtvision.cli import COMMANDS, DATA_COMMANDS, app, data_app, load_all
from mtvision.cli.config_cmd import field_comments
from mtvision.config import load_config
from tests.cli.conftest import ok

COCO = "coco/wkentaro__labelme/examples/instance_segmentation/data_dataset_coco/annotations.json"
TINY = ["train.epochs=1", "data.image_size=32", "data.batch_size=4", "data.workers=0",
        "model.backbone=test_resnet.r160_in1k", "model.neck_channels=16", "train.predict_images=0",
        "train.warmup_epochs=0"]


def test_config_prints_every_key_with_its_comment_and_default(runner: CliRunner, tmp_path: Path) -> None:
    output = ok(runner, ["config", "train.epochs=3", "tasks.edges=null"])
    assert "  epochs: 3" in output and "# (default: 8) passes over the training split" in output
    assert "  lr: 0.002" in output and "# AdamW peak learning rate (after warmup)" in output
    assert "# (default" not in output.replace("# (default: 8)", "")  # only the changed key says so
    assert "edges" not in output.split("tasks:")[1].split("model:")[0]
    saved = tmp_path / "printed.yaml"
    saved.write_text(output)
    assert load_config(saved) == load_config(None, ["train.epochs=3", "tasks.edges=null"])  # YAML that loads back


def test_every_config_field_has_a_comment() -> None:
    from mtvision import config

    sections = [config.RunConfig, config.SyntheticConfig, config.DataConfig, config.ModelConfig,
                config.BalancingConfig, config.TrainConfig, config.LoggingConfig]
    comments = field_comments()
    missing = [f"{cls.__name__}.{name}" for cls in sections for name in cls.model_fields
               if not any(comments.get((cls.__name__, name), []))]
    assert not missing


def test_data_init_writes_a_config_that_trains(runner: CliRunner, tmp_path: Path, fixtures_dir: Path) -> None:
    output = ok(runner, ["data", "init", str(fixtures_dir / COCO)])
    written = tmp_path / "data_dataset_coco.yaml"
    assert f"wrote {written.name}: tasks objects (detection)" in output
    raw = yaml.safe_load(written.read_text())
    assert raw["tasks"] == {"objects": {"type": "detection", "options": {"masks": True}}}
    assert raw["run"]["name"] == "data_dataset_coco"
    assert runner.invoke(app, ["data", "init", str(fixtures_dir / COCO)]).exit_code == 2  # no silent overwrite
    assert "run saved to" in ok(runner, ["train", str(written), *TINY])


def test_train_help_points_to_the_config_command(runner: CliRunner) -> None:
    assert "mtvision config" in " ".join(ok(runner, ["train", "--help"]).split())


def test_the_command_tables_match_the_commands() -> None:
    """`--help` lists commands from tables (no imports); they must say what the commands say."""
    load_all()

    def first_lines(group: typer.Typer) -> dict[str, str]:
        names = {}
        for info in group.registered_commands:
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            names[name] = (info.help or info.callback.__doc__ or "").strip().splitlines()[0]
        return names

    assert first_lines(app) == {name: help for name, (_, help) in COMMANDS.items()}
    assert first_lines(data_app) == {name: help for name, (_, help) in DATA_COMMANDS.items()}


def test_help_answers_without_importing_torch() -> None:
    """Before: `mtvision --help` imported torch, timm and every command (7.6 s on a quiet machine)."""
    code = ("import sys, time; t = time.perf_counter(); from mtvision.cli import app; from typer.testing import "
            "CliRunner; r = CliRunner().invoke(app, ['train', '--bogus']); assert r.exit_code == 2, r.output; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print(time.perf_counter() - t, 'torch' in sys.modules)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"  # the measure that does not depend on the machine's load
    assert time.perf_counter() - start < 10  # generous: about 0.5 s on a quiet machine, 13 s before
