"""Where a config becomes objects: records, datasets, a model, a balancing method, a trainer.

Every command that trains or evaluates (``train``, ``val``, ``predict``, ``compare``) builds
through these functions, so a run made by ``compare`` is exactly a run ``train`` would make.
They print config errors and raise ``typer`` errors: they are the CLI's, and nothing below
the CLI sees a :class:`~mtvision.config.Config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import typer
from rich.console import Console
from torch.utils.data import DataLoader

from mtvision.balancing import Balancer, create
from mtvision.balancing.backward import task_parameters
from mtvision.cli.auto_tasks import read_source, tasks_of
from mtvision.config import Config, ConfigError, dump_config, load_config
from mtvision.data.dataset import MultiTaskDataset, SkippingLoader, collate
from mtvision.data.record import DatasetRecord, split_record, thin_labels
from mtvision.data.sampling import SourceSampler, read_sources, source_of, source_weights
from mtvision.data.sources import read_record
from mtvision.data.transforms import build_transforms
from mtvision.engine import checkpoint as ckpt
from mtvision.engine import transfer
from mtvision.engine.distill import Distiller, check_tasks
from mtvision.engine.distributed import DistInfo
from mtvision.engine.freeze import freeze
from mtvision.engine.parts import model_parts, resolve_parts
from mtvision.engine.synthetic_cache import cached_synthetic, cached_synthetic_test
from mtvision.engine.trainer import BalancingSettings, Trainer, TrainSettings
from mtvision.models import MultiTaskModel, TaskSpec, build_model
from mtvision.structures import TaskInfo
from mtvision.tasks import task_type

console = Console()


class Splits(NamedTuple):
    """The records of a run: trained on, selected on, and (for ``compare``) scored on."""

    train: DatasetRecord
    val: DatasetRecord
    test: DatasetRecord | None = None


def trainer(cfg: Config, info: DistInfo, device: torch.device, resume: Optional[Path],
            run_dir: Optional[Path] = None, data: Optional[Splits] = None) -> tuple[Trainer, MultiTaskDataset]:
    """Data, model and trainer of ``cfg`` (resumed from ``resume`` when given); also the val set.

    ``run_dir`` defaults to a new ``runs/<name>`` folder, ``data`` to :func:`splits` of ``cfg``.
    """
    ckpt.seed_everything(cfg.run.seed)
    import_task_types(cfg)
    train_record, val_record, _ = data or splits(cfg, info)
    train_record, val_record = with_known_tasks(cfg, train_record, val_record)
    infos = task_infos(cfg, train_record)
    model = model_of(cfg, infos)
    run_dir = run_dir or run_dir_of(cfg, resume)
    if info.is_main:
        tasks = f"{len(infos)} task{'s' * (len(infos) != 1)} ({', '.join(infos)})"
        console.print(f"{tasks} on {len(train_record.images)} training and "
                      f"{len(val_record.images)} validation images; {cfg.model.backbone}, "
                      f"{model.parameter_counts()['total'] / 1e6:.2f}M parameters, {device}")
    if cfg.model.init and not resume:
        initialise_from(cfg, model, run_dir, info)
    freeze_parts(cfg, model, info)
    train_set, val_set = dataset(cfg, train_record, infos, True), dataset(cfg, val_record, infos, False)
    trainer = Trainer(model, train_set, val_set, train_settings(cfg), run_dir, device, info, balancing_method(cfg, infos),
                      metadata={"config": cfg.model_dump(mode="json"), "task_infos": ckpt.infos_to_plain(infos)},
                      console=console, find_unused_parameters=partially_labelled(train_record, infos),
                      distill=distiller(cfg, model, device), sampler=source_sampler(cfg, train_record, info))
    if resume:
        trainer.resume(resume)
    if info.is_main:  # only now: a run that fails to start leaves no folder and no changed config.yaml
        write_config(cfg, run_dir)
    return trainer, val_set


def run_dir_of(cfg: Config, resume: Optional[Path]) -> Path:
    """The folder of a resumed run (its checkpoint's), else a new ``runs/<name>`` (not created yet)."""
    return resume.resolve().parent.parent if resume else new_run_dir(Path(cfg.run.output) / cfg.run.name)


def write_config(cfg: Config, run_dir: Path) -> None:
    """``config.yaml``: the config in force, written whole or not at all."""
    run_dir.mkdir(parents=True, exist_ok=True)
    temp = run_dir / ".config.yaml.tmp"
    temp.write_text(dump_config(cfg))
    os.replace(temp, run_dir / "config.yaml")


@contextlib.contextmanager
def no_litter(run_dir: Path, new: bool) -> Iterator[None]:
    """Remove a new run's folder when it fails before its first checkpoint (nothing in it to keep)."""
    try:
        yield
    except BaseException:
        if new and run_dir.is_dir() and not (run_dir / "weights" / "last.pt").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise




def initialise_from(cfg: Config, model: MultiTaskModel, run_dir: Path, info: DistInfo) -> None:
    """``model.init``: copy the matching tensors of a trained checkpoint; table on the console and init.json."""
    try:
        report = transfer.initialise(model, cfg.model.init, backbone=cfg.model.backbone)
    except transfer.TransferError as error:
        raise typer.BadParameter(str(error)) from None
    if info.is_main:
        parts = model_parts(model)
        console.print(report.table(parts))
        console.print(transfer.describe(report))
        report.write(run_dir / "init.json", parts)


def freeze_parts(cfg: Config, model: MultiTaskModel, info: DistInfo) -> None:
    """``model.freeze`` applied, and the parts of ``train.lr_mult`` checked, before the trainer exists."""
    try:
        resolve_parts(model, cfg.train.lr_mult, "train.lr_mult")
        frozen = freeze(model, cfg.model.freeze)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if frozen and not task_parameters(model).shared:  # balancing needs a shared parameter to balance
        raise typer.BadParameter(f"model.freeze={cfg.model.freeze} leaves no shared parameter training; "
                                 "keep the neck or a backbone stage trainable (e.g. model.freeze=[backbone])")
    if frozen and info.is_main:
        count = sum(p.numel() for name, p in model.named_parameters() if name in set(frozen))
        console.print(f"frozen: {', '.join(cfg.model.freeze)} ({count / 1e6:.2f}M parameters, BatchNorm in eval mode)")


def distiller(cfg: Config, model: MultiTaskModel, device: torch.device) -> Optional[Distiller]:
    """``train.distill``: the old model of ``from``, frozen, teaching the tasks it shares with the config."""
    settings = cfg.train.distill
    if settings is None:
        return None
    try:
        transfer.read_trained(settings.checkpoint)  # refuses a pickle or a foreign file with the reason
        _, teacher, _ = restore(Path(settings.checkpoint))
        tasks = settings.tasks or [name for name in model.tasks if name in teacher.tasks]
        check_tasks(teacher, model, tasks, f"train.distill ({settings.checkpoint})")
    except ValueError as error:
        raise typer.BadParameter(str(error).replace("model.init", "train.distill.from")) from None
    return Distiller(teacher, tasks, settings.weight).to(device)


def source_sampler(cfg: Config, record: DatasetRecord, info: DistInfo) -> Optional[SourceSampler]:
    """Per-source ``weight`` shares and ``data.mix``; None (plain shuffling) for one source without weights."""
    data = cfg.data
    try:
        weights = source_weights(data.source) if isinstance(data.source, list) else None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if weights is None and data.mix == "batch":
        return None
    return SourceSampler(source_of(record), weights, data.batch_size, data.mix, cfg.run.seed, info.rank,
                         info.world_size)


def listed(source: object) -> list:
    """A ``data.val`` / ``data.test`` value as a list of source entries."""
    return source if isinstance(source, list) else [source]


def with_known_tasks(cfg: Config, train: DatasetRecord, val: DatasetRecord) -> tuple[DatasetRecord, DatasetRecord]:
    """Both splits knowing every label space either has, and model.init's for tasks neither labels: a task
    added from data without the old tasks' labels keeps the old tasks (docs/transfer.md)."""
    tasks = {**val.tasks, **train.tasks}
    if cfg.model.init and any(name not in tasks for name in cfg.tasks):
        try:
            plain = transfer.read_trained(cfg.model.init).get("task_infos", {})
        except transfer.TransferError as error:
            raise typer.BadParameter(str(error)) from None
        tasks = {**ckpt.infos_from_plain(plain), **tasks}
    return dataclasses.replace(train, tasks=tasks), dataclasses.replace(val, tasks={**tasks, **val.tasks})


def split_args(args: list[str]) -> tuple[Optional[Path], list[str]]:
    """``[CONFIG] key=value...``: the first argument is the config file when it has no ``=``."""
    if args and "=" not in args[0]:
        return Path(args[0]), args[1:]
    return None, args


def load(path: Optional[Path], overrides: list[str], base: Optional[dict] = None) -> Config:
    """The validated config; a :class:`ConfigError` reaches the CLI's error boundary (exit 2).

    ``tasks: auto`` (no tasks named, a dataset source) becomes the dataset's own tasks here.
    """
    return load_config(path, overrides, base=base, auto_tasks=tasks_of)


def import_task_types(cfg: Config) -> None:
    """Import every configured task type first: a user's module may declare the kind its data needs."""
    for task in cfg.tasks.values():
        task_type(task.type)


def splits(cfg: Config, info: DistInfo, test: bool = False) -> Splits:
    """Train and validation records, and with ``test`` the test split that only ``compare`` scores.

    A user dataset without ``data.test`` gives up ``test_fraction`` of its images first, with a
    fixed seed so that every seed of a comparison is scored on the same images; ``val_fraction``
    is then held out of the rest with the run's seed. ``label_fraction`` thins the training labels.
    """
    data = cfg.data
    held_out = None
    if data.source == "synthetic":
        s = data.synthetic
        shown = console if info.is_main else None  # says it renders, with a progress bar (first run only)
        train_path, val_path = cached_synthetic(Path(data.cache), s.num_train, s.num_val, s.size, s.max_objects,
                                                s.seed, info, shown)
        train, val = read_record(train_path), read_record(val_path)
        if test:
            held_out = read_record(cached_synthetic_test(Path(data.cache), s.num_train, s.num_val, s.num_test, s.size,
                                                         s.max_objects, s.seed, info, shown))
    else:
        record = read_source(data)  # read once: tasks: auto read it already
        if test:
            record, held_out = (record, read_record(data.test)) if data.test is not None else \
                split_record(record, data.test_fraction, seed=0)
        train, val = (record, read_sources(listed(data.val), data.merge)) if data.val is not None else \
            split_record(record, data.val_fraction, cfg.run.seed)
    if data.label_fraction:
        try:
            train = thin_labels(train, data.label_fraction, cfg.run.seed)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    return Splits(train, val, held_out)


def task_infos(cfg: Config, record: DatasetRecord) -> dict[str, TaskInfo]:
    missing = [name for name in cfg.tasks if name not in record.tasks]
    if missing:
        hints = [f"{m!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(m, record.tasks, 1))
                 else repr(m) for m in missing]
        raise typer.BadParameter(f"task(s) {', '.join(hints)} not in the dataset, which has: {', '.join(record.tasks)}")
    return {name: record.tasks[name] for name in cfg.tasks}


def model_of(cfg: Config, infos: dict[str, TaskInfo]) -> MultiTaskModel:
    specs = {name: TaskSpec(task.type, infos[name], task.options) for name, task in cfg.tasks.items()}
    return build_model(cfg.model.backbone, specs, pretrained=cfg.model.pretrained,
                       neck_channels=cfg.model.neck_channels, architecture=cfg.model.architecture,
                       options=cfg.model.architecture_kwargs())


def dataset(cfg: Config, record: DatasetRecord, infos: dict[str, TaskInfo], train: bool) -> MultiTaskDataset:
    flip_idx = {name: info.flip_idx for name, info in infos.items() if info.keypoint_names}
    void = {name: info.ignore_index for name, info in infos.items()}
    transform = build_transforms(cfg.data.augment, image_size(cfg), flip_idx, train=train, ignore_index=void)
    return MultiTaskDataset(record, tasks=list(infos), transform=transform, skip_corrupt=cfg.data.skip_corrupt)


def eval_loader(cfg: Config, dataset: MultiTaskDataset, batch_size: Optional[int] = None) -> DataLoader:
    """An evaluation loader over the whole of ``dataset`` (no shuffling, no sharding; skipped images left out)."""
    return SkippingLoader(dataset, batch_size=batch_size or cfg.data.batch_size, num_workers=cfg.data.workers,
                      collate_fn=collate)


def partially_labelled(record: DatasetRecord, infos: dict[str, TaskInfo]) -> bool:
    """Whether some training image lacks a configured task (DDP must then allow unused heads)."""
    coverage = record.coverage()
    return any(coverage[name] < len(record.images) for name in infos)


def image_size(cfg: Config) -> tuple[int, int]:
    size = cfg.data.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


def balancing_method(cfg: Config, infos: dict[str, TaskInfo]) -> Balancer:
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


def train_settings(cfg: Config) -> TrainSettings:
    t = cfg.train
    return TrainSettings(
        epochs=t.epochs, batch_size=cfg.data.batch_size, workers=cfg.data.workers, lr=t.lr,
        weight_decay=t.weight_decay, warmup_epochs=t.warmup_epochs, schedule=t.schedule, amp=t.amp,
        grad_clip=t.grad_clip, patience=t.patience, best_metric=t.best_metric, best_mode=t.best_mode,
        max_nonfinite=t.max_nonfinite, eval_every=t.eval_every, predict_images=t.predict_images,
        predict_every_epoch=t.predict_every_epoch, seed=cfg.run.seed, tensorboard=cfg.logging.tensorboard,
        lr_mult=dict(t.lr_mult),
        balancing=BalancingSettings(**cfg.balancing.model_dump(include={"gradients", "every", "diagnostics"})))


def new_run_dir(wanted: Path) -> Path:
    """``runs/demo``, or ``runs/demo2``, ``runs/demo3``... when it is taken."""
    candidate, number = wanted, 2
    while candidate.exists():
        candidate, number = wanted.with_name(f"{wanted.name}{number}"), number + 1
    return candidate


def restore(weights: Path, options: Optional[dict[str, dict]] = None
            ) -> tuple[Config, MultiTaskModel, dict[str, TaskInfo]]:
    """The model of a checkpoint, rebuilt from the checkpoint alone (config + task infos + weights).

    ``options`` ``{task type: {option: value}}`` change inference settings of every task of that
    type (``predict --conf``: the detectors' ``score_thresh``); weights never depend on them.
    """
    state = ckpt.load_run_checkpoint(weights)
    try:
        cfg = load(None, [], base=state["config"])
    except ConfigError as error:
        raise ckpt.CheckpointError(weights, f"its config does not validate here ({error})",
                                   f"use the mtvision version that wrote it ({_written_by(state)})") from None
    infos = ckpt.infos_from_plain(state["task_infos"])
    for task in cfg.tasks.values():
        task.options = {**task.options, **(options or {}).get(task.type, {})}
    cfg.model.pretrained = False  # the checkpoint holds the weights: never download
    cfg.model.init = None  # nor copy another checkpoint's: these weights are the model
    model = model_of(cfg, infos)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ckpt.CheckpointError(weights, "its weights do not fit the model its own config builds "
                                   f"({str(error).splitlines()[1].strip() if chr(10) in str(error) else error})",
                                   f"written by another mtvision version ({_written_by(state)})?") from None
    return cfg, model, infos


def _written_by(state: dict) -> str:
    return f"mtvision {state.get('mtvision', {}).get('version', 'before 0.1.0')}"
