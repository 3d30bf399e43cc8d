"""``mtvision train | val | predict``: where the config becomes datasets, a model and a trainer.

``mtvision train configs/demo.yaml`` is the demo (`make demo`): it renders (once, cached) the synthetic
scenes and trains every dense and image-level task on them jointly, then prints each
task's validation metrics next to trivial baselines.

Example (shell)::

    mtvision train configs/demo.yaml                # the demo (the defaults + a best metric)
    mtvision train configs/example_coco.yaml train.epochs=50 model.backbone=resnet50
    mtvision train --resume runs/demo/weights/last.pt
    torchrun --nproc_per_node 4 $(which mtvision) train my.yaml   # DDP: one process per GPU
    mtvision val runs/demo/weights/best.pt
    mtvision predict runs/demo/weights/best.pt --source photos/ --out predictions/
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.console import Console
from torch.utils.data import DataLoader

from mtvision.balancing import Balancer, create
from mtvision.cli import app
from mtvision.config import Config, ConfigError, dump_config, load_config
from mtvision.data.dataset import MultiTaskDataset, collate
from mtvision.data.record import DatasetRecord, split_record
from mtvision.data.sources import read_record
from mtvision.data.transforms import build_transforms
from mtvision.engine import checkpoint as ckpt
from mtvision.engine.baselines import baseline_results
from mtvision.engine.console import metric_table
from mtvision.engine.distributed import DistInfo, cleanup, init_distributed, resolve_device
from mtvision.engine.evaluate import evaluate
from mtvision.engine.optim import resolve_amp
from mtvision.engine.predict import find_images, predict_files
from mtvision.engine.synthetic_cache import cached_synthetic
from mtvision.engine.trainer import BalancingSettings, Trainer, TrainSettings
from mtvision.models import MultiTaskModel, TaskSpec, build_model
from mtvision.structures import TaskInfo
from mtvision.tasks import task_type

console = Console()


@app.command()
def train(
    args: Optional[list[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides: train.epochs=3"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue a run from its weights/last.pt"),
) -> None:
    """Train one model on every configured task (default: the synthetic demo)."""
    path, overrides = _split_args(args or [])
    state = ckpt.load_checkpoint(resume) if resume else None
    cfg = _load(path, overrides, base=state["config"] if state else None)
    if cfg.run.threads is not None:
        torch.set_num_threads(cfg.run.threads)
    info, device = init_distributed(cfg.run.device)
    try:
        trainer, val_set = _trainer(cfg, info, device, resume)
        summary = trainer.fit()
        if info.is_main:
            baselines = baseline_results(trainer.tasks, _loader(cfg, val_set))
            console.print(metric_table(summary.results, baselines, title="final validation vs constant baselines"))
            best = "n/a" if summary.best_score is None else f"{summary.best_score:.4f}"
            console.print(f"best {summary.best_metric} = {best}; run saved to [bold]{summary.run_dir}[/bold]")
    finally:
        cleanup()


def _trainer(cfg: Config, info: DistInfo, device: torch.device, resume: Optional[Path]
             ) -> tuple[Trainer, MultiTaskDataset]:
    """Data, model and trainer of ``cfg`` (resumed from ``resume`` when given); also the val set."""
    ckpt.seed_everything(cfg.run.seed)
    for task in cfg.tasks.values():  # imports a user's task module, which may declare the kind its data needs
        task_type(task.type)
    train_record, val_record = _records(cfg, info)
    infos = _task_infos(cfg, train_record)
    model = _model(cfg, infos)
    run_dir = resume.resolve().parent.parent if resume else _new_run_dir(Path(cfg.run.output) / cfg.run.name)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(cfg))
        console.print(f"{len(infos)} tasks ({', '.join(infos)}) on {len(train_record.images)} training and "
                      f"{len(val_record.images)} validation images; {cfg.model.backbone}, "
                      f"{model.parameter_counts()['total'] / 1e6:.2f}M parameters, {device}")
    train_set, val_set = _dataset(cfg, train_record, infos, True), _dataset(cfg, val_record, infos, False)
    trainer = Trainer(model, train_set, val_set, _settings(cfg), run_dir, device, info, _method(cfg, infos),
                      metadata={"config": cfg.model_dump(mode="json"), "task_infos": ckpt.infos_to_plain(infos)},
                      console=console, find_unused_parameters=_partially_labelled(train_record, infos))
    if resume:
        trainer.resume(resume)
    return trainer, val_set


@app.command()
def val(
    weights: Path = typer.Argument(..., help="a checkpoint (best.pt / last.pt)"),
    data: Optional[Path] = typer.Option(None, "--data", help="combined-format JSON to evaluate (default: the run's)"),
    split: str = typer.Option("val", "--split", help="split of the run's data when --data is not given: val or train"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="default: the run's"),
) -> None:
    """Evaluate a checkpoint: every task's metrics, next to constant baselines."""
    cfg, model, infos = _restore(weights)
    if split not in ("val", "train"):
        raise typer.BadParameter("--split must be val or train")
    device = resolve_device(cfg.run.device)
    train_record, val_record = (read_record(data), None) if data else _records(cfg, DistInfo())
    record = train_record if data or split == "train" else val_record
    dataset = _dataset(cfg, record, infos, train=False)
    loader = _loader(cfg, dataset, batch_size)
    amp_dtype, _ = resolve_amp(cfg.train.amp, device)
    results = evaluate(model.to(device), loader, device, amp_dtype)
    title = f"{weights} on {data or split} ({len(dataset)} images)"
    console.print(metric_table(results, baseline_results(dict(model.tasks.items()), loader), title=title))


