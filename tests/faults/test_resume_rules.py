"""Resume is honest and failed starts leave nothing: overrides applied by rule or refused by name,
config.yaml untouched by a refused resume, a finished run says how to extend it, no litter."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_helpers import TINY, assert_clean, invoke
from typer.testing import CliRunner

from mtvision.engine import checkpoint as ckpt
from mtvision.engine import trainer as trainer_module
from mtvision.engine.step import NonFiniteLossError

LAST = Path("runs") / "demo" / "weights" / "last.pt"


@pytest.fixture()
def finished_run(runner: CliRunner) -> Path:
    code, output = invoke(runner, "train", *TINY, "train.epochs=1")
    assert code == 0, output
    return LAST


def test_refused_overrides_name_the_key_and_leave_config_yaml_alone(runner: CliRunner, finished_run: Path) -> None:
    config = finished_run.parent.parent / "config.yaml"
    before = config.read_text()
    code, output = invoke(runner, "train", "--resume", str(finished_run), "train.lr=1e6", "tasks.semseg=null",
                          "train.epochs=3")
    assert code == 2
    assert_clean(output, "cannot change on resume", "train.lr (1000000.0; the run has 0.002)",
                 "tasks (removes semseg", "optimizer")
    assert config.read_text() == before


def test_finished_run_says_so_and_how_to_extend_it(runner: CliRunner, finished_run: Path) -> None:
    code, output = invoke(runner, "train", "--resume", str(finished_run))
    assert code == 0 and "this run is finished (1 of 1 epochs" in output
    assert f"mtvision train --resume {finished_run} train.epochs=2" in output


def test_extending_epochs_follows_the_longer_schedule_and_is_recorded(runner: CliRunner, finished_run: Path) -> None:
    assert ckpt.load_run_checkpoint(finished_run)["optimizer"]["param_groups"][0]["lr"] == 0.0  # cosine ended
    code, output = invoke(runner, "train", "--resume", str(finished_run), "train.epochs=2", "train.patience=5")
    assert code == 0, output
    # step 4 of a 2-epoch cosine of 8 steps: half the peak lr (0.002), not 0 and not a restart.
    assert "train.epochs 1 -> 2: the learning rate follows the schedule of a 2-epoch run from here (lr now 0.001)" \
        in output
    config = (finished_run.parent.parent / "config.yaml").read_text()
    assert "epochs: 2" in config and "patience: 5" in config


def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(runner: CliRunner,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def diverged(*args: object, **kwargs: object) -> dict[str, float]:
        raise NonFiniteLossError("5 consecutive steps had a non-finite loss")

    monkeypatch.setattr(trainer_module, "train_step", diverged)
    for _ in range(2):
        code, output = invoke(runner, "train", *TINY)
        assert code == 1
        assert_clean(output, "training diverged")
    assert not Path("runs").exists() or not any(Path("runs").iterdir())


def test_stale_temp_files_are_removed_at_the_next_start(runner: CliRunner, finished_run: Path) -> None:
    stale = finished_run.parent / ".last.pt.x1y2.tmp"
    stale.write_bytes(b"\0" * 100)
    assert invoke(runner, "train", "--resume", str(finished_run), "train.epochs=2")[0] == 0
    assert not stale.exists()
