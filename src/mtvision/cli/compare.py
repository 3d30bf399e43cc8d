"""``mtvision compare``: is one model for these tasks as good as separate models, and how much cheaper?

Trains the configured multi-task model and, for every task, a single-task model with the
same backbone, neck, head, data, augmentation, optimizer, schedule and epochs; selects each
on the validation split, scores each once on the test split (``data.test``, a held-out
``data.test_fraction``, or the synthetic source's own test scenes), measures each model's
cost on this device, and writes ``runs/<name>/compare/{compare.json, compare.csv, report.md,
compare.png}``. Every model is an ordinary run folder under ``runs/<name>/compare/``, so an
interrupted comparison resumes where it stopped; ``--baseline`` reuses another comparison's
single-task runs (train the baselines once, compare five balancing methods against them).

Example (shell)::

    mtvision compare configs/demo.yaml --seeds 0 1 2
    mtvision compare configs/demo.yaml --tasks semseg,depth data.label_fraction.depth=0.05
    mtvision compare configs/demo.yaml run.name=pcgrad balancing.method=pcgrad --baseline runs/demo
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import torch
import typer
from pydantic import BaseModel
from rich.table import Table

from mtvision.analysis.compare_outputs import cost_rows, metric_rows, write_outputs
from mtvision.analysis.comparison import summarise_comparison
from mtvision.analysis.efficiency import describe_device
from mtvision.analysis.measure import measure
from mtvision.cli import app, build
from mtvision.cli.build import Splits, console
from mtvision.config import Config
from mtvision.data.dataset import collate
from mtvision.data.record import DatasetRecord
from mtvision.engine.distributed import DistInfo, resolve_device
from mtvision.engine.evaluate import evaluate
from mtvision.engine.optim import resolve_amp

MULTI = "multitask"
SAME = ("model", "data")  # config sections a --baseline run must share with this comparison
# How tasks share means nothing to a one-task model: its baseline is the same trunk, neck and head.
SHARING = {"architecture": "hard", "branches": None, "branch_at": None, "architecture_options": {}}


@app.command()
def compare(
    args: Optional[list[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides"),
    seeds: list[int] = typer.Option([0], "--seeds", help="run seeds: --seeds 0 --seeds 1, or --seeds 0 1 2"),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="comma-separated subset of the configured tasks"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="a run folder whose compare/ single-task "
                                                                     "runs to reuse (same model and data)"),
) -> None:
    """Multi-task model vs one model per task: test metrics, Δm and measured cost."""
    seeds, rest = _seeds(seeds, args or [])
    path, overrides = build.split_args(rest)
    cfg = _restricted(build.load(path, overrides), tasks)
    device = resolve_device(cfg.run.device)
    root = Path(cfg.run.output) / cfg.run.name / "compare"
    single_root = _baseline_root(baseline, cfg) if baseline else root
    names = list(cfg.tasks)
    plan = [(seed, model) for seed in seeds for model in [MULTI, *(f"single/{t}" for t in names)]]
    runs: dict[str, list[dict[str, float]]] = {}

    def folder_of(model: str, seed: int) -> Path:
        return (root if model == MULTI else single_root) / f"seed{seed}" / model.replace("/", "-")

    for number, (seed, model) in enumerate(plan, start=1):
        folder = folder_of(model, seed)
        console.print(f"[bold]model {number} of {len(plan)}[/bold]: {model}, seed {seed} -> {folder}")
        runs.setdefault(model, []).append(_train_and_test(_variant(cfg, model, seed), folder, device))
    train = build.splits(_variant(cfg, MULTI, seeds[0]), DistInfo()).train  # read once, for every model's batch
    costs = {model: _cost(_variant(cfg, model, seeds[0]), folder_of(model, seeds[0]), train, device) for model in runs}
    summary = summarise_comparison(_directions(folder_of(MULTI, seeds[0])), runs, costs)
    command = "mtvision compare " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    write_outputs(summary, root, command, describe_device(device))
    _print(summary, root)


def _seeds(seeds: list[int], args: list[str]) -> tuple[list[int], list[str]]:
    """``--seeds 0 1 2``: typer takes one value per flag, so the extra integers arrive as
    arguments; returns the seeds and the remaining arguments."""
    extra = [int(item) for item in args if item.isdigit()]
    return list(dict.fromkeys([*seeds, *extra])), [item for item in args if not item.isdigit()]


def _restricted(cfg: Config, tasks: Optional[str]) -> Config:
    """``cfg`` with only the ``--tasks`` given (all configured ones by default)."""
    if not tasks:
        return cfg
    wanted = [t.strip() for t in tasks.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in cfg.tasks]
    if unknown:
        raise typer.BadParameter(f"--tasks names {', '.join(unknown)}, not configured tasks: {', '.join(cfg.tasks)}")
    return cfg.model_copy(update={"tasks": {t: cfg.tasks[t] for t in wanted}}, deep=True)


def _variant(cfg: Config, model: str, seed: int) -> Config:
    """The config of one model of the comparison: the same budget, one task for a single-task model."""
    variant = cfg.model_copy(deep=True)
    variant.run.seed = seed
    if model != MULTI:
        task = model.split("/", 1)[1]
        variant.model = variant.model.model_copy(update=SHARING)
        variant.tasks = {task: cfg.tasks[task]}
        variant.balancing = type(cfg.balancing)(method="ew", diagnostics=cfg.balancing.diagnostics)  # one task: nothing to balance
        if not (cfg.train.best_metric or "").startswith(f"val/{task}/"):
            variant.train.best_metric = None  # the task's own primary metric
    return variant


def _train_and_test(cfg: Config, folder: Path, device: torch.device) -> dict[str, float]:
    """Train (or resume, or reuse) one model, select on val, score once on test; ``task/metric`` keys."""
    done = folder / "test.json"
    if done.is_file():
        return json.loads(done.read_text())["metrics"]
    data = build.splits(cfg, DistInfo(), test=True)
    last = folder / "weights" / "last.pt"
    trainer, _ = build.trainer(cfg, DistInfo(), device, resume=last if last.is_file() else None, run_dir=folder,
                               data=data)
    trainer.fit()
    results = _test(folder / "weights" / "best.pt", data, device)
    metrics = {f"{task}/{m}": v for task, values in results.items() for m, v in values.items() if m != "loss"}
    temp = done.with_suffix(".tmp")
    temp.write_text(json.dumps({"metrics": metrics, "test_images": len(data.test.images)}, indent=1))
    os.replace(temp, done)
    return metrics


def _test(weights: Path, data: Splits, device: torch.device) -> dict[str, dict[str, float]]:
    """The checkpoint selected on validation, scored on the test split with the literature's metrics."""
    cfg, model, infos = build.restore(weights)
    assert data.test is not None  # splits(test=True) always holds one
    loader = build.eval_loader(cfg, build.dataset(cfg, data.test, infos, train=False))
    return evaluate(model.to(device), loader, device, resolve_amp(cfg.train.amp, device)[0], test=True)


