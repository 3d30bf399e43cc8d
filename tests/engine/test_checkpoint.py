"""Checkpoints: atomic writes, weights-only loading, RNG and task-info round trips."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mtvision.engine import checkpoint as ckpt
from mtvision.engine.trainer import Trainer, TrainSettings
from mtvision.structures import TaskInfo


def test_crash_during_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "weights" / "last.pt"
    ckpt.save_checkpoint(path, {"epoch": 1, "w": torch.arange(3.0)})
    real_save = torch.save

    def crash_halfway(obj, file, *args, **kwargs):  # write some bytes, then die like a killed process
        real_save(obj, file, *args, **kwargs)
        file.truncate(10)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["w"].tolist() == [0.0, 1.0, 2.0]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind


def test_rng_state_round_trip() -> None:
    state = ckpt.rng_state()
    first = (random.random(), float(np.random.rand()), float(torch.rand(())))
    ckpt.set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first


def test_task_infos_round_trip() -> None:
    infos = {"objects": TaskInfo(kind="instances", classes=["a"], keypoint_names=["l", "r"], skeleton=[(0, 1)],
                                 flip_idx=[1, 0]),
             "scene": TaskInfo(kind="label", classes=["x", "y"], multi_label=True)}
    assert ckpt.infos_from_plain(ckpt.infos_to_plain(infos)) == infos


def test_trainer_checkpoint_loads_weights_only(records, make_model, make_dataset, tmp_path: Path) -> None:
    infos = {"semseg": records[0].tasks["semseg"]}
    tasks = {"semseg": "semantic_segmentation"}
    trainer = Trainer(make_model(records[0], tasks=tasks), make_dataset(records[0], True, tasks),
                      make_dataset(records[1], False, tasks), TrainSettings(epochs=1, batch_size=4, predict_images=1),
                      tmp_path, metadata={"config": {"run": {"name": "x"}}, "task_infos": ckpt.infos_to_plain(infos)})
    summary = trainer.fit()
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / "weights" / name, weights_only=True)
        assert state["epoch"] == 1 and state["best_metric"] == "val/semseg/miou"
        assert ckpt.infos_from_plain(state["task_infos"]) == infos
        assert {"model", "optimizer", "scheduler", "scaler", "rng"} <= state.keys()
    assert summary.best_score == pytest.approx(summary.results["semseg"]["miou"])
    assert (tmp_path / "results.png").is_file() and (tmp_path / "predictions" / "final" / "0000.png").is_file()
