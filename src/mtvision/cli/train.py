"""``mtvision train | val | predict``: where the config becomes datasets, a model and a trainer.

``mtvision train configs/demo.yaml`` is the demo (`make demo`): it renders (once, cached) the synthetic
scenes and trains every dense and image-level task on them jointly, then prints each
task's validation metrics next to trivial baselines.

Example (shell)::

    mtvision train configs/demo.yaml                # the demo (the defaults + a best metric)
    mtvision train configs/example_coco.yaml train.epochs=50 model.backbone=resnet50
    mtvision train --resume runs/demo/weights/last.pt
    mtvision train my.yaml --from runs/demo/weights/best.pt   # new run, matching weights (docs/transfer.md)
    torchrun --nproc_per_node 4 $(which mtvision) train my.yaml   # DDP: one process per GPU
    mtvision val runs/demo/weights/best.pt
    mtvision predict runs/demo/weights/best.pt --source photos/ --out predictions/
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from mtvision.cli import app

if TYPE_CHECKING:  # the heavy modules load inside the commands: `train --help` answers at once
    from mtvision.config import Config
    from mtvision.engine.trainer import Trainer

HELP_CONFIG = ("[CONFIG.yaml] then key=value overrides: train.epochs=3. `mtvision config [CONFIG] [key=value...]` "
               "prints every key with its default and comment; a dataset path alone (data.source=export.json) "
               "trains that dataset's own tasks")


@app.command()
def train(
    args: Optional[list[str]] = typer.Argument(None, help=HELP_CONFIG),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue a run from its weights/last.pt"),
    init: Optional[Path] = typer.Option(None, "--from", help="start a new run from a trained checkpoint's "
                                        "matching weights (model.init; docs/transfer.md)"),
    verbose: bool = typer.Option(False, "--verbose", help="the full metric table after every validation, "
                                 "not only at the end"),
) -> None:
    """Train one model on every configured task (default: the synthetic demo)."""
    import torch

    from mtvision.cli import build
    from mtvision.cli.build import console
    from mtvision.cli.resume import finished, resume_config
    from mtvision.cli.validate import validate
    from mtvision.engine import checkpoint as ckpt
    from mtvision.engine.baselines import baseline_results
    from mtvision.engine.console import metric_table
    from mtvision.engine.distributed import cleanup, init_distributed

    path, overrides = build.split_args(args or [])
    overrides = [*overrides, f"model.init={init}"] if init else overrides
    state = ckpt.load_run_checkpoint(resume) if resume else None
    if resume:
        ckpt.remove_stale_temps(resume.parent)  # what a kill during a save left, even if nothing is left to train
    cfg = resume_config(state, path, overrides) if state else build.load(path, overrides)
    validate(cfg)  # before any data is read
    done = finished(state, cfg, resume) if state and resume else None
    if done:
        console.print(done, markup=False, soft_wrap=True)
        return
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    info, device = init_distributed(cfg.run.device)
    run_dir = build.run_dir_of(cfg, resume)
    try:
        with build.no_litter(run_dir, new=resume is None and info.is_main):
            trainer, val_set = build.trainer(cfg, info, device, resume, run_dir=run_dir)
            trainer.verbose = verbose
            _announce_resume(state, cfg, trainer)
            summary = trainer.fit()
        if info.is_main:
            baselines = baseline_results(trainer.tasks, build.eval_loader(cfg, val_set))
            results, title = final_results(summary)
            console.print(title, style="bold", highlight=False)
            console.print(metric_table(results, baselines, title=None, selected=summary.best_metric))
            best = "n/a" if summary.best_score is None else f"{summary.best_score:.4f}"
            console.print(f"best {summary.best_metric} = {best}; run saved to [bold]{summary.run_dir}[/bold]")
    finally:
        cleanup()


def final_results(summary: Any) -> tuple[dict, str]:
    """The results of ``best.pt`` (or of the last epoch when this process did not see the best) and a title
    saying which: the model a user keeps is best.pt, so that is the table to read."""
    if summary.best_results is not None:
        return summary.best_results, (f"final validation vs constant baselines: best.pt "
                                      f"(epoch {summary.best_epoch}/{summary.epochs_run})")
    return summary.results, f"final validation vs constant baselines: last epoch ({summary.epochs_run})"


def _announce_resume(state: Optional[dict], cfg: Config, trainer: Trainer) -> None:
    """Say where a resume continues, and the schedule rule when ``train.epochs`` changed."""
    from mtvision.cli.build import console

    if state is None or not trainer.dist.is_main:
        return
    where = f"epoch {state['epoch'] + 1}, step {state.get('step', 0)}"
    planned = state["config"]["train"]["epochs"]
    lr = trainer.parts.optimizer.param_groups[0]["lr"]
    change = (f"; train.epochs {planned} -> {cfg.train.epochs}: the learning rate follows the schedule of a "
              f"{cfg.train.epochs}-epoch run from here (lr now {lr:.3g})") if planned != cfg.train.epochs else ""
    console.print(f"resuming {trainer.run_dir} at {where}{change}", markup=False, soft_wrap=True)


@app.command()
def val(
    weights: Path = typer.Argument(..., help="a checkpoint (best.pt / last.pt)"),
    data: Optional[Path] = typer.Option(None, "--data", help="combined-format JSON to evaluate (default: the run's)"),
    split: str = typer.Option("val", "--split", help="split of the run's data when --data is not given: val or train"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="default: the run's"),
) -> None:
    """Evaluate a checkpoint: every task's metrics, next to constant baselines."""
    from mtvision.cli import build
    from mtvision.cli.build import console
    from mtvision.data.sources import read_record
    from mtvision.engine.baselines import baseline_results
    from mtvision.engine.console import metric_table
    from mtvision.engine.distributed import DistInfo, resolve_device
    from mtvision.engine.evaluate import evaluate
    from mtvision.engine.optim import resolve_amp

    cfg, model, infos = build.restore(weights)
    if split not in ("val", "train"):
        raise typer.BadParameter("--split must be val or train")
    device = resolve_device(cfg.run.device)
    train_record, val_record = (read_record(data), None) if data else build.splits(cfg, DistInfo())[:2]
    record = train_record if data or split == "train" else val_record
    dataset = build.dataset(cfg, record, infos, train=False)
    loader = build.eval_loader(cfg, dataset, batch_size)
    amp_dtype, _ = resolve_amp(cfg.train.amp, device)
    results = evaluate(model.to(device), loader, device, amp_dtype)
    title = f"{weights} on {data or split} ({len(dataset)} images)"
    console.print(metric_table(results, baseline_results(dict(model.tasks.items()), loader), title=title))


