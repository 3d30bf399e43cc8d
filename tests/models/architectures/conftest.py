"""Shared fixtures of the architecture tests: every synthetic task on two rendered scenes,
and a tiny model of every task type (detection with masks and keypoints) per architecture."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.dataset import collate
from mtvision.data.synthetic import render_scene, synthetic_tasks
from mtvision.models import MultiTaskModel, TaskSpec, build_model
from mtvision.structures import Batch

BACKBONE = "test_resnet.r160_in1k"
SIZE = (64, 64)
INFOS = synthetic_tasks()
KINDS = {"classes": "classification", "lighting": "classification", "semseg": "semantic_segmentation",
         "depth": "depth", "normals": "normals", "edges": "edges", "objects": "detection"}
DETECTION = {"masks": True, "keypoints": True, "proposals": 50, "rois_per_image": 16, "sampling_ratio": 1}
# One tiny epoch of semseg, depth and detection through `mtvision train`.
TINY = ["data.synthetic.num_train=16", "data.synthetic.num_val=8", "data.synthetic.size=32", "data.image_size=32",
        "data.batch_size=8", "model.neck_channels=16", "train.epochs=1", "train.predict_images=0",
        "train.warmup_epochs=0", "balancing.diagnostics=false", "train.best_metric=val/semseg/miou",
        "tasks.classes=null", "tasks.lighting=null", "tasks.normals=null", "tasks.edges=null"]
# Options an architecture needs beyond its defaults to build over the tasks above.
REQUIRED: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "branched": lambda tasks: {"branches": [tasks[: len(tasks) // 2], tasks[len(tasks) // 2:]], "branch_at": 2},
}


def specs(tasks: list[str] | None = None) -> dict[str, TaskSpec]:
    names = tasks or list(KINDS)
    return {name: TaskSpec(KINDS[name], INFOS[name], DETECTION if name == "objects" else {}) for name in names}


def make(architecture: str, tasks: list[str] | None = None, seed: int = 0,
         options: Mapping[str, Any] | None = None) -> MultiTaskModel:
    """A deterministic tiny model of ``architecture`` over ``tasks`` (default: all seven)."""
    torch.manual_seed(seed)
    task_specs = specs(tasks)
    merged = {**REQUIRED.get(architecture, lambda _: {})(list(task_specs)), **(options or {})}
    return build_model(BACKBONE, task_specs, neck_channels=16, architecture=architecture, options=merged)


@pytest.fixture(scope="session")
def scenes() -> Batch:
    """Two rendered 64-px scenes, every synthetic task labelled on both."""
    return collate([render_scene(seed, size=SIZE) for seed in (0, 1)])


def train_tiny(folder: Path, architecture: str, *overrides: str) -> tuple[str, dict[str, Any]]:
    """``mtvision train model.architecture=<architecture>`` for one tiny epoch with runs under
    ``folder``; the console output and the run's model.json."""
    args = ["train", *TINY, f"model.architecture={architecture}", f"run.output={folder}", "run.name=tiny", *overrides]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output, json.loads((folder / "tiny" / "model.json").read_text())