def _cost(cfg: Config, folder: Path, train: DatasetRecord, device: torch.device) -> dict[str, float]:
    """The measured cost of the model in ``folder`` on this device, with one batch of ``train``."""
    weights = folder / "weights" / "best.pt"
    _, model, infos = build.restore(weights)
    train_set = build.dataset(cfg, train, infos, train=True)
    batch = collate([train_set[i] for i in range(min(cfg.data.batch_size, len(train_set)))])
    return measure(model, weights, batch, device)


def _directions(folder: Path) -> dict[str, dict[str, bool]]:
    """``{task: {metric: higher_is_better}}`` as each task module states it (one checkpoint read)."""
    _, model, _ = build.restore(folder / "weights" / "best.pt")
    return {name: dict(task.test_metrics_higher_is_better) for name, task in model.tasks.items()}


def _baseline_root(baseline: Path, cfg: Config) -> Path:
    """The ``compare/`` folder of ``--baseline``, refused when its model or data differ from ``cfg``."""
    root = baseline / "compare"
    configs = sorted(root.glob("seed*/single-*/config.yaml"))
    if not configs:
        raise typer.BadParameter(f"--baseline {baseline}: no single-task runs under {root}")
    theirs = build.load(configs[0], [])
    for section in SAME:
        if _without_sharing(getattr(theirs, section)) != _without_sharing(getattr(cfg, section)):
            raise typer.BadParameter(f"--baseline {baseline} was made with another {section} section "
                                     f"({configs[0]}): its single-task runs are not comparable")
    return root


def _without_sharing(section: BaseModel) -> dict:
    """A config section as the single-task baselines see it (the architecture left out)."""
    return section.model_dump(exclude=set(SHARING))


def _print(summary: dict, root: Path) -> None:
    dm = summary["delta_m"]["multitask"]
    table = Table(title=f"test split: one multi-task model vs one model per task — Δm = {dm['mean']:+.2f} ± "
                        f"{dm['std']:.2f} %", title_style="bold")
    for column in ("task", "metric", "single-task", "multi-task", "change"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for row in metric_rows(summary):
        table.add_row(*row[:4], f"[green]{row[4]}[/green]" if row[4].startswith("+") else f"[red]{row[4]}[/red]")
    console.print(table)
    costs = Table(title="cost on this device")
    for column in ("", "multi-task", "separate", "separate / multi"):
        costs.add_column(column, justify="left" if not column else "right")
    for row in cost_rows(summary):
        costs.add_row(*row)
    console.print(costs)
    console.print(f"report: [bold]{root / 'report.md'}[/bold] (compare.json, compare.csv, compare.png beside it)")
