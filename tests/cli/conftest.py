"""Shared fixtures of the CLI tests: a runner in a temporary working folder, and a call that
must succeed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtvision.cli import app


@pytest.fixture()
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # runs/ and .cache/ land in the temporary folder
    return CliRunner()


def ok(runner: CliRunner, args: list[str]) -> str:
    """The output of ``mtvision ARGS``, which must exit 0 (exceptions propagate, with their traceback)."""
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output