@app.command()
def predict(
    weights: Path = typer.Argument(..., help="a checkpoint (best.pt / last.pt)"),
    source: Path = typer.Option(..., "--source", help="an image file or a folder of images"),
    out: Path = typer.Option(Path("predictions"), "--out", help="output folder"),
    conf: Optional[float] = typer.Option(None, "--conf", min=0.0, max=1.0,
                                         help="detection score threshold (default: the task's own, 0.05)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: the run's run.device)"),
    imgsz: Optional[int] = typer.Option(None, "--imgsz", min=16, help="network input side in pixels (default: the "
                                        "run's data.image_size); the model is fully convolutional"),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="only these tasks: --tasks depth --tasks semseg "
                                              "or --tasks depth,semseg (default: every task)"),
) -> None:
    """Every task's prediction for each image: overlays per task and one predictions.json."""
    from mtvision.cli import build
    from mtvision.cli.build import console
    from mtvision.data.transforms import build_transforms
    from mtvision.engine.distributed import resolve_device
    from mtvision.engine.optim import resolve_amp
    from mtvision.engine.predict import find_images, predict_files

    if weights.suffix == ".onnx":  # an exported model: onnxruntime, the same files
        if any(option is not None for option in (conf, device, imgsz, tasks)):
            raise typer.BadParameter("--conf, --device, --imgsz and --tasks are for checkpoints (.pt); an ONNX "
                                     "model keeps the settings it was exported with")
        from mtvision.cli.export import predict_onnx
        return predict_onnx(weights, source, out)
    cfg, model, _ = build.restore(weights, detection_options({"score_thresh": conf} if conf is not None else {}))
    keep_tasks(model, [name for item in tasks or [] for name in item.split(",") if name])
    device_ = resolve_device(device or cfg.run.device)
    size = (imgsz, imgsz) if imgsz else build.image_size(cfg)
    transform = build_transforms("none", size, train=False)
    amp_dtype, _ = resolve_amp(cfg.train.amp, device_)
    paths = find_images(source)
    json_path = predict_files(model.to(device_), paths, out, transform, device_, amp_dtype)
    console.print(f"predictions of {', '.join(model.tasks)} for {len(paths)} image(s) in [bold]{out}[/bold] "
                  f"({json_path.name})")


def detection_options(options: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{task type: options}`` for :func:`build.restore`: ``--conf`` is the detectors' score threshold."""
    return {"detection": options} if options else {}


def keep_tasks(model: Any, names: list[str]) -> None:
    """Remove every head but ``names`` (all when empty): the others are neither run nor written."""
    if not names:
        return
    unknown = [name for name in names if name not in model.tasks]
    if unknown:
        raise typer.BadParameter(f"--tasks {', '.join(unknown)}: not a task of this model ({', '.join(model.tasks)})")
    for name in [name for name in model.tasks if name not in names]:
        del model.tasks[name]
