"""Bad input through the CLI: one clean message naming the file / key and the fix, exit 2,
no traceback unless ``--debug``; a bug (any other exception) keeps its traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from fault_helpers import MAKERS, TINY, assert_clean, invoke
from typer.testing import CliRunner

from mtvision.cli import app, build
from mtvision.engine import checkpoint as ckpt


class _RunsCode:
    def __reduce__(self) -> tuple:
        return (print, ("this ran while loading",))


def _checkpoint(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.pt"
    good = {"model": {"w": torch.ones(64)}, "config": {}, "task_infos": {}}
    if kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "foreign":
        path.write_text("not a checkpoint at all\n")
    elif kind == "unsafe":
        torch.save({"model": _RunsCode()}, path)
    elif kind == "plain_pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "state_dict":
        torch.save({"w": torch.ones(2)}, path)
    elif kind == "newer_version":
        torch.save({**good, "mtvision": {"version": "9.0.0", "format": ckpt.FORMAT + 1}}, path)
    return path


CHECKPOINTS = {"zero_byte": "is empty (0 bytes)", "truncated": "truncated or corrupt", "missing": "not found",
               "foreign": "not a PyTorch checkpoint", "unsafe": "refused: it would run Python code",
               "plain_pickle": "Python pickle", "state_dict": "not an mtvision run checkpoint",
               "newer_version": "written by mtvision 9.0.0"}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
@pytest.mark.parametrize("command", ["val", "predict", "train --resume"])
def test_bad_checkpoint_names_the_file_and_the_problem(runner: CliRunner, tmp_path: Path, kind: str,
                                                       command: str) -> None:
    path = _checkpoint(tmp_path, kind)
    *words, = command.split()
    extra = ["--source", str(tmp_path)] if command == "predict" else []
    code, output = invoke(runner, *words, str(path), *extra)
    assert code == 2, output
    assert_clean(output, path.name, CHECKPOINTS[kind])
    assert "this ran while loading" not in output


def test_config_errors_are_found_before_any_data_is_read(runner: CliRunner, tmp_path: Path) -> None:
    code, output = invoke(runner, "train", *TINY, "tasks.semseg.type=semantic_segmentatoin",
                          "tasks.depth.options.hiden=8", "train.best_metric=val/depth/abs_rell", "data.val=nope.json")
    assert code == 2
    assert_clean(output, "did you mean 'semantic_segmentation'", "did you mean 'hidden'", "did you mean 'abs_rel'",
                 "data.val: nope.json does not exist")
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "runs").exists()  # nothing read, nothing written


def test_yaml_syntax_error_names_file_line_and_column(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("train:\n  epochs: 3\n  lr: [0.1\n")
    code, output = invoke(runner, "train", "bad.yaml")
    assert code == 2
    assert_clean(output, "bad.yaml:4:1: YAML syntax error")


@pytest.mark.parametrize("name", list(MAKERS))
def test_every_reader_fed_a_corrupt_file_through_train_prints_one_clean_line(runner: CliRunner, tmp_path: Path,
                                                                             name: str) -> None:
    root = tmp_path / name
    root.mkdir()
    path = MAKERS[name](root)
    code, output = invoke(runner, "train", *TINY, f"data.source=[{{path: '{path}', format: {name}}}]")
    assert code == 2, output
    assert_clean(output, str(root))
    assert not (tmp_path / "runs").exists()  # a run that never started leaves no folder


def test_debug_shows_the_traceback(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _checkpoint(tmp_path, "zero_byte")
    result = runner.invoke(app, ["--debug", "val", str(path)])
    assert isinstance(result.exception, ckpt.CheckpointError)  # re-raised: typer prints its traceback
    monkeypatch.setenv("MTVISION_DEBUG", "1")
    assert isinstance(runner.invoke(app, ["val", str(path)]).exception, ckpt.CheckpointError)


def test_a_bug_keeps_its_traceback(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(build, "run_dir_of", broken)
    result = runner.invoke(app, ["train", *TINY])
    assert isinstance(result.exception, ZeroDivisionError) and result.exit_code == 1
