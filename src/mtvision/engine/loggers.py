"""Per-epoch logs: ``results.csv`` always, TensorBoard events when asked for and installed.

Rows are flat ``{"split/task/metric": value}`` dicts plus ``epoch``, ``time`` and ``lr``.
The CSV is rewritten whole (atomically) at every epoch: a run has tens of rows, the column
set can grow (an epoch without validation has fewer columns) and a resumed run first
drops the rows of epochs it is about to redo.

Example:
    >>> import tempfile
    >>> log = CSVLogger(Path(tempfile.mkdtemp()) / "results.csv")
    >>> log.log({"epoch": 1, "train/depth/loss": 0.5})
    >>> log.path.read_text().splitlines()[0]
    'epoch,train/depth/loss'
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

Row = dict[str, float]


class CSVLogger:
    """One row per epoch in ``path``; ``resume_epoch`` keeps the existing rows up to that epoch."""

    def __init__(self, path: str | Path, resume_epoch: int | None = None) -> None:
        self.path = Path(path)
        self.rows: list[Row] = []
        if resume_epoch is not None and self.path.is_file():
            self.rows = [row for row in read_results(self.path) if row.get("epoch", 0) <= resume_epoch]

    def log(self, row: Row) -> None:
        self.rows.append(dict(row))
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        temp = self.path.with_name(f".{self.path.name}.tmp")
        temp.write_text(text.getvalue())
        os.replace(temp, self.path)

    def close(self) -> None:
        """Nothing to flush: every row is on disk as soon as it is logged."""


class TensorBoardLogger:
    """Scalars per epoch as TensorBoard events in ``folder`` (needs ``pip install tensorboard``)."""

    def __init__(self, folder: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:  # torch imports tensorboard lazily, here
            raise ImportError("logging.tensorboard=true needs the tensorboard package: pip install tensorboard") \
                from error
        self.writer = SummaryWriter(str(folder))

    def log(self, row: Row) -> None:
        step = int(row.get("epoch", 0))
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_results(path: str | Path) -> list[Row]:
    """Rows of a ``results.csv`` as floats (empty cells left out)."""
    with open(path, newline="") as file:
        return [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def _number(text: Any) -> float:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
