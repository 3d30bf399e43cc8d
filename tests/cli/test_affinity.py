"""``mtvision affinity`` end to end on a tiny config: every output, a groups.yaml that trains,
and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.config import load_config

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=8", "model.neck_channels=16", "train.epochs=1", "train.predict_images=0",
        "train.warmup_epochs=0", "balancing.diagnostics=false", "tasks.classes=null", "tasks.lighting=null",
        "tasks.edges=null", "tasks.objects=null"]  # semseg, depth, normals


def _run(runner: CliRunner, args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_affinity_writes_every_output_and_a_groups_yaml_that_trains(runner: CliRunner, tmp_path: Path) -> None:
    code, output = _run(runner, ["affinity", *TINY, "--epochs", "1", "--groups", "2"])
    assert code == 0, output
    root = tmp_path / "runs" / "demo" / "affinity"
    data = json.loads((root / "affinity.json").read_text())
    assert data["tasks"] == ["semseg", "depth", "normals"]
    assert len(data["affinity"]) == 3 and all(len(row) == 3 for row in data["affinity"])
    assert all(isinstance(v, float) for row in data["affinity"] for v in row)  # 2 steps, every task labelled
    assert data["cosine"][0][0] == pytest.approx(1.0) and data["cosine"][0][1] == pytest.approx(data["cosine"][1][0])
    assert list(data["groups"]) == ["2"] and sorted(t for g in data["groups"]["2"] for t in g) == sorted(data["tasks"])
    assert isinstance(data["score"]["2"], float) and data["recommended"] == 2
    assert data["steps"] == data["probes"] == 2 and data["cost_ratio"] > 1
    assert (root / "affinity.png").stat().st_size > 10_000
    assert "Most mutual help" in output or "No pair of tasks helps" in output
    assert f"mtvision train {Path('runs/demo/affinity/groups.yaml')}" in output
    # groups.yaml: the user's config (TINY, not the short run's 300 scenes) with the branched model.
    groups = root / "groups.yaml"
    cfg = load_config(groups)
    assert cfg.model.architecture == "branched" and cfg.model.branches == data["groups"]["2"]
    assert cfg.model.branch_at == 3  # test_resnet has 4 stages: all but the last shared
    assert cfg.data.synthetic.num_train == 16 and cfg.run.name == "demo_k2"
    assert "model.branches=" in groups.read_text().splitlines()[2]  # the override form, for another config
    code, output = _run(runner, ["train", str(groups)])
    assert code == 0, output
    assert (tmp_path / "runs" / "demo_k2" / "weights" / "last.pt").is_file()
    card = json.loads((tmp_path / "runs" / "demo_k2" / "model.json").read_text())
    assert "branched" in json.dumps(card)


def test_every_k_by_default_and_the_best_one_in_groups_yaml(runner: CliRunner, tmp_path: Path) -> None:
    code, output = _run(runner, ["affinity", *TINY, "tasks.normals=null", "--epochs", "1", "--every", "2",
                                 "--overlap"])
    assert code == 0, output
    data = json.loads((tmp_path / "runs" / "demo" / "affinity" / "affinity.json").read_text())
    assert list(data["groups"]) == ["1", "2"] and data["groups"]["2"] == [["semseg"], ["depth"]]
    assert data["score"]["2"] == 0.0 and data["probes"] == 1 and data["steps"] == 2  # steps 0 (probed) and 1
    assert data["recommended"] == (1 if data["score"]["1"] >= data["score"]["2"] else 2)  # ties: fewer groups
    assert "overlapping_groups" in data


@pytest.mark.parametrize("args, message", [
    (["--groups", "0"], "--groups 0: choose 1 to 3 groups"),
    (["--groups", "4"], "--groups 4: choose 1 to 3 groups"),
    (["tasks.depth=null", "tasks.normals=null"], "needs at least two tasks; the config has 1 (semseg)"),
    (["--every", "0"], "--every 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(runner: CliRunner, tmp_path: Path, args: list[str],
                                               message: str) -> None:
    result = runner.invoke(app, ["affinity", *TINY, *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / ".cache").exists()  # refused before any scene was rendered


def test_groups_yaml_header_names_the_override_form(runner: CliRunner, tmp_path: Path) -> None:
    code, output = _run(runner, ["affinity", *TINY, "tasks.normals=null", "--epochs", "1", "--groups", "1",
                                 "--branch-at", "2"])
    assert code == 0, output
    text = (tmp_path / "runs" / "demo" / "affinity" / "groups.yaml").read_text()
    body = yaml.safe_load(text)
    assert body["model"]["branches"] == [["semseg", "depth"]] and body["model"]["branch_at"] == 2
