"""The training loop around :func:`~mtvision.engine.step.train_step`: epochs, validation,
best checkpoint, early stopping, resume, logs and plots -- and nothing that touches the
weights, which is the step's job alone.

The balancing method (default: equal weighting) is the trainer's too: its own parameters
(UW) train with the model, its state (DWA, FAMO, the weights reused between recomputations)
goes into every checkpoint, ``end_epoch()`` closes each epoch, and its diagnostics become
``balance/...`` columns of ``results.csv`` plus ``balance.png`` and, for gradient methods (which
compute per-task gradients), ``conflicts.png``. A method
that ``needs_lookahead`` (Auto-Lambda) gets the validation loss's gradient one optimizer step
ahead, on the next batch of a cycling pass over the validation loader drawn under a forked RNG
(the training shuffle and augmentations are unchanged; ``engine/lookahead.py``).

The trainer takes objects and a small :class:`TrainSettings`; it never sees the config
(the CLI builds everything). Under ``torchrun`` every rank runs the same loop; rank 0
alone prints, logs and saves.

Example:
    >>> trainer = Trainer(model, train_set, val_set, TrainSettings(epochs=3), run_dir=Path("runs/x"))  # doctest: +SKIP
    >>> summary = trainer.fit()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from mtvision.balancing import Balancer, create
from mtvision.balancing.backward import task_parameters
from mtvision.balancing.diagnostics import BalanceMonitor
from mtvision.data.dataset import SkippingLoader, collate
from mtvision.engine import checkpoint as ckpt
from mtvision.engine.console import epoch_line, epoch_progress, metric_table
from mtvision.engine.distributed import DistInfo, ShardSampler, sync_buffers, train_sampler, unwrap, wrap_model
from mtvision.engine.evaluate import Results, evaluate, higher_is_better, is_better
from mtvision.engine.interrupts import RunInterrupted, SkippingSampler, StopRequest
from mtvision.engine.loggers import CSVLogger, Row, TensorBoardLogger
from mtvision.engine.lookahead import CyclingBatches, ValidationLookahead
from mtvision.engine.model_card import gradient_mode, write_model_card
from mtvision.engine.optim import build_optimizer, build_scheduler, group_lrs, resolve_amp
from mtvision.engine.plots import plot_balancing, plot_results
from mtvision.engine.predict import save_prediction_grid
from mtvision.engine.step import Distill, NonFiniteLossError, StepParts, train_step


@dataclass
class BalancingSettings:
    """The ``balancing.*`` keys the loop needs, under their config names (the method itself
    is built by the CLI from ``balancing.method`` / ``options``)."""

    gradients: Literal["auto", "parameters", "parameters_streamed", "parameters_stored", "representation"] = "auto"
    every: int = 1
    diagnostics: bool = True


@dataclass
class TrainSettings:
    """How to train; every field mirrors a ``train.*`` / ``data.*`` config key."""

    epochs: int = 10
    batch_size: int = 16
    workers: int = 0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    amp: str = "auto"
    grad_clip: float | None = 10.0
    patience: int | None = None
    best_metric: str | None = None  # "val/<task>/<metric>"; None = first task's primary metric
    best_mode: str = "auto"
    max_nonfinite: int = 5
    eval_every: int = 1
    predict_images: int = 4
    predict_every_epoch: bool = False
    seed: int = 0
    tensorboard: bool = False
    lr_mult: dict[str, float] = field(default_factory=dict)  # train.lr_mult: {part: factor} (engine/optim.py)
    balancing: BalancingSettings = field(default_factory=BalancingSettings)


@dataclass
class FitSummary:
    """What a finished run reports: where it is, its last validation and its best score."""

    run_dir: Path
    results: Results
    best_metric: str
    best_score: float | None
    epochs_run: int
    stopped_early: bool = False
    best_results: Results | None = None  # the validation that saved best.pt, when this process saw it
    best_epoch: int | None = None


@dataclass
class _State:
    """The loop's own resumable state (the rest lives in the model/optimizer objects)."""

    epoch: int = 0  # last completed epoch; also the sampler epoch (shuffles are seeded from it)
    best_score: float | None = None
    bad_evals: int = 0  # evaluations since the last new best (early stopping)
    elapsed: float = 0.0  # seconds of training before this process (resume)
    nonfinite: int = 0  # consecutive skipped steps
    results: Results = field(default_factory=dict)
    # Position inside epoch ``epoch + 1`` (an interrupted epoch): batches done, and the sums
    # of the logged train values over its counted steps, so its results.csv row is whole.
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counted: int = 0


