"""Signals: SIGINT / SIGTERM save the exact position and exit 130 / 143 with the resume command;
resuming mid-epoch ends equal to an uninterrupted run; kill -9 loses only the epoch in progress."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from fault_helpers import TINY, assert_same_weights, invoke, spawn
from typer.testing import CliRunner

from mtvision.engine import checkpoint as ckpt
from mtvision.engine import trainer as trainer_module
from mtvision.engine.loggers import read_results


def _signal_at(monkeypatch: pytest.MonkeyPatch, steps: dict[int, int]) -> None:
    """Send ``steps[n]`` to this process during the n-th training step (1-based), as a user would."""
    original, count = trainer_module.train_step, [0]

    def step(*args: object, **kwargs: object) -> dict[str, float]:
        count[0] += 1
        if count[0] in steps:
            os.kill(os.getpid(), steps[count[0]])
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_step", step)


def test_sigint_mid_epoch_then_resume_equals_an_uninterrupted_run(runner: CliRunner, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(runner, "train", *TINY, "run.name=straight")[0] == 0
    with monkeypatch.context() as patch:
        _signal_at(patch, {6: signal.SIGINT})  # epoch 2, step 2 of 4
        code, output = invoke(runner, "train", *TINY, "run.name=cut")
    last = Path("runs") / "cut" / "weights" / "last.pt"
    assert code == 130, output
    assert f"interrupted at epoch 2, step 2; resume with: mtvision train --resume {last}" in output
    state = ckpt.load_run_checkpoint(last)
    assert (state["epoch"], state["step"]) == (1, 2)

    code, output = invoke(runner, "train", "--resume", str(last))
    assert code == 0 and "at epoch 2, step 2" in output, output
    assert_same_weights(tmp_path / "runs" / "straight" / "weights" / "last.pt", tmp_path / last)
    straight, cut = (read_results(tmp_path / "runs" / name / "results.csv") for name in ("straight", "cut"))
    assert [row["epoch"] for row in cut] == [1, 2]
    for key in ("train/depth/loss", "train/semseg/loss", "val/depth/abs_rel"):  # the cut epoch's row is whole
        assert cut[-1][key] == pytest.approx(straight[-1][key], rel=1e-6), key


def test_a_second_sigint_stops_at_once(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    # The loop never gets to act on the first signal here (as during a long step or validation).
    monkeypatch.setattr(trainer_module.StopRequest, "requested", lambda self: False)
    _signal_at(monkeypatch, {2: signal.SIGINT, 3: signal.SIGINT})
    code, output = invoke(runner, "train", *TINY)
    assert code == 130 and "SIGINT: stopped at once" in output, output
    assert not Path("runs/demo").exists()  # stopped before its first checkpoint: no folder left behind


def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path: Path) -> None:
    process = spawn(tmp_path, "train", *TINY, "train.epochs=200")
    last = tmp_path / "runs" / "demo" / "weights" / "last.pt"
    _wait_for(last, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "SIGTERM: interrupted at epoch" in err and "resume with: mtvision train --resume" in err
    assert "Traceback" not in err
    state = ckpt.load_run_checkpoint(last)
    assert state["epoch"] >= 1 and state["epoch"] < 200


def test_kill_9_at_a_random_moment_then_resume_equals_an_uninterrupted_run(runner: CliRunner, tmp_path: Path) -> None:
    args = [*TINY, "train.epochs=6"]
    assert invoke(runner, "train", *args, "run.name=straight")[0] == 0
    process = spawn(tmp_path, "train", *args, "run.name=killed")
    last = tmp_path / "runs" / "killed" / "weights" / "last.pt"
    _wait_for(last, process)
    time.sleep(random.uniform(0, 1.0))  # anywhere in epochs 2-6, or after the end: resume must cope
    process.kill()
    process.wait(timeout=30)
    (last.parent / ".last.pt.stale.tmp").write_bytes(b"half a checkpoint")  # as a kill during a save leaves
    code, output = invoke(runner, "train", "--resume", str(last))
    assert code == 0, output
    assert not list(last.parent.glob(".*.tmp"))  # stale temp files removed at the resume
    assert_same_weights(tmp_path / "runs" / "straight" / "weights" / "last.pt", last)


def _wait_for(path: Path, process, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {path}: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
