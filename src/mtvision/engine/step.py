"""One training step, readable top to bottom (detectron2 ``SimpleTrainer.run_step`` style).

Everything that happens to the weights in one iteration is in :func:`train_step`: forward
with the batch, the loss of every task present, the non-finite check, the balanced
backward (:func:`~mtvision.balancing.backward.balanced_backward`: one ordinary backward for
a loss method, per-task gradients for a gradient method), unscale + clip, optimizer and
scheduler step, and the method's look at the new losses (FAMO). The trainer loop around it
only feeds batches and reads the returned floats.

The forward calls ``features`` and ``heads`` of the model itself, inside DDP's
``no_sync()``: per-task ``autograd.grad`` must fire no DDP hook, and ``balanced_backward``
reduces the gradients over the ranks itself, on every path.

Example:
    >>> from mtvision.balancing import create
    >>> create("fixed", num_tasks=2, weights=[1.0, 2.0]).weigh(torch.tensor([0.5, 0.1])).tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mtvision.balancing import Balancer, LossBalancer
from mtvision.balancing.backward import TaskParameters, balanced_backward
from mtvision.balancing.diagnostics import BalanceMonitor
from mtvision.engine.distributed import all_reduce_sum, unwrap
from mtvision.structures import Batch

__all__ = ["Distill", "StepParts", "NonFiniteLossError", "train_step", "autocast"]

#: ``(model, shared features, batch) -> {task: loss}``: losses a step adds to the tasks' own
Distill = Callable[[nn.Module, list[Tensor], Batch], dict[str, Tensor]]


@dataclass
class StepParts:
    """What a step updates besides the model; built once by the trainer."""

    optimizer: Optimizer  # holds the method's own parameters too (UW's log-variances)
    scheduler: LRScheduler  # stepped once per update: its step count also paces ``every``
    scaler: torch.amp.GradScaler  # enabled only for fp16 on CUDA
    method: Balancer  # from mtvision.balancing.create
    params: TaskParameters  # task_parameters(model), built once: it keeps the G buffer between steps
    amp_dtype: torch.dtype | None = None  # autocast dtype; None = full precision
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    # None = the method's own; parameters_streamed / _stored force how parameter mode gets G Gᵀ
    gradients: Literal["parameters", "parameters_streamed", "parameters_stored", "representation"] | None = None
    every: int = 1  # gradient methods: recompute the weights every K updates, reuse them in between
    monitor: BalanceMonitor | None = None  # diagnostics: per-task gradient norms and cosines when set
    # train.distill: extra per-task losses (an old model's outputs as targets, engine/distill.py), added to
    # those tasks' own losses so that balancing sees them as the tasks' losses
    distill: Distill | None = None
    # d -> ∂L_val(θ'(d))/∂d, for a method with ``needs_lookahead`` (Auto-Lambda): engine/lookahead.py's
    # ValidationLookahead, built by the trainer on its validation loader
    lookahead: Callable[[Tensor], Tensor] | None = None


class NonFiniteLossError(RuntimeError):
    """Raised by the loop after too many consecutive steps with a NaN/inf loss."""


def train_step(model: nn.Module, batch: Batch, parts: StepParts) -> dict[str, float]:
    """One optimisation step on ``batch``; returns losses, weights and grad norm as floats.

    A step whose loss or gradient is not finite changes nothing and returns
    ``skipped = 1.0`` after a warning; counting those is the loop's job.
    """
    net = unwrap(model)
    names = list(net.tasks)
    parts.optimizer.zero_grad(set_to_none=True)
    with _no_sync(model):
        with autocast(batch.images.device, parts.amp_dtype):
            features = net.features(batch.images)
            _, loss_parts = net.heads(features, tuple(batch.images.shape[-2:]), batch)
            distilled = parts.distill(net, features, batch) if parts.distill is not None else {}
        losses = {n: loss_parts[n]["loss"].float() for n in names if n in loss_parts}
        losses.update({n: losses.get(n, 0.0) + loss.float() for n, loss in distilled.items()})
        # Tasks without a labelled image in this batch have no loss: logged as 0.
        zero = batch.images.new_zeros((), dtype=torch.float32)
        vector = torch.stack([losses[n].detach() if n in losses else zero for n in names])
        # Checked before the method sees the losses: one NaN would poison a stateful method
        # (DWA's epoch means, FAMO's logits). Summed over the ranks so that all skip together.
        if not math.isfinite(sum(all_reduce_sum(vector).tolist())):
            return _skip(parts, names, vector.tolist(), math.nan)
        reuse = parts.every > 1 and parts.scheduler.last_epoch % parts.every != 0
        with _lookahead(parts):  # Auto-Lambda's validation gradient, handed over for this step only
            result = balanced_backward(parts.method, losses, parts.params, features=features, mode=parts.gradients,
                                       scale=_loss_scale(parts.scaler, vector.device),
                                       reuse_weights=reuse, process_group=_process_group(),
                                       diagnostics=parts.monitor is not None)
    parts.scaler.unscale_(parts.optimizer)
    grad_norm = _clip_gradients(parts.optimizer, parts.grad_clip)

    weights = result.weights.detach().to(vector) if result.weights is not None else None
    values = torch.cat([grad_norm.float().reshape(1).to(vector), vector,
                        weights if weights is not None else vector[:0]]).tolist()
    norm_value, loss_values, weight_values = values[0], values[1:1 + len(names)], values[1 + len(names):]
    if result.skipped or not (parts.scaler.is_enabled() or math.isfinite(norm_value)):
        parts.scaler.update()  # after unscale_: an fp16 overflow lowers the loss scale
        return _skip(parts, names, loss_values, norm_value)
    parts.scaler.step(parts.optimizer)
    parts.scheduler.step()
    parts.scaler.update()
    if isinstance(parts.method, LossBalancer) and parts.method.needs_new_losses:
        _show_new_losses(model, batch, parts.method, parts.amp_dtype)
    if parts.monitor is not None:
        parts.monitor.update(result)

    total = sum(w * v for w, v in zip(weight_values, loss_values)) if weight_values else sum(loss_values)
    out = {"loss": total, "grad_norm": norm_value, "skipped": 0.0}
    out.update({f"{n}/loss": v for n, v in zip(names, loss_values)})
    out.update({f"{n}/weight": v for n, v in zip(names, weight_values)})
    return out


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``dtype``; a no-op context for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _skip(parts: StepParts, names: list[str], losses: list[float], grad_norm: float) -> dict[str, float]:
    """As if the batch had never come: no update, and the schedule does not advance."""
    parts.optimizer.zero_grad(set_to_none=True)
    bad = [f"{n}={v}" for n, v in zip(names, losses) if not math.isfinite(v)]
    warnings.warn(f"non-finite loss, step skipped ({', '.join(bad) or f'grad_norm={grad_norm}'})",
                  RuntimeWarning, stacklevel=3)
    out = {"loss": sum(losses), "grad_norm": grad_norm, "skipped": 1.0}
    out.update({f"{n}/loss": v for n, v in zip(names, losses)})
    return out


def _show_new_losses(model: nn.Module, batch: Batch, method: LossBalancer, amp_dtype: torch.dtype | None) -> None:
    """FAMO's second look (Liu et al. 2023, Alg. 1): the same batch's losses after the update,
    averaged over the ranks where each task is present, so every rank's state stays equal."""
    net = unwrap(model)
    names = list(net.tasks)
    with torch.no_grad(), autocast(batch.images.device, amp_dtype):
        _, loss_parts = net(batch.images, batch)
    stats = batch.images.new_zeros(2, len(names), dtype=torch.float32)
    for i, name in enumerate(names):
        if name in loss_parts:
            stats[0, i], stats[1, i] = 1.0, loss_parts[name]["loss"].float()
    stats = all_reduce_sum(stats)
    present = stats[0] > 0
    method.update(stats[1, present] / stats[0, present], present.nonzero().flatten().cpu())