@app.command()
def predict(
    weights: Path = typer.Argument(..., help="a checkpoint (best.pt / last.pt)"),
    source: Path = typer.Option(..., "--source", help="an image file or a folder of images"),
    out: Path = typer.Option(Path("predictions"), "--out", help="output folder"),
) -> None:
    """Every task's prediction for each image: overlays per task and one predictions.json."""
    cfg, model, _ = _restore(weights)
    device = resolve_device(cfg.run.device)
    transform = build_transforms("none", _image_size(cfg), train=False)
    amp_dtype, _ = resolve_amp(cfg.train.amp, device)
    paths = find_images(source)
    json_path = predict_files(model.to(device), paths, out, transform, device, amp_dtype)
    console.print(f"predictions for {len(paths)} image(s) in [bold]{out}[/bold] ({json_path.name})")


# --- config -> objects ----------------------------------------------------------------
def _split_args(args: list[str]) -> tuple[Optional[Path], list[str]]:
    """``[CONFIG] key=value...``: the first argument is the config file when it has no ``=``."""
    if args and "=" not in args[0]:
        return Path(args[0]), args[1:]
    return None, args


def _load(path: Optional[Path], overrides: list[str], base: Optional[dict] = None) -> Config:
    try:
        return load_config(path, overrides, base=base)
    except ConfigError as error:
        console.print(f"[red]config error[/red]\n{error}")
        raise typer.Exit(2) from None


def _records(cfg: Config, info: DistInfo) -> tuple[DatasetRecord, DatasetRecord]:
    data = cfg.data
    if data.source == "synthetic":
        s = data.synthetic
        train, val = cached_synthetic(Path(data.cache), s.num_train, s.num_val, s.size, s.max_objects, s.seed, info)
        return read_record(train), read_record(val)
    record = read_record(data.source)
    if data.val is not None:
        return record, read_record(data.val)
    return split_record(record, data.val_fraction, cfg.run.seed)


def _task_infos(cfg: Config, record: DatasetRecord) -> dict[str, TaskInfo]:
    missing = [name for name in cfg.tasks if name not in record.tasks]
    if missing:
        hints = [f"{m!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(m, record.tasks, 1))
                 else repr(m) for m in missing]
        raise typer.BadParameter(f"task(s) {', '.join(hints)} not in the dataset, which has: {', '.join(record.tasks)}")
    return {name: record.tasks[name] for name in cfg.tasks}


