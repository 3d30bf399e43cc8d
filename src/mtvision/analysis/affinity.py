"""Which tasks help which: TAG lookahead affinity and gradient cosines, measured during training.

**Affinity** (Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task Learning",
NeurIPS 2021, eq. 3): on a batch ``X`` at step ``t``, with the shared parameters ``θ_s``
(everything :func:`~mtvision.balancing.backward.task_parameters` does not give to one task)::

    Z_{i→j} = 1 − L_j(X, θ_s after one step on task i alone, θ_j) / L_j(X, θ_s, θ_j)

``Z_{i→j} > 0``: a step on ``i`` lowers ``j``'s loss (``i`` helps ``j``); ``< 0``: it raises it.
Heads keep their values; the losses are taken on the same batch, in training mode, with the
same random draws (detection's RoI sampling), and BatchNorm's running statistics untouched
(:mod:`mtvision.engine.lookahead`, the one lookahead, shared with Auto-Lambda). Averaged over
every ``every``-th step of a short joint run; a pair counts only the steps where both tasks had
labels (partial labels).

**Which step, against which reference** (``variant``), with ``Δ(g)`` the optimizer's own update
for the gradient ``g`` (AdamW from the current moments, not written back):

* ``"isolated"`` (default): ``Z_{i→j} = 1 − L_j(θ − Δ(g_i)) / L_j(θ − Δ(0))``. ``Δ(0)`` is the
  step with a zero gradient: the momentum of joint training alone. Under AdamW ``Δ(g_i)`` is
  ~90 % that momentum (``m' = 0.9m + 0.1g_i``), so eq. 3 as written mostly measures how task
  ``j`` responds to the *joint* step, whatever ``i`` is (on the demo, 2.9 points between columns
  against 0.07 within one); dividing by the momentum-only loss leaves what ``g_i`` adds.
* ``"tag"``: eq. 3 as written, ``1 − L_j(θ − Δ(g_i)) / L_j(θ)``.
* ``"sgd"``: ``1 − L_j(θ − lr·g_i) / L_j(θ)``, the raw gradient step (no moments).

Why ``isolated`` is the default (docs/affinity.md, depth + normals + a random-label task on the
synthetic scenes, 4 seeds of 24 probes): all three group depth with normals and leave the
random task apart, but only ``isolated`` has the signs right: depth and normals help each other
and the random task helps neither (16 of 16 entries; ``tag`` 9, every entry of a column sharing
the joint step's sign; ``sgd`` 11, its values 100× smaller, a first-order gradient product the
cosines already show). It keeps the optimizer's own rule (Adam's per-coordinate scaling), which
is TAG's point. Under plain SGD (no momentum, no decay) ``Δ(0) = 0``: the three are eq. 3.

**Gradient cosine** of the tasks on the shared parameters, per step: not computed here but by
the diagnostics of :func:`~mtvision.balancing.backward.balanced_backward` (the single place
that computes per-task gradients), averaged by :class:`~mtvision.balancing.diagnostics.BalanceMonitor`.
The probe calls ``balanced_backward`` with :class:`_Recorder`, a gradient "method" that keeps a
copy of the per-task rows ``G[k, D]`` it is given: the same rows are the lookahead's gradients.

**Cost**: the probe's seconds against the rest of the run (the training steps, data loading
included), ``cost_ratio = total / (total − probe)``: the run's time with the measurement over
its time without it; ``isolated`` adds one forward per probe (the ``Δ(0)`` losses). The probe
runs under a forked RNG, so the training trajectory is the one the same run would follow without it.

Example:
    >>> import torch
    >>> from mtvision.analysis.affinity import AffinityProbe  # doctest: +SKIP
    >>> probe = AffinityProbe(model, optimizer, grad_clip=10.0)  # doctest: +SKIP
    >>> probe.measure(batch); probe.affinity()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from mtvision.balancing.backward import balanced_backward, task_parameters
from mtvision.balancing.base import GradientBalancer
from mtvision.balancing.diagnostics import BalanceMonitor, conflict_matrix
from mtvision.engine.console import epoch_progress
from mtvision.engine.distributed import unwrap
from mtvision.engine.lookahead import clip_factor, forked_rng, functional_losses, lookahead, plain_step
from mtvision.engine.step import StepParts, train_step
from mtvision.structures import Batch

__all__ = ["VARIANTS", "AffinityProbe", "AffinityResult", "Variant", "measure_affinity"]

Variant = Literal["isolated", "tag", "sgd"]
VARIANTS: tuple[Variant, ...] = ("isolated", "tag", "sgd")  # the first is the default (module docstring)


@dataclass
class AffinityResult:
    """Run means: ``affinity[i, j] = Z_{i→j}``, ``cosine[i, j]``; NaN where never measured."""

    tasks: list[str]
    affinity: np.ndarray  # [T, T] float64
    cosine: np.ndarray  # [T, T] float64, 1 on the diagonal of measured tasks
    counts: np.ndarray  # [T, T] int: steps that measured Z_{i→j} (both tasks labelled)
    steps: int = 0  # training steps of the run
    probes: int = 0  # steps measured
    variant: str = VARIANTS[0]  # which lookahead Z is (AffinityProbe)
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
        variant: which step and reference (module docstring): ``"isolated"``, ``"tag"`` or ``"sgd"``.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer, grad_clip: float | None = None,
                 amp_dtype: torch.dtype | None = None, variant: Variant = VARIANTS[0]) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown affinity variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.net = unwrap(model)
        self.optimizer, self.grad_clip, self.amp_dtype, self.variant = optimizer, grad_clip, amp_dtype, variant
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
        with forked_rng(batch.images.device):
            before = self._losses(batch, None, grad=True)
            result = balanced_backward(self.recorder, before, self.params, mode="parameters", diagnostics=True)
            for p in self.net.parameters():
                p.grad = None
            if result.skipped or self.recorder.rows is None or self.recorder.idx is None:
                return
            self.monitor.update(result)
            base = self._reference(batch, before, self.recorder.rows)
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
        return AffinityResult(self.names, affinity, cosine, self.counts.copy(), probes=self.probes,
                              variant=self.variant)

    # --- helpers ------------------------------------------------------------------
    def _losses(self, batch: Batch, shared: dict[str, Tensor] | None, grad: bool = False) -> dict[str, Tensor]:
        """Every present task's loss at the current (or ``shared``) parameters (engine/lookahead.py)."""
        return functional_losses(self.net, batch, shared, self.amp_dtype, grad)

    def _reference(self, batch: Batch, before: dict[str, Tensor], rows: Tensor) -> dict[str, float]:
        """The denominator ``L_j``: at ``θ`` (tag, sgd), or after the zero-gradient step ``θ − Δ(0)`` (isolated)."""
        losses = self._losses(batch, self._stepped(rows[0] * 0)) if self.variant == "isolated" else before
        return {name: float(loss.detach()) for name, loss in losses.items()}

    def _stepped(self, row: Tensor) -> dict[str, Tensor]:
        """The shared parameters after a step on one task's gradient ``row``: the optimizer's
        own (isolated, tag) or ``θ − lr·g`` (sgd), ``row`` clipped as the run would clip it."""
        shared = self.params.shared
        factor = clip_factor(float(row.norm()), self.grad_clip)
        grads = [g.view_as(p) * factor for g, p in zip(row.split([p.numel() for p in shared]), shared)]
        rule = plain_step if self.variant == "sgd" else lookahead
        with torch.no_grad():
            return dict(zip(self.shared_names, rule(self.optimizer, shared, grads)))

    def _add(self, i: int, base: dict[str, float], after: dict[str, float]) -> None:
        for j, name in enumerate(self.names):
            if name in base and name in after and base[name] > 0 and math.isfinite(after[name]):
                self.total[i, j] += 1.0 - after[name] / base[name]
                self.counts[i, j] += 1


def measure_affinity(model: nn.Module, loader: Iterable[Batch], parts: StepParts, epochs: int, every: int = 1,
                     device: torch.device | None = None, sampler: Any = None,
                     console: Any = None, variant: Variant = VARIANTS[0]) -> AffinityResult:
    """Train ``model`` jointly for ``epochs`` with :func:`~mtvision.engine.step.train_step`,
    probing every ``every``-th step before it is taken; the run's means and its cost.

    ``sampler`` (a shuffling sampler with ``set_epoch``) reshuffles each epoch as the trainer does.
    """
    if every < 1 or epochs < 1:
        raise ValueError(f"every and epochs must be >= 1, got every={every}, epochs={epochs}")
    device = device or next(unwrap(model).parameters()).device
    probe = AffinityProbe(model, parts.optimizer, parts.grad_clip, parts.amp_dtype, variant)
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