class Trainer:
    """Train ``model`` on ``train_set``, validate on ``val_set``, write ``run_dir``."""

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset, settings: TrainSettings,
                 run_dir: Path, device: torch.device | None = None, dist_info: DistInfo | None = None,
                 method: Balancer | None = None, metadata: dict[str, Any] | None = None,
                 console: Console | None = None, find_unused_parameters: bool = False,
                 sampler: Sampler | None = None, distill: Distill | None = None) -> None:
        self.settings, self.run_dir = settings, Path(run_dir)
        self.device = device or torch.device("cpu")
        self.dist = dist_info or DistInfo()
        self.console = console if self.dist.is_main else None
        self.metadata = metadata or {}  # saved into every checkpoint (resolved config, task infos)
        self.model = wrap_model(model.to(self.device), self.device, self.dist, find_unused_parameters)
        self.tasks = dict(unwrap(self.model).tasks.items())
        self.val_set = val_set
        self.sampler = sampler if sampler is not None else train_sampler(train_set, self.dist, settings.seed)
        self.position = SkippingSampler(self.sampler)  # leaves out the batches a mid-epoch resume has done
        self.train_loader = self._loader(train_set, self.position, drop_last=len(self.sampler) > settings.batch_size)
        # Its own generator: a loader draws a seed when it starts, which from the global RNG would make
        # train.eval_every change the training run (shuffles and augmentations after a validation).
        self.val_loader = self._loader(val_set, ShardSampler(len(val_set), self.dist.rank, self.dist.world_size),
                                       generator=torch.Generator().manual_seed(settings.seed))
        self.amp_dtype, use_scaler = resolve_amp(settings.amp, self.device)
        self.method = (method or create("ew", num_tasks=len(self.tasks))).to(self.device)
        optimizer = build_optimizer(self.model, settings.lr, settings.weight_decay, extra=self.method.parameters(),
                                    lr_mult=settings.lr_mult)
        steps = len(self.train_loader)
        scheduler = build_scheduler(optimizer, round(settings.warmup_epochs * steps), settings.epochs * steps,
                                    settings.schedule)
        balancing = settings.balancing
        self.parts = StepParts(
            optimizer=optimizer, scheduler=scheduler,
            scaler=torch.amp.GradScaler(self.device.type, enabled=use_scaler), method=self.method,
            params=task_parameters(unwrap(self.model)), amp_dtype=self.amp_dtype, grad_clip=settings.grad_clip,
            gradients=gradient_mode(None if balancing.gradients == "auto" else balancing.gradients, self.method,
                                    unwrap(self.model)), every=balancing.every,
            monitor=BalanceMonitor(list(self.tasks)) if balancing.diagnostics else None, distill=distill)
        if getattr(self.method, "needs_lookahead", False):  # Auto-Lambda: validation gradient one step ahead
            self.parts.lookahead = ValidationLookahead(
                unwrap(self.model), self.parts.params.shared, optimizer, CyclingBatches(self.val_loader, self.device),
                self.amp_dtype, settings.grad_clip, self.parts.scaler)
        self.best_metric, self.higher = self._best_metric()
        self.state = _State()
        self.loggers: list[Any] = []
        self.stop = StopRequest()
        self._pending_rng: dict[str, Any] | None = None  # a mid-epoch resume's RNG, set once its loader started
        self.skipped_images: set[str] = set()  # corrupt images already reported (each is listed once)
        self.verbose = False  # the full metric table after every validation, not only at the end
        self.best_results: Results | None = None
        self.best_epoch: int | None = None

    # --- public ---------------------------------------------------------------------
    def resume(self, path: str | Path) -> None:
        """Continue from a ``last.pt``: weights, optimizer, scheduler, scaler, RNG, balancing and loop state.

        The learning rate is recomputed from the schedule at the saved step: equal to the
        saved one when nothing changed, and the new schedule's when ``epochs`` was extended.
        """
        state = ckpt.load_run_checkpoint(path, keys=ckpt.RESUME_KEYS)
        unwrap(self.model).load_state_dict(state["model"])
        self.method.load_state_dict(state["balancing"])
        last = state["balancing_last_weights"]  # reused between recomputations (balancing.every)
        self.method.last_weights = None if last is None else last.to(self.device)
        self.parts.optimizer.load_state_dict(state["optimizer"])
        self.parts.scheduler.load_state_dict(state["scheduler"])
        self.parts.scaler.load_state_dict(state["scaler"])
        self._apply_schedule()
        self.state = _State(epoch=state["epoch"], best_score=state["best_score"], bad_evals=state["bad_evals"],
                            elapsed=state["elapsed"], nonfinite=state.get("nonfinite", 0), step=state.get("step", 0),
                            sums=dict(state.get("epoch_sums", {})), counted=state.get("epoch_counted", 0))
        if self.parts.lookahead is not None:  # Auto-Lambda's validation draws continue where they were
            self.parts.lookahead.batches.resume_at(state.get("lookahead_draws", 0))
        if self.state.step:  # mid-epoch: the loader draws a seed from the RNG when it starts, restore after it
            self._pending_rng = state["rng"]
        else:
            ckpt.set_rng_state(state["rng"])

    def _apply_schedule(self) -> None:
        """Each group's lr from the schedule at the current step (the new one after ``epochs`` changed)."""
        scheduler = self.parts.scheduler
        for group, base, factor in zip(self.parts.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in self.parts.optimizer.param_groups]

    def fit(self) -> FitSummary:
        """Run the remaining epochs; returns the last validation results and the best score.

        On SIGINT / SIGTERM the step in progress finishes, ``last.pt`` records the exact
        position and :class:`~mtvision.engine.interrupts.RunInterrupted` is raised.
        """
        self._open_loggers()
        self._start = time.perf_counter() - self.state.elapsed
        stopped = False
        with self.stop:
            for epoch in range(self.state.epoch + 1, self.settings.epochs + 1):
                started = time.perf_counter()
                row: Row = {"epoch": epoch, **self._train_epoch(epoch)}
                self.state.epoch = epoch
                trained, validated = time.perf_counter(), None
                if epoch % self.settings.eval_every == 0 or epoch == self.settings.epochs:
                    stopped = self._validate(epoch, row)
                    validated = time.perf_counter() - trained
                self._print_epoch(epoch, row, trained - started, validated)
                self.state.elapsed = time.perf_counter() - self._start
                row["time"] = round(self.state.elapsed, 2)
                self._log(row)
                self._save("last.pt")
                self._report_skipped()
                if stopped:
                    break
                if self.stop.requested() and epoch < self.settings.epochs:
                    self._interrupted(epoch + 1)
        self._finish()
        return FitSummary(self.run_dir, self.state.results, self.best_metric, self.state.best_score,
                          self.state.epoch, stopped, self.best_results, self.best_epoch)

    def _print_epoch(self, epoch: int, row: Row, train_seconds: float, val_seconds: float | None) -> None:
        """The epoch's one line: times, mean losses, the selecting metric and its best so far."""
        if self.console is None:
            return
        losses = {key[6:-5] or "total": value for key, value in row.items()
                  if key.startswith("train/") and key.endswith("loss") and key.count("/") <= 2}
        score = row.get(self.best_metric) if val_seconds is not None else None
        new_best = score is not None and self.best_epoch == epoch
        self.console.print(epoch_line(epoch, self.settings.epochs, train_seconds, val_seconds, losses,
                                      self.best_metric, score, self.state.best_score, new_best, self.console.width),
                           soft_wrap=True)

    # --- one epoch ------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> Row:
        self.model.train()
        self.sampler.set_epoch(epoch)
        if self.parts.monitor is not None:
            self.parts.monitor.reset()
        self.position.skip = self.state.step * self.settings.batch_size
        with epoch_progress(self.console, len(self.train_loader), f"epoch {epoch}/{self.settings.epochs}") as bar:
            batches = iter(self.train_loader)
            if self._pending_rng is not None:
                ckpt.set_rng_state(self._pending_rng)
                self._pending_rng = None
            for batch in batches:
                self._step(batch, bar)
                if self.stop.requested():
                    self._interrupted(epoch)
        self.position.skip = 0
        sums, steps = self.state.sums, self.state.counted
        self.state.step, self.state.sums, self.state.counted = 0, {}, 0
        sync_buffers(self.model)
        self.method.end_epoch()  # epoch-level methods (DWA) close the epoch's mean losses
        row = {f"train/{key}": value / max(steps, 1) for key, value in sums.items() if key != "skipped"}
        row["lr"] = self.parts.optimizer.param_groups[0]["lr"]
        row.update(group_lrs(self.parts.optimizer))  # lr/<group> of train.lr_mult
        if self.parts.monitor is not None:
            row.update(self.parts.monitor.summary())
        return row

    def _step(self, batch: Any, bar: Any) -> None:
        """One training step, and its values added to the epoch's sums (the position advances)."""
        values = train_step(self.model, batch.to(self.device, non_blocking=True), self.parts)
        self.state.step += 1
        if self._count_nonfinite(values):
            return
        self.state.counted += 1
        bar.advance(values)
        for key, value in values.items():
            self.state.sums[key] = self.state.sums.get(key, 0.0) + value

    def _interrupted(self, epoch: int) -> None:
        """Save the exact position (``epoch`` in progress, its steps done) and stop."""
        self.state.elapsed = time.perf_counter() - self._start
        self._save("last.pt")
        path = self.run_dir / "weights" / "last.pt" if self.dist.is_main else None
        raise RunInterrupted(self.stop.signum or 2, epoch, self.state.step, path)

    def _report_skipped(self) -> None:
        """List the corrupt images skipped so far (each once): they are left out, never replaced."""
        found: dict[str, str] = {}
        for dataset in (self.train_loader.dataset, self.val_set):
            found.update(getattr(dataset, "skipped", {}))
        new = {path: why for path, why in found.items() if path not in self.skipped_images}
        self.skipped_images.update(new)
        if new and self.console is not None:
            self.console.print(f"[yellow]left out {len(new)} unreadable image(s) (data.skip_corrupt); "
                               f"{len(self.skipped_images)} in all:[/yellow]", soft_wrap=True)
            for path, why in new.items():
                self.console.print(f"  {path}: {why}", markup=False, soft_wrap=True)

    def _count_nonfinite(self, values: dict[str, float]) -> bool:
        """True for a skipped step; raises after ``max_nonfinite`` consecutive ones."""
        if not values["skipped"]:
            self.state.nonfinite = 0
            return False
        self.state.nonfinite += 1
        if self.state.nonfinite >= self.settings.max_nonfinite:
            bad = [k[:-5] for k, v in values.items() if k.endswith("/loss") and not math.isfinite(v)]
            raise NonFiniteLossError(
                f"{self.state.nonfinite} consecutive steps had a non-finite loss (tasks: {', '.join(bad) or 'none'}, "
                f"grad norm {values['grad_norm']}). Lower train.lr, set train.grad_clip, try train.amp=off, "
                f"or check those tasks' labels.")
        return True

    def _validate(self, epoch: int, row: Row) -> bool:
        """Evaluate, log the metrics into ``row``, track the best; True to stop early."""
        results = evaluate(self.model, self.val_loader, self.device, self.amp_dtype)
        self.state.results = results
        row.update({f"val/{task}/{metric}": value for task, metrics in results.items()
                    for metric, value in metrics.items()})
        if self.console is not None and self.verbose:
            self.console.print(metric_table(results, title=f"validation, epoch {epoch}"))
        score = row[self.best_metric]
        if is_better(score, self.state.best_score, self.higher):
            self.state.best_score, self.state.bad_evals = score, 0
            self.best_results, self.best_epoch = results, epoch
            self._save("best.pt")
        else:
            self.state.bad_evals += 1
        if self.settings.predict_every_epoch:
            self._draw(f"epoch{epoch}")
        patience = self.settings.patience
        return patience is not None and self.state.bad_evals >= patience

    # --- outputs --------------------------------------------------------------------
    def _save(self, name: str) -> None:
        if not self.dist.is_main:
            return
        optim = self.parts
        ckpt.save_checkpoint(self.run_dir / "weights" / name, {
            "model": unwrap(self.model).state_dict(), "optimizer": optim.optimizer.state_dict(),
            "scheduler": optim.scheduler.state_dict(), "scaler": optim.scaler.state_dict(),
            "rng": ckpt.rng_state(), "epoch": self.state.epoch, "best_score": self.state.best_score,
            "bad_evals": self.state.bad_evals, "elapsed": self.state.elapsed, "best_metric": self.best_metric,
            "balancing": self.method.state_dict(), "balancing_last_weights": self.method.last_weights,
            "step": self.state.step, "epoch_sums": dict(self.state.sums), "epoch_counted": self.state.counted,
            "nonfinite": self.state.nonfinite, "mtvision": ckpt.stamp(),
            "lookahead_draws": optim.lookahead.batches.drawn if optim.lookahead is not None else 0,
            **self.metadata,
        })

    def _open_loggers(self) -> None:
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temps(self.run_dir / "weights")
        write_model_card(unwrap(self.model), self.run_dir / "model.json")
        self.loggers = [CSVLogger(self.run_dir / "results.csv", resume_epoch=self.state.epoch)]
        if self.settings.tensorboard:
            self.loggers.append(TensorBoardLogger(self.run_dir))

    def _log(self, row: Row) -> None:
        for logger in self.loggers:
            logger.log(row)

    def _finish(self) -> None:
        if not self.dist.is_main:
            return
        for logger in self.loggers:
            logger.close()
        if self.loggers and self.loggers[0].rows:
            plot_results(self.loggers[0].rows, self.run_dir / "results.png")
            if self.parts.monitor is not None:
                plot_balancing(self.loggers[0].rows, self.run_dir)
        self._draw("final")

    def _draw(self, tag: str) -> None:
        count = min(self.settings.predict_images, len(self.val_set))
        if self.dist.is_main and count:
            save_prediction_grid(unwrap(self.model), self.val_set, range(count), self.run_dir / "predictions" / tag,
                                 self.device, self.amp_dtype)

    # --- set-up helpers -------------------------------------------------------------
    def _loader(self, dataset: Dataset, sampler: Any, drop_last: bool = False,
                generator: torch.Generator | None = None) -> DataLoader:
        return SkippingLoader(dataset, batch_size=self.settings.batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=self.settings.workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", generator=generator)

    def _best_metric(self) -> tuple[str, bool]:
        """The validation column that selects ``best.pt``, and whether higher is better."""
        name = self.settings.best_metric
        if name is None:
            task = next(iter(self.tasks.values()))
            name = f"val/{task.name}/{task.primary_metric}"
        split, _, rest = name.partition("/")
        task_name, _, metric = rest.partition("/")
        if split != "val" or task_name not in self.tasks:
            raise ValueError(f"best metric {name!r} must be val/<task>/<metric> with a task among "
                             f"{', '.join(self.tasks)} (selection never uses the test split)")
        higher = higher_is_better(self.tasks[task_name], metric)
        return name, higher if self.settings.best_mode == "auto" else self.settings.best_mode == "max"