def _model(cfg: Config, infos: dict[str, TaskInfo]) -> MultiTaskModel:
    specs = {name: TaskSpec(task.type, infos[name], task.options) for name, task in cfg.tasks.items()}
    return build_model(cfg.model.backbone, specs, pretrained=cfg.model.pretrained,
                       neck_channels=cfg.model.neck_channels)


def _dataset(cfg: Config, record: DatasetRecord, infos: dict[str, TaskInfo], train: bool) -> MultiTaskDataset:
    flip_idx = {name: info.flip_idx for name, info in infos.items() if info.keypoint_names}
    void = {name: info.ignore_index for name, info in infos.items()}
    transform = build_transforms(cfg.data.augment, _image_size(cfg), flip_idx, train=train, ignore_index=void)
    return MultiTaskDataset(record, tasks=list(infos), transform=transform, skip_corrupt=cfg.data.skip_corrupt)


def _loader(cfg: Config, dataset: MultiTaskDataset, batch_size: Optional[int] = None) -> DataLoader:
    """An evaluation loader over the whole of ``dataset`` (no shuffling, no sharding)."""
    return DataLoader(dataset, batch_size=batch_size or cfg.data.batch_size, num_workers=cfg.data.workers,
                      collate_fn=collate)


def _partially_labelled(record: DatasetRecord, infos: dict[str, TaskInfo]) -> bool:
    """Whether some training image lacks a configured task (DDP must then allow unused heads)."""
    coverage = record.coverage()
    return any(coverage[name] < len(record.images) for name in infos)


def _image_size(cfg: Config) -> tuple[int, int]:
    size = cfg.data.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


def _method(cfg: Config, infos: dict[str, TaskInfo]) -> Balancer:
    """The balancing method; ``weights: {task: w}`` becomes ``fixed``'s per-index ``weights`` option
    (a task not listed weighs 1), since only the CLI knows the task order."""
    balancing, options = cfg.balancing, dict(cfg.balancing.options)
    unknown = [name for name in balancing.weights if name not in infos]
    if unknown:
        raise typer.BadParameter(f"balancing.weights names {', '.join(unknown)}, not configured tasks: "
                                 f"{', '.join(infos)}")
    if balancing.weights:
        if "weights" in options:
            raise typer.BadParameter("give fixed weights once: balancing.weights or balancing.options.weights")
        options["weights"] = [balancing.weights.get(name, 1.0) for name in infos]
    return create(balancing.method, num_tasks=len(infos), **options)


def _settings(cfg: Config) -> TrainSettings:
    t = cfg.train
    return TrainSettings(
        epochs=t.epochs, batch_size=cfg.data.batch_size, workers=cfg.data.workers, lr=t.lr,
        weight_decay=t.weight_decay, warmup_epochs=t.warmup_epochs, schedule=t.schedule, amp=t.amp,
        grad_clip=t.grad_clip, patience=t.patience, best_metric=t.best_metric, best_mode=t.best_mode,
        max_nonfinite=t.max_nonfinite, eval_every=t.eval_every, predict_images=t.predict_images,
        predict_every_epoch=t.predict_every_epoch, seed=cfg.run.seed, tensorboard=cfg.logging.tensorboard,
        balancing=BalancingSettings(**cfg.balancing.model_dump(include={"gradients", "every", "diagnostics"})))


def _new_run_dir(wanted: Path) -> Path:
    """``runs/demo``, or ``runs/demo2``, ``runs/demo3``... when it is taken."""
    candidate, number = wanted, 2
    while candidate.exists():
        candidate, number = wanted.with_name(f"{wanted.name}{number}"), number + 1
    return candidate


def _restore(weights: Path) -> tuple[Config, MultiTaskModel, dict[str, TaskInfo]]:
    """The model of a checkpoint, rebuilt from the checkpoint alone (config + task infos + weights)."""
    state = ckpt.load_checkpoint(weights)
    cfg = _load(None, [], base=state["config"])
    infos = ckpt.infos_from_plain(state["task_infos"])
    cfg.model.pretrained = False  # the checkpoint holds the weights: never download
    model = _model(cfg, infos)
    model.load_state_dict(state["model"])
    return cfg, model, infos