@contextlib.contextmanager
def _lookahead(parts: StepParts) -> Iterator[None]:
    """Give a method that asks for it (``needs_lookahead``) the validation gradient at the
    lookahead for the length of the backward, and take it back: between steps the method
    holds tensors only, never a function that reaches the model."""
    if not getattr(parts.method, "needs_lookahead", False):
        yield
        return
    if parts.lookahead is None:
        raise ValueError(f"{type(parts.method).__name__} needs the validation gradient at the optimizer's lookahead: "
                         "set StepParts.lookahead (the Trainer builds it from its validation loader)")
    parts.method.lookahead_gradient = parts.lookahead
    try:
        yield
    finally:
        parts.method.lookahead_gradient = None


def _loss_scale(scaler: torch.amp.GradScaler, device: torch.device) -> float:
    """The GradScaler factor the backward runs at (1.0 without one); ``scale()`` is what
    creates a fresh scaler's factor, which ``unscale_`` and ``step`` then expect."""
    return float(scaler.scale(torch.ones((), device=device))) if scaler.is_enabled() else 1.0


def _no_sync(model: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()``, a no-op context for a bare model."""
    return model.no_sync() if isinstance(model, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()


def _process_group() -> dist.ProcessGroup | None:
    return dist.group.WORLD if dist.is_initialized() else None


def _clip_gradients(optimizer: Optimizer, max_norm: float | None) -> Tensor:
    """Global gradient norm (before clipping), clipping in place when ``max_norm`` is set."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    norm = nn.utils.get_total_norm([p.grad for p in params])
    if max_norm is not None:
        nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm
