"""Which tasks help which: TAG lookahead affinity and gradient cosines, measured during training.

**Affinity** (Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task Learning",
NeurIPS 2021, eq. 3): on a batch ``X`` at step ``t``, with the shared parameters ``θ_s``
(everything :func:`~mtvision.balancing.backward.task_parameters` does not give to one task)::

    Z_{i→j} = 1 − L_j(X, θ_s after one step on task i alone, θ_j) / L_j(X, θ_s, θ_j)

``Z_{i→j} > 0``: a step on ``i`` lowers ``j``'s loss (``i`` helps ``j``); ``< 0``: it raises it.
The step is the optimizer's own (:func:`~mtvision.analysis.lookahead.lookahead`: AdamW from
the current moments, not written back); heads keep their values; the before and after losses
are taken on the same batch, in training mode, with the same random draws (detection's RoI
sampling), and BatchNorm's running statistics untouched. Averaged over every ``every``-th step
of a short joint run; a pair counts only the steps where both tasks had labels (partial labels).

**Gradient cosine** of the tasks on the shared parameters, per step: not computed here but by
the diagnostics of :func:`~mtvision.balancing.backward.balanced_backward` (the single place
that computes per-task gradients), averaged by :class:`~mtvision.balancing.diagnostics.BalanceMonitor`.
The probe calls ``balanced_backward`` with :class:`_Recorder`, a gradient "method" that keeps a
copy of the per-task rows ``G[k, D]`` it is given: the same rows are the lookahead's gradients.

**Cost**: the probe's seconds against the rest of the run (the training steps, data loading
included), ``cost_ratio = total / (total − probe)``: the run's time with the measurement over
its time without it. The probe runs under a forked RNG, so the training trajectory is the one
the same run would follow without it.

Example:
    >>> import torch
    >>> from mtvision.analysis.affinity import AffinityProbe  # doctest: +SKIP
    >>> probe = AffinityProbe(model, optimizer, grad_clip=10.0)  # doctest: +SKIP
    >>> probe.measure(batch); probe.affinity()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.optim import Optimizer

from mtvision.analysis.lookahead import lookahead
from mtvision.balancing.backward import balanced_backward, task_parameters
from mtvision.balancing.base import GradientBalancer
from mtvision.balancing.diagnostics import BalanceMonitor, conflict_matrix
from mtvision.engine.console import epoch_progress
from mtvision.engine.distributed import unwrap
from mtvision.engine.step import StepParts, autocast, train_step
from mtvision.structures import Batch

__all__ = ["AffinityProbe", "AffinityResult", "measure_affinity"]

PROBE_SEED = 20211206  # the before and after forwards draw the same random numbers (NeurIPS 2021's first day)


@dataclass
class AffinityResult:
    """Run means: ``affinity[i, j] = Z_{i→j}``, ``cosine[i, j]``; NaN where never measured."""

    tasks: list[str]
    affinity: np.ndarray  # [T, T] float64
    cosine: np.ndarray  # [T, T] float64, 1 on the diagonal of measured tasks
    counts: np.ndarray  # [T, T] int: steps that measured Z_{i→j} (both tasks labelled)
    steps: int = 0  # training steps of the run
    probes: int = 0  # steps measured
    seconds: float = 0.0  # the whole run
    probe_seconds: float = 0.0  # of which the measurement

    @property
    def cost_ratio(self) -> float:
        """The run's time with the measurement over its time without it."""
        rest = self.seconds - self.probe_seconds
        return self.seconds / rest if rest > 0 else math.inf


class _Recorder(GradientBalancer):
    """Equal weighting's update (the sum of the rows) that keeps a copy of the rows it is given."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks)
        self.rows: Tensor | None = None
        self.idx: Tensor | None = None

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        self.rows, self.idx = grads.clone(), idx  # the engine reuses its G buffer: copy
        self._record(torch.ones(len(idx), dtype=grads.dtype, device=grads.device), idx)
        return grads.sum(0)


class AffinityProbe:
    """Measures ``Z_{i→j}`` and the gradient cosines on batches; accumulates their means.

    Args:
        model: the multi-task model being trained (a DDP wrapper is unwrapped).
        optimizer: the optimizer that trains it; its step rule and state drive the lookahead.
        grad_clip: the run's max gradient norm, applied to each task's shared gradient alone
            (the step would clip it so); None = no clipping.
        amp_dtype: the run's autocast dtype (None = full precision).
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer, grad_clip: float | None = None,
                 amp_dtype: torch.dtype | None = None) -> None:
        self.net = unwrap(model)
        self.optimizer, self.grad_clip, self.amp_dtype = optimizer, grad_clip, amp_dtype
        self.names = list(self.net.tasks)
        if len(self.names) < 2:
            raise ValueError(f"task affinity needs at least two tasks, the model has {self.names}")
        self.params = task_parameters(self.net)
        by_id = {id(p): name for name, p in self.net.named_parameters()}
        self.shared_names = [by_id[id(p)] for p in self.params.shared]
        self.recorder = _Recorder(len(self.names))
        self.monitor = BalanceMonitor(self.names)
        size = len(self.names)
        self.total, self.counts = np.zeros((size, size)), np.zeros((size, size), dtype=np.int64)
        self.probes = 0

    def measure(self, batch: Batch) -> None:
        """One lookahead per present task on ``batch``; the model, its buffers and the optimizer are unchanged."""
        with _forked_rng(batch.images.device):
            before = self._losses(batch, None, grad=True)
            result = balanced_backward(self.recorder, before, self.params, mode="parameters", diagnostics=True)
            for p in self.net.parameters():
                p.grad = None
            if result.skipped or self.recorder.rows is None or self.recorder.idx is None:
                return
            self.monitor.update(result)
            base = {name: float(loss.detach()) for name, loss in before.items()}
            for row, i in zip(self.recorder.rows, self.recorder.idx.tolist()):
                after = self._losses(batch, self._stepped(row))
                self._add(i, base, {name: float(loss) for name, loss in after.items()})
            self.recorder.rows = None
        self.probes += 1

    def result(self) -> AffinityResult:
        """The means so far (``steps``, ``seconds`` are the run's to fill)."""
        with np.errstate(invalid="ignore"):
            affinity = np.where(self.counts > 0, self.total / np.maximum(self.counts, 1), np.nan)
        names, cosines = conflict_matrix([self.monitor.summary()])
        order = [names.index(n) if n in names else -1 for n in self.names]
        cosine = np.full_like(affinity, np.nan)
        for a, ia in enumerate(order):
            for b, ib in enumerate(order):
                if ia >= 0 and ib >= 0:
                    cosine[a, b] = cosines[ia, ib]
        return AffinityResult(self.names, affinity, cosine, self.counts.copy(), probes=self.probes)

    # --- helpers ------------------------------------------------------------------
    def _losses(self, batch: Batch, shared: dict[str, Tensor] | None, grad: bool = False) -> dict[str, Tensor]:
        """Every present task's loss at the current (or ``shared``) parameters, BatchNorm statistics
        of a copy, the probe's fixed random draws."""
        torch.manual_seed(PROBE_SEED)
        overrides: dict[str, Tensor] = {name: b.clone() for name, b in self.net.named_buffers()}
        overrides.update(shared or {})
        context = contextlib.nullcontext() if grad else torch.no_grad()
        with context, autocast(batch.images.device, self.amp_dtype):
            _, parts = functional_call(self.net, overrides, (batch.images, batch), strict=False)
        return {name: parts[name]["loss"].float() for name in self.names if name in parts}

    def _stepped(self, row: Tensor) -> dict[str, Tensor]:
        """The shared parameters after the optimizer's step on one task's gradient ``row``."""
        shared = self.params.shared
        grads = [g.view_as(p) for g, p in zip(row.split([p.numel() for p in shared]), shared)]
        norm = float(row.norm())
        if self.grad_clip is not None and norm > self.grad_clip:
            grads = [g * (self.grad_clip / (norm + 1e-6)) for g in grads]  # clip_grad_norm_'s factor
        return dict(zip(self.shared_names, lookahead(self.optimizer, shared, grads)))

    def _add(self, i: int, base: dict[str, float], after: dict[str, float]) -> None:
        for j, name in enumerate(self.names):
            if name in base and name in after and base[name] > 0 and math.isfinite(after[name]):
                self.total[i, j] += 1.0 - after[name] / base[name]
                self.counts[i, j] += 1


def measure_affinity(model: nn.Module, loader: Iterable[Batch], parts: StepParts, epochs: int, every: int = 1,
                     device: torch.device | None = None, sampler: Any = None,
                     console: Any = None) -> AffinityResult:
    """Train ``model`` jointly for ``epochs`` with :func:`~mtvision.engine.step.train_step`,
    probing every ``every``-th step before it is taken; the run's means and its cost.

    ``sampler`` (a shuffling sampler with ``set_epoch``) reshuffles each epoch as the trainer does.
    """
    if every < 1 or epochs < 1:
        raise ValueError(f"every and epochs must be >= 1, got every={every}, epochs={epochs}")
    device = device or next(unwrap(model).parameters()).device
    probe = AffinityProbe(model, parts.optimizer, parts.grad_clip, parts.amp_dtype)
    steps, probe_seconds, start = 0, 0.0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        total = len(loader) if hasattr(loader, "__len__") else 0  # type: ignore[arg-type]
        with epoch_progress(console, total, f"affinity epoch {epoch}/{epochs}") as bar:
            for batch in loader:
                batch = batch.to(device)
                if steps % every == 0:
                    tick = time.perf_counter()
                    probe.measure(batch)
                    probe_seconds += time.perf_counter() - tick
                bar.advance(train_step(model, batch, parts))
                steps += 1
        parts.method.end_epoch()
    result = probe.result()
    result.steps, result.seconds, result.probe_seconds = steps, time.perf_counter() - start, probe_seconds
    return result


@contextlib.contextmanager
def _forked_rng(device: torch.device) -> Any:
    """The probe's random draws leave the training run's generator where it was."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
