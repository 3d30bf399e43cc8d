"""Fixtures of the fault-injection suite; its helpers are in ``fault_helpers.py`` (importable by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make fault_helpers importable


@pytest.fixture()
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI in-process, in a temporary folder (runs/ and .cache/ land there), without --debug."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTVISION_DEBUG", raising=False)
    return CliRunner()
