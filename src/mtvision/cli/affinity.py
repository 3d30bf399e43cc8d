"""``mtvision affinity``: which tasks help which, and the branched model that follows from it.

A short joint run of the configured tasks on hard sharing measures TAG's lookahead affinity
``Z_{i→j}`` and the gradient cosines every ``--every`` steps (:mod:`mtvision.analysis.affinity`),
groups the tasks (:mod:`mtvision.analysis.grouping`, a partition: each task in one branch) and
writes ``runs/<name>/affinity/``: ``affinity.json``, ``affinity.png`` and ``groups.yaml``,
your config with ``model.architecture: branched``, ``model.branches`` and ``model.branch_at``
set, which ``mtvision train`` takes as it is (``config.py`` reads one file, so this is the whole
config, not a fragment to merge).

The short run, unless you override it: :data:`SHORT_RUN` (300 training scenes of the synthetic
source, 2 epochs, no prediction images); the measurement model is always hard sharing. The
recommended K is ``--groups``, else the best-scoring K (ties: fewer groups).

Example (shell)::

    mtvision affinity configs/demo.yaml                      # every K; groups.yaml for the best
    mtvision affinity configs/demo.yaml --groups 2 --every 2 tasks.objects=null
    mtvision affinity configs/demo.yaml --variant tag          # TAG's eq. 3 as written (default: isolated)
    mtvision train runs/demo/affinity/groups.yaml            # the recommended branched model
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer
import yaml

from mtvision.analysis.affinity import VARIANTS, AffinityResult, measure_affinity
from mtvision.analysis.affinity_report import plot_affinity, summary_sentence, write_json
from mtvision.analysis.grouping import Grouping, group_every_k
from mtvision.cli import app, build
from mtvision.cli.build import console
from mtvision.config import Config, ConfigError, dump_config, load_config
from mtvision.engine.distributed import DistInfo, resolve_device, unwrap
from mtvision.models.stages import Stages

# The short run's defaults (your overrides win): the benchmarks' 300/100-scene cache, 2 epochs.
SHORT_RUN = ["data.synthetic.num_train=300", "data.synthetic.num_val=100", "train.epochs=2",
             "train.predict_images=0", "balancing.diagnostics=false"]
HARD = {"architecture": "hard", "branches": None, "branch_at": None, "architecture_options": {}}


@app.command()
def affinity(
    args: Optional[list[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides"),
    groups: Optional[int] = typer.Option(None, "--groups", help="number of groups K (default: every K, "
                                                                "groups.yaml for the best-scoring one)"),
    every: int = typer.Option(1, "--every", help="measure every N-th training step"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="epochs of the short run (default 2)"),
    branch_at: Optional[int] = typer.Option(None, "--branch-at", help="trunk stages the groups share in "
                                                                      "groups.yaml (default: all but the last)"),
    overlap: bool = typer.Option(False, "--overlap", help="also the papers' overlapping groups (a task in "
                                                          "several groups) in affinity.json"),
    variant: str = typer.Option(VARIANTS[0], "--variant", help="lookahead: isolated (a step on task i against the "
                                                               "momentum-only step), tag (eq. 3 as written) or sgd"),
) -> None:
    """Task affinity (TAG) and gradient cosines from a short run; task groups; a branched config."""
    path, overrides = build.split_args(args or [])
    user = build.load(path, overrides)
    names = list(user.tasks)
    _check(names, groups, every, epochs)
    if variant not in VARIANTS:
        _fail(f"--variant {variant}: choose one of {', '.join(VARIANTS)}")
    cfg = build.load(path, [*SHORT_RUN, *overrides, *([f"train.epochs={epochs}"] if epochs else [])])
    cfg.model = cfg.model.model_copy(update=HARD)
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    root = Path(cfg.run.output) / cfg.run.name / "affinity"
    trainer, _ = build.trainer(cfg, DistInfo(), device, None, run_dir=root)
    result = measure_affinity(trainer.model, trainer.train_loader, trainer.parts, cfg.train.epochs, every, device,
                              trainer.sampler, console, variant)  # type: ignore[arg-type]
    found = group_every_k(result.affinity, names, [groups] if groups else None)
    best = groups or max(found, key=lambda k: (round(found[k].score, 9), -k))
    extra = {"recommended": best, "every": every, "epochs": cfg.train.epochs, "variant": "partition",
             "lookahead": variant}
    if overlap:
        covers = group_every_k(result.affinity, names, list(found), "cover")
        extra.update(overlapping_groups={str(k): g.groups for k, g in covers.items()},
                     overlapping_score={str(k): round(g.score, 6) for k, g in covers.items()})
    write_json(root / "affinity.json", result, found, extra)
    plot_affinity(root / "affinity.png", names, result.affinity, result.cosine, found[best].groups)
    yaml_path = _write_groups_yaml(root / "groups.yaml", user, found[best], best,
                                   branch_at or _default_branch_at(unwrap(trainer.model)))
    _report(result, found, best, root, yaml_path)


def _check(names: list[str], groups: Optional[int], every: int, epochs: Optional[int]) -> None:
    """Bad input fails here, before any data is read, with one line and exit code 2."""
    if len(names) < 2:
        _fail(f"task affinity needs at least two tasks; the config has {len(names)} ({', '.join(names) or 'none'})")
    if groups is not None and not 1 <= groups <= len(names):
        _fail(f"--groups {groups}: choose 1 to {len(names)} groups for the {len(names)} tasks ({', '.join(names)})")
    if every < 1:
        _fail(f"--every {every}: measure every N >= 1 steps")
    if epochs is not None and epochs < 1:
        _fail(f"--epochs {epochs}: the short run needs at least 1 epoch")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _default_branch_at(model: torch.nn.Module) -> int:
    """All trunk stages but the last are shared; the last stage and the FPN are per group."""
    try:
        return max(1, len(Stages.of(model.architecture.backbone)) - 1)
    except (AttributeError, ValueError):
        return 1


def _write_groups_yaml(path: Path, user: Config, grouping: Grouping, k: int, branch_at: int) -> Path | None:
    """``user``'s config with the recommended branched model; checked by loading it back."""
    cfg = user.model_copy(deep=True)
    cfg.run.name = f"{user.run.name}_k{k}"
    model = cfg.model.model_dump()
    model.update(architecture="branched", branches=grouping.groups, branch_at=branch_at, architecture_options={})
    data = yaml.safe_load(dump_config(cfg))
    data["model"] = model
    flat = ", ".join(f"[{', '.join(g)}]" for g in grouping.groups)
    header = (f"# mtvision affinity: the {k}-group partition of highest intra-group affinity "
              f"(score {grouping.score:+.4f}).\n# Train it: mtvision train {path}\n"
              f"# Or on your config: mtvision train <config> model.architecture=branched "
              f"'model.branches=[{flat}]' model.branch_at={branch_at}\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    try:
        load_config(path)
    except ConfigError as error:  # e.g. a backbone without stages: say so, keep the affinity results
        console.print(f"[yellow]groups.yaml does not load as a branched config[/yellow]: {error}")
        return None
    return path


def _report(result: AffinityResult, found: dict[int, Grouping], best: int, root: Path, yaml_path: Path | None) -> None:
    for k, grouping in found.items():
        mark = "  <- groups.yaml" if k == best else ""
        console.print(f"K={k}: {' | '.join(' + '.join(g) for g in grouping.groups)}  "
                      f"(score {grouping.score:+.4f}){mark}")
    console.print(summary_sentence(result.tasks, result.affinity, found[best].groups))
    console.print(f"measured {result.probes} of {result.steps} steps; the run took {result.cost_ratio:.2f}× its time "
                  f"without the measurement ({result.seconds:.0f} s, of which {result.probe_seconds:.0f} s measuring)")
    console.print(f"outputs: [bold]{root}[/bold] (affinity.json, affinity.png"
                  f"{', groups.yaml' if yaml_path else ''})")
    if yaml_path:
        console.print(f"train the recommended model: mtvision train {yaml_path}")
