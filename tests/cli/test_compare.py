"""``mtvision compare`` end to end on a tiny config: every output, Δm from the files, resume,
the test split kept out of selection, and clear errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data import dataset as dataset_module
from mtvision.engine.trainer import Trainer

torch.set_num_threads(1)

TINY = ["data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.synthetic.num_test=8",
        "data.synthetic.size=32", "data.image_size=32", "data.batch_size=8", "model.neck_channels=16",
        "train.epochs=1", "train.predict_images=0", "train.warmup_epochs=0", "balancing.diagnostics=false",
        "tasks.classes=null", "tasks.lighting=null", "tasks.normals=null", "tasks.edges=null", "tasks.objects=null"]
COSTS = ("params", "flops", "latency_ms", "throughput", "peak_memory_mb", "train_step_ms", "checkpoint_mb")


def _run(runner: CliRunner, args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, ["compare", *args])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_compare_writes_every_output_and_resumes(runner: CliRunner, tmp_path: Path) -> None:
    code, output = _run(runner, [*TINY, "--tasks", "semseg,depth"])
    assert code == 0, output
    assert "model 1 of 3" in output and "model 3 of 3" in output
    root = tmp_path / "runs" / "demo" / "compare"
    for name in ("compare.json", "compare.csv", "report.md", "compare.png"):
        assert (root / name).stat().st_size > 0, name
    summary = json.loads((root / "compare.json").read_text())
    assert summary["tasks"]["depth"] == {"abs_err": False, "abs_rel": False, "rmse": False, "delta1": True}
    models = summary["models"]
    assert set(models) == {"multitask", "single/semseg", "single/depth", "separate"}
    for name in ("multitask", "single/semseg", "single/depth"):
        assert all(key in models[name] for key in ("metrics", "std", *COSTS)), name
    # One model shares its trunk: fewer parameters than the two it replaces, whose sum "separate" is.
    assert models["separate"]["params"] == models["single/semseg"]["params"] + models["single/depth"]["params"]
    assert models["multitask"]["params"] < models["separate"]["params"]
    assert _delta_m_from(summary) == pytest.approx(summary["delta_m"]["multitask"]["mean"])
    with (root / "compare.csv").open() as f:
        assert [row["model"] for row in csv.DictReader(f)] == ["multitask", "single/semseg", "single/depth", "separate"]
    assert "Δm" in (root / "report.md").read_text()
    # A second call trains nothing: every model's test.json is reused, and the numbers are the same.
    again, output = _run(runner, [*TINY, "--tasks", "semseg,depth"])
    assert again == 0 and "Epoch" not in output and "epoch 1/1" not in output
    assert json.loads((root / "compare.json").read_text())["delta_m"] == summary["delta_m"]


def _delta_m_from(summary: dict) -> float:
    """Δm written out from the file's own numbers (one seed): mean over tasks of mean signed change."""
    multi = summary["models"]["multitask"]["metrics"]
    changes = []
    for task, metrics in summary["tasks"].items():
        single = summary["models"][f"single/{task}"]["metrics"]
        per_metric = [(multi[f"{task}/{m}"] - single[f"{task}/{m}"]) / single[f"{task}/{m}"] * (1 if up else -1)
                      for m, up in metrics.items() if single[f"{task}/{m}"] != 0]
        changes.append(100 * sum(per_metric) / len(per_metric))
    return sum(changes) / len(changes)


def test_the_test_split_is_never_loaded_while_training(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[tuple[bool, str]] = []  # (during fit, file) of every sample the datasets load
    training = {"now": False}
    original_load, original_fit = dataset_module.load_sample, Trainer.fit

    def logged_load(record, image, tasks=None):
        loaded.append((training["now"], str(record.image_path(image))))
        return original_load(record, image, tasks)

    def logged_fit(self):
        training["now"] = True
        try:
            return original_fit(self)
        finally:
            training["now"] = False

    monkeypatch.setattr(dataset_module, "load_sample", logged_load)
    monkeypatch.setattr(Trainer, "fit", logged_fit)
    code, output = _run(runner, [*TINY, "--tasks", "depth"])
    assert code == 0, output
    test_files = {path for during, path in loaded if not during and "/test/" in path}
    assert len(test_files) == 8  # scored once per model, after training
    assert not {path for during, path in loaded if during} & test_files


@pytest.mark.parametrize(("args", "message"), [
    (["--tasks", "semseg,dpeth"], "--tasks names dpeth, not configured tasks"),
    (["data.label_fraction.depth=1.5"], "label fractions must be in (0, 1]"),
    (["data.label_fraction.flow=0.5", "--tasks", "depth"], "label_fraction names flow, not tasks of the dataset"),
])
def test_bad_input_is_named(runner: CliRunner, args: list[str], message: str) -> None:
    code, output = _run(runner, [*TINY, *args])
    assert code != 0 and message in " ".join(output.split()), output


def test_a_baseline_made_with_another_backbone_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    theirs = tmp_path / "runs" / "theirs" / "compare" / "seed0" / "single-depth"
    theirs.mkdir(parents=True)
    (theirs / "config.yaml").write_text("model: {backbone: resnet18}\n")
    code, output = _run(runner, [*TINY, "--tasks", "depth", "--baseline", str(tmp_path / "runs" / "theirs")])
    assert code != 0 and "was made with another model section" in " ".join(output.split()), output
