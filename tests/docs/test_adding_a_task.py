"""docs/adding_a_task.md runs as written: its python block as a user's task module, its yaml
block as the config, then ``mtvision train`` (one epoch), ``val`` and ``predict``."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.synthetic import render_scene
from mtvision.engine.loggers import read_results

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding_a_task.md"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture()
def guide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, dict]]:
    """The guide's module saved where its config's import path points, on sys.path; the config."""
    text = GUIDE.read_text()
    modules, configs = code_blocks(text, "python"), code_blocks(text, "yaml")
    assert len(modules) == 1 and len(configs) == 1, "the guide holds exactly one python and one yaml block"
    config = yaml.safe_load(configs[0])
    custom = [task["type"] for task in config["tasks"].values() if ":" in task["type"]]
    assert len(custom) == 1, "the config names the guide's task type by import path"
    module_name = custom[0].partition(":")[0]
    package, _, module = module_name.rpartition(".")
    folder = tmp_path.joinpath(*package.split(".")) if package else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / f"{module}.py").write_text(modules[0])
    (tmp_path / "foreground.yaml").write_text(configs[0])
    top = module_name.split(".")[0]
    forget_modules(top)  # a module of that name imported before would shadow the guide's
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the config's relative runs/ and .cache/ land in the temporary folder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared CPU: one thread is fastest
    yield tmp_path / "foreground.yaml", config
    torch.set_num_threads(threads)
    forget_modules(top)


def forget_modules(top: str) -> None:
    for name in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
        del sys.modules[name]


def run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_guide_trains_evaluates_and_predicts(guide: tuple[Path, dict], tmp_path: Path) -> None:
    config_path, config = guide
    task, = [name for name, spec in config["tasks"].items() if ":" in spec["type"]]
    best_metric = config["train"]["best_metric"]
    assert best_metric.startswith(f"val/{task}/")

    output = run(["train", str(config_path)])
    run_dir = tmp_path / config["run"]["output"] / config["run"]["name"]
    rows = read_results(run_dir / "results.csv")
    assert [row["epoch"] for row in rows] == [1]
    for metric in ("iou", "f1", "pixel_acc"):
        assert 0.0 <= rows[0][f"val/{task}/{metric}"] <= 1.0, metric
    assert math.isfinite(rows[0][f"train/{task}/loss"])
    assert "final validation vs constant baselines" in output and "iou" in output
    assert len(list((run_dir / "predictions" / "final").glob("*.png"))) == config["train"]["predict_images"]

    best = run_dir / "weights" / "best.pt"
    evaluation = run(["val", str(best)])
    iou = re.search(r"\biou\s*│\s*([0-9.]+)", evaluation)
    assert iou, evaluation
    assert float(iou.group(1)) == pytest.approx(rows[0][best_metric], abs=1e-4)  # same split, same weights

    photos = tmp_path / "photos"
    photos.mkdir()
    for seed, size in ((1000, (32, 32)), (1001, (40, 56))):  # one of another size: mapped back onto it
        image = render_scene(seed, size=size).image.permute(1, 2, 0).numpy()
        Image.fromarray(image).save(photos / f"{seed}.png")
    run(["predict", str(best), "--source", str(photos), "--out", str(tmp_path / "out")])
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(predictions) == ["1000.png", "1001.png"]
    for name, entry in predictions.items():
        assert 0.0 <= entry[task]["foreground_fraction"] <= 1.0
        probability = np.load(tmp_path / "out" / task / name.replace(".png", ".npy"))
        with Image.open(photos / name) as original, Image.open(tmp_path / "out" / task / name) as drawn:
            assert probability.shape == (original.height, original.width) and drawn.size == original.size
        assert probability.dtype == np.float32 and 0.0 <= probability.min() <= probability.max() <= 1.0
