"""What a run shows in the terminal: a progress bar per epoch, one line per epoch, one table.

Only rank 0 prints (the trainer passes ``console=None`` elsewhere). Running losses in the
bar are epoch means so far, per task, so one glance says which task is stuck; they are
abbreviated and packed on a second line rather than cut off at the terminal's width. The
bar is replaced by one line per epoch (time, losses, the metric that selects ``best.pt``
with its best so far): a run's log stays readable, and the full metric table is printed
once at the end (``--verbose``: after every validation too).

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
from rich.text import Text

from mtvision.engine.evaluate import Results


class EpochProgress:
    """A rich progress bar for one epoch whose text is the running per-task losses."""

    def __init__(self, progress: Progress | None, total: int, description: str, width: int = 80) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=total, losses="") if progress else None
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.width = width  # of the losses column

    def advance(self, values: dict[str, float]) -> None:
        self.steps += 1
        for key, value in values.items():
            if key.endswith("/loss"):
                self.sums[key[:-5]] = self.sums.get(key[:-5], 0.0) + value
        if self.progress is not None:
            means = {name: total / self.steps for name, total in self.sums.items()}
            self.progress.update(self.task, advance=1, losses=loss_text(means, self.width))


@contextmanager
def epoch_progress(console: Console | None, total: int, description: str) -> Iterator[EpochProgress]:
    """Progress bar on ``console`` for ``total`` steps; silent (still counting) without a console.

    Transient: the epoch's summary line (:func:`epoch_line`) takes its place when it ends. Not on a
    terminal (a log file, a pipe) there is no bar: the log holds the summary lines only.
    """
    if console is None or not console.is_terminal:
        yield EpochProgress(None, total, description)
        return
    fixed = len(description) + 12 + 2 * len(str(total)) + 1 + 7 + 4  # every column but the losses, + gaps
    width = max(20, console.width - fixed)
    losses = Column(no_wrap=True, overflow="ellipsis", max_width=width)
    columns = [TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[losses]}", table_column=losses)]
    with Progress(*columns, console=console, transient=True) as progress:
        yield EpochProgress(progress, total, description, width)


def short_names(names: list[str], least: int = 3) -> dict[str, str]:
    """The shortest prefix of each name (at least ``least`` characters) that no other name starts with."""
    short = {}
    for name in names:
        others = [other for other in names if other != name]
        length = least
        while length < len(name) and any(other.startswith(name[:length]) for other in others):
            length += 1
        short[name] = name[:length]
    return short


def loss_text(means: dict[str, float], width: int) -> str:
    """Every task's loss within ``width`` columns: full names when they fit on one line, else
    abbreviated names packed on as many lines as needed (never cut off).

    >>> loss_text({"semseg": 0.6912, "depth": 0.1234}, 40)
    'semseg 0.691  depth 0.123'
    >>> print(loss_text({"semseg": 0.69, "depth": 0.12, "normals": 0.3, "objects": 1.5}, 20))
    sem 0.69 dep 0.12
    nor 0.30 obj 1.50
    """
    full = "  ".join(f"{name} {value:.3f}" for name, value in means.items())
    if len(full) <= width:
        return full
    short = short_names(list(means))
    lines: list[str] = []
    for item in (f"{short[name]} {value:.2f}" for name, value in means.items()):
        if lines and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        else:
            lines.append(item)
    return "\n".join(lines)


def epoch_line(epoch: int, epochs: int, train_seconds: float, val_seconds: float | None,
               losses: dict[str, float], metric: str, score: float | None, best: float | None,
               new_best: bool, width: int = 10_000) -> Text:
    """One line for an epoch: time (validation apart), the mean training losses, and the metric
    that selects ``best.pt`` with the best so far -- highlighted, a new best in green. Too wide for
    the terminal, the losses go on an indented second line (abbreviated, packed to the width).

    >>> epoch_line(2, 8, 27.0, 14.0, {"semseg": 0.5}, "val/semseg/miou", 0.41, 0.41, True).plain
    'epoch 2/8  27.0 s + val 14.0 s  loss semseg 0.500  val/semseg/miou 0.4100 new best'
    >>> losses = {"total": 3.2, "semseg": 0.69, "depth": 0.12, "normals": 0.3}
    >>> print(epoch_line(1, 8, 9.0, 2.0, losses, "val/semseg/miou", 0.2, 0.3, False, width=50).plain)
    epoch 1/8  9.0 s + val 2.0 s  val/semseg/miou 0.2000 (best 0.3000)
      loss tot 3.20 sem 0.69 dep 0.12 nor 0.30
    """
    spent = f"{train_seconds:.1f} s" + (f" + val {val_seconds:.1f} s" if val_seconds is not None else "")
    head = Text(f"epoch {epoch}/{epochs}  {spent}")
    selected = Text()
    if score is not None:
        selected.append(f"{metric} {score:.4f}", style="bold cyan")
        selected.append(" new best" if new_best else f" (best {best:.4f})" if best is not None else "",
                        style="bold green" if new_best else "")
    full = loss_text(losses, 10_000)
    one_line = len(head) + 7 + len(full) + (2 + len(selected) if score is not None else 0)
    if one_line <= width:
        line = head + Text("  loss ") + Text(full, style="dim")
        return line + Text("  ") + selected if score is not None else line
    packed = loss_text(losses, max(width - 7, 20)).replace("\n", "\n       ")
    first = head + Text("  ") + selected if score is not None else head
    return first + Text("\n  loss ") + Text(packed, style="dim")


def metric_table(results: Results, baselines: Results | None = None, title: str | None = "validation",
                 selected: str | None = None) -> Table:
    """One row per task and metric; a ``baseline`` column when ``baselines`` are given; the row of
    ``selected`` (``val/<task>/<metric>``, the metric that picks ``best.pt``) highlighted."""
    table = Table(title=title, title_justify="left")
    chosen = tuple(selected.split("/")[1:3]) if selected and selected.count("/") == 2 else None
    for column in ("task", "metric", "value") + (("baseline",) if baselines else ()):
        table.add_column(column, justify="right" if column in ("value", "baseline") else "left")
    for task, metrics in results.items():
        for i, (metric, value) in enumerate(metrics.items()):
            row = [task if i == 0 else "", metric, f"{value:.4f}"]
            if baselines:
                reference = baselines.get(task, {}).get(metric)
                row.append("" if reference is None else f"{reference:.4f}")
            table.add_row(*row, end_section=i == len(metrics) - 1,
                          style="bold cyan" if (task, metric) == chosen else None)
    return table
