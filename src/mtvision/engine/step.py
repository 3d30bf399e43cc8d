"""One training step, readable top to bottom (detectron2 ``SimpleTrainer.run_step`` style).

Everything that happens to the weights in one iteration is in :func:`train_step`: forward
with the batch, the loss of every task present, the balancing weights, the total loss,
the non-finite check, backward (with a GradScaler for fp16), unscale + clip, optimizer and
scheduler step. The trainer loop around it only feeds batches and reads the returned floats.

Balancing seam: the step asks ``parts.balancer.weigh(losses[T]) -> weights[T]``, the call
shape of a loss-weighting method of :mod:`mtvision.balancing`. :class:`StaticWeights`
(equal or user-fixed weights) is the built-in implementation; a balancing method plugs in
behind the same call. Gradient-balancing methods (``kind == "gradient"``) will replace the
single ``backward`` call below with per-task gradients.

Example:
    >>> StaticWeights([1.0, 2.0]).weigh(torch.tensor([0.5, 0.1])).tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mtvision.engine.distributed import unwrap
from mtvision.structures import Batch

__all__ = ["LossBalancer", "StaticWeights", "StepParts", "NonFiniteLossError", "train_step", "autocast"]


class LossBalancer(Protocol):
    """Per-task losses ``[T]`` (detached) -> weights ``[T]``; what a loss-weighting method is."""

    kind: str

    def weigh(self, losses: Tensor) -> Tensor: ...


class StaticWeights:
    """Weights that never change: all ones (equal weighting, ``ew``) or user-fixed ones."""

    kind = "loss"

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = torch.tensor([float(w) for w in weights])

    def weigh(self, losses: Tensor) -> Tensor:
        return self.weights.to(losses.device, losses.dtype)


@dataclass
class StepParts:
    """What a step updates besides the model; built once by the trainer."""

    optimizer: Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler  # enabled only for fp16 on CUDA
    balancer: LossBalancer
    amp_dtype: torch.dtype | None = None  # autocast dtype; None = full precision
    grad_clip: float | None = None  # max global gradient norm; None = no clipping


class NonFiniteLossError(RuntimeError):
    """Raised by the loop after too many consecutive steps with a NaN/inf loss."""


def train_step(model: nn.Module, batch: Batch, parts: StepParts) -> dict[str, float]:
    """One optimisation step on ``batch``; returns losses, weights and grad norm as floats.

    A step whose loss (or, without a GradScaler, gradient) is not finite changes nothing
    and returns ``skipped = 1.0`` after a warning; counting those is the loop's job. The
    only host-device sync is the one ``tolist()`` that reads every number at once.
    """
    names = list(unwrap(model).tasks)
    parts.optimizer.zero_grad(set_to_none=True)
    with autocast(batch.images.device, parts.amp_dtype):
        _, loss_parts = model(batch.images, batch)
    # Tasks without a labelled image in this batch have no loss: they count as a constant 0.
    zero = batch.images.new_zeros((), dtype=torch.float32)
    losses = torch.stack([loss_parts[n]["loss"].float() if n in loss_parts else zero for n in names])
    weights = parts.balancer.weigh(losses.detach())
    total = (weights * losses).sum()

    parts.scaler.scale(total).backward()
    parts.scaler.unscale_(parts.optimizer)
    grad_norm = _clip_gradients(parts.optimizer, parts.grad_clip)

    values = torch.stack([total.detach(), grad_norm.float(), *losses.detach(), *weights]).tolist()
    total_value, norm_value = values[0], values[1]
    finite = math.isfinite(total_value) and (parts.scaler.is_enabled() or math.isfinite(norm_value))
    if finite:
        parts.scaler.step(parts.optimizer)
        parts.scheduler.step()
    else:  # as if the batch had never come: no update, and the schedule does not advance
        parts.optimizer.zero_grad(set_to_none=True)
        warnings.warn(f"non-finite loss, step skipped ({_describe(names, values, norm_value)})",
                      RuntimeWarning, stacklevel=2)
    parts.scaler.update()

    result = {"loss": total_value, "grad_norm": norm_value, "skipped": 0.0 if finite else 1.0}
    result.update({f"{n}/loss": v for n, v in zip(names, values[2:2 + len(names)])})
    result.update({f"{n}/weight": v for n, v in zip(names, values[2 + len(names):])})
    return result


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``dtype``; a no-op context for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _clip_gradients(optimizer: Optimizer, max_norm: float | None) -> Tensor:
    """Global gradient norm (before clipping), clipping in place when ``max_norm`` is set."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    norm = nn.utils.get_total_norm([p.grad for p in params])
    if max_norm is not None:
        nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def _describe(names: list[str], values: list[float], grad_norm: float) -> str:
    losses = values[2:2 + len(names)]
    bad = [f"{n}={v}" for n, v in zip(names, losses) if not math.isfinite(v)]
    return ", ".join(bad) if bad else f"grad_norm={grad_norm}"
