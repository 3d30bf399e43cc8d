"""What a run shows in the terminal: a progress bar per epoch and per-task metric tables.

Only rank 0 prints (the trainer passes ``console=None`` elsewhere). Running losses in the
bar are epoch means so far, per task, so one glance says which task is stuck.

Example:
    >>> table = metric_table({"depth": {"abs_rel": 0.12, "loss": 0.3}}, {"depth": {"abs_rel": 0.45}})
    >>> [column.header for column in table.columns], table.row_count
    (['task', 'metric', 'value', 'baseline'], 2)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from mtvision.engine.evaluate import Results


class EpochProgress:
    """A rich progress bar for one epoch whose text is the running per-task losses."""

    def __init__(self, progress: Progress | None, total: int, description: str) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=total, losses="") if progress else None
        self.sums: dict[str, float] = {}
        self.steps = 0

    def advance(self, values: dict[str, float]) -> None:
        self.steps += 1
        for key, value in values.items():
            if key.endswith("/loss"):
                self.sums[key[:-5]] = self.sums.get(key[:-5], 0.0) + value
        if self.progress is not None:
            text = "  ".join(f"{name} {total / self.steps:.3f}" for name, total in self.sums.items())
            self.progress.update(self.task, advance=1, losses=text)


@contextmanager
def epoch_progress(console: Console | None, total: int, description: str) -> Iterator[EpochProgress]:
    """Progress bar on ``console`` for ``total`` steps; silent (still counting) without a console."""
    if console is None:
        yield EpochProgress(None, total, description)
        return
    fixed = len(description) + 12 + 2 * len(str(total)) + 1 + 7 + 4  # every column but the losses, + gaps
    losses = Column(no_wrap=True, overflow="ellipsis", max_width=max(20, console.width - fixed))
    columns = [TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[losses]}", table_column=losses)]
    with Progress(*columns, console=console, transient=False) as progress:
        yield EpochProgress(progress, total, description)


def metric_table(results: Results, baselines: Results | None = None, title: str = "validation") -> Table:
    """One row per task and metric; a ``baseline`` column when ``baselines`` are given."""
    table = Table(title=title, title_justify="left")
    for column in ("task", "metric", "value") + (("baseline",) if baselines else ()):
        table.add_column(column, justify="right" if column in ("value", "baseline") else "left")
    for task, metrics in results.items():
        for i, (metric, value) in enumerate(metrics.items()):
            row = [task if i == 0 else "", metric, f"{value:.4f}"]
            if baselines:
                reference = baselines.get(task, {}).get(metric)
                row.append("" if reference is None else f"{reference:.4f}")
            table.add_row(*row, end_section=i == len(metrics) - 1)
    return table
