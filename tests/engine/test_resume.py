"""A run interrupted and resumed ends with the weights of an uninterrupted run, also with a
stateful balancing method (DWA's epoch means, FAMO's logits, reused UPGrad weights, Auto-Lambda's
weights and its place in the validation loader)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.balancing import create
from mtvision.engine.loggers import read_results
from mtvision.engine.trainer import BalancingSettings, Trainer, TrainSettings

SETTINGS = TrainSettings(epochs=3, batch_size=4, lr=3e-3, warmup_epochs=1, predict_images=0, seed=7)
# (method, balancing.every, interrupted epoch). 3 steps per epoch: with every=4 the resumed run's
# first step reuses the checkpoint's weights; Auto-Lambda's 3 validation draws of epoch 1 end in
# the middle of a pass over the 2 validation batches, so the resumed run must start at the second.
METHODS = [("ew", 1, 3), ("dwa", 1, 3), ("famo", 1, 3), ("upgrad", 4, 3), ("auto_lambda", 1, 2)]


def _trainer(records, make_model, make_dataset, run_dir: Path, model_seed: int,
             method: tuple[str, int, int]) -> Trainer:
    train_record, val_record = records
    model = make_model(train_record, seed=model_seed)
    settings = TrainSettings(**{**vars(SETTINGS), "balancing": BalancingSettings(every=method[1])})
    return Trainer(model, make_dataset(train_record, train=True), make_dataset(val_record, train=False), settings,
                   run_dir, method=create(method[0], num_tasks=len(model.tasks)))


def _interrupt_at(trainer: Trainer, epoch: int) -> None:
    original = trainer._train_epoch

    def train_epoch(current: int) -> dict[str, float]:
        if current == epoch:
            raise KeyboardInterrupt
        return original(current)

    trainer._train_epoch = train_epoch  # type: ignore[method-assign]


@pytest.mark.parametrize("method", METHODS, ids=[name for name, *_ in METHODS])
def test_resume_matches_uninterrupted_run(records, make_model, make_dataset, tmp_path: Path,
                                          method: tuple[str, int, int]) -> None:
    torch.manual_seed(0)
    straight = _trainer(records, make_model, make_dataset, tmp_path / "straight", 0, method)
    straight.fit()

    torch.manual_seed(0)
    first = _trainer(records, make_model, make_dataset, tmp_path / "resumed", 0, method)
    _interrupt_at(first, method[2])
    with pytest.raises(KeyboardInterrupt):
        first.fit()

    torch.manual_seed(12345)  # a new process: different global RNG, different initial weights
    second = _trainer(records, make_model, make_dataset, tmp_path / "resumed", 1, method)
    second.resume(tmp_path / "resumed" / "weights" / "last.pt")
    second.fit()

    torch.testing.assert_close(second.method.state_dict(), straight.method.state_dict(), rtol=1e-5, atol=1e-6)
    expected, actual = straight.model.state_dict(), second.model.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    rows = read_results(tmp_path / "resumed" / "results.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[-1]["val/depth/abs_rel"] == pytest.approx(read_results(tmp_path / "straight" / "results.csv")[-1][
        "val/depth/abs_rel"], rel=1e-5)


def test_early_stopping_after_patience_evaluations(records, make_model, make_dataset, monkeypatch,
                                                   tmp_path: Path) -> None:
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.9])  # best at evaluation 2, then two without a new best
    monkeypatch.setattr("mtvision.engine.trainer.evaluate",
                        lambda *args: {"lighting": {"top1": next(scores), "loss": 1.0}})
    settings = TrainSettings(epochs=5, batch_size=4, patience=2, best_metric="val/lighting/top1", predict_images=0)
    tasks = {"lighting": "classification"}
    trainer = Trainer(make_model(records[0], tasks=tasks), make_dataset(records[0], True, tasks),
                      make_dataset(records[1], False, tasks), settings, tmp_path)
    summary = trainer.fit()
    assert summary.stopped_early and summary.epochs_run == 4 and summary.best_score == 0.6
    assert torch.load(tmp_path / "weights" / "best.pt", weights_only=True)["epoch"] == 2
