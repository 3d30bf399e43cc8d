"""Evaluation is exact over the split (batch-size independent); baselines are the constants they claim."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from mtvision.data.dataset import collate
from mtvision.engine.baselines import baseline_results
from mtvision.engine.evaluate import evaluate, is_better


def _loader(dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate)


def test_metrics_do_not_depend_on_batch_size(records, make_model, make_dataset) -> None:
    model, val_set = make_model(records[0]), make_dataset(records[1], train=False)
    one, all_at_once = (evaluate(model, _loader(val_set, b), torch.device("cpu")) for b in (1, len(val_set)))
    for task, metrics in all_at_once.items():
        for name, value in metrics.items():
            assert one[task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{task}/{name}"


def test_baselines_are_the_constant_predictors(records, make_model, make_dataset) -> None:
    model, val_set = make_model(records[0]), make_dataset(records[1], train=False)
    baselines = baseline_results(dict(model.tasks.items()), _loader(val_set, 4))
    batch = collate([val_set[i] for i in range(len(val_set))])

    depth = batch.targets["depth"]
    mean_depth = depth[depth > 0].mean()
    abs_rel = ((mean_depth - depth[depth > 0]).abs() / depth[depth > 0]).mean()
    assert baselines["depth"]["abs_rel"] == pytest.approx(float(abs_rel), rel=1e-4)

    labels = batch.targets["semseg"]
    counts = torch.bincount(labels[labels != 255].flatten())
    assert baselines["semseg"]["pixel_acc"] == pytest.approx(float(counts.max() / counts.sum()), rel=1e-6)

    lighting = torch.bincount(batch.targets["lighting"])
    assert baselines["lighting"]["top1"] == pytest.approx(float(lighting.max() / lighting.sum()))
    assert baselines["normals"]["mean_angle"] > 10  # one direction cannot fit floor, walls and objects


def test_is_better_directions() -> None:
    assert is_better(0.5, 0.4, higher=True) and is_better(0.3, 0.4, higher=False)
    assert not is_better(float("nan"), None, higher=True)
