"""The measured cost of one trained model: what ``mtvision compare``'s efficiency table holds.

Every figure is measured on the device the comparison runs on, with the model as
configured (a detector at its configured proposal budget): parameters, FLOPs per image
(``torch.utils.flop_counter``), the checkpoint's size on disk, latency at batch 1,
throughput and peak inference memory at the training batch size, and the time and peak
memory of one training step (the trainer's own ``train_step`` with AdamW and equal
weights, on a copy of the model so the trained weights are untouched).

Example:
    >>> COST_KEYS["params"]
    ('parameters', 'M', 'sum')
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtvision.analysis.efficiency import (
    checkpoint_megabytes,
    count_parameters,
    flops_per_image,
    latency_ms,
    peak_inference_memory_mb,
    throughput,
    train_step_cost,
)
from mtvision.balancing import create
from mtvision.balancing.backward import task_parameters
from mtvision.engine.optim import build_optimizer, build_scheduler
from mtvision.engine.step import StepParts, train_step
from mtvision.structures import Batch

__all__ = ["COST_KEYS", "measure"]

# key -> (what it is, unit, how the cost of several separate models adds up)
COST_KEYS: dict[str, tuple[str, str, str]] = {
    "params": ("parameters", "M", "sum"),
    "flops": ("FLOPs per image", "GFLOP", "sum"),
    "checkpoint_mb": ("checkpoint on disk", "MiB", "sum"),
    "latency_ms": ("latency, batch 1", "ms", "sum"),
    "throughput": ("throughput, training batch", "img/s", "harmonic"),
    "peak_memory_mb": ("peak inference memory, training batch", "MiB", "max"),
    "train_step_ms": ("training step", "ms", "sum"),
    "train_peak_memory_mb": ("peak training-step memory", "MiB", "max"),
}


def measure(model: nn.Module, checkpoint: Path, batch: Batch, device: torch.device) -> dict[str, Any]:
    """The cost of ``model`` (a trained ``MultiTaskModel``) on ``device``; ``batch`` is one training batch."""
    model = model.to(device).eval()
    size = tuple(batch.images.shape[-2:])
    batch_size = len(batch)
    step_ms, step_mb = train_step_cost(_one_step(model, batch.to(device)), device)
    return {
        "params": count_parameters(model),
        "flops": flops_per_image(model, size),
        "checkpoint_mb": checkpoint_megabytes(checkpoint),
        "latency_ms": latency_ms(model, size, device, batch=1),
        "throughput": throughput(model, size, device, batch=batch_size),
        "peak_memory_mb": peak_inference_memory_mb(model, size, device, batch=batch_size),
        "train_step_ms": step_ms,
        "train_peak_memory_mb": step_mb,
    }


def _one_step(model: nn.Module, batch: Batch) -> Any:
    """A closure running one trainer step on a copy of ``model`` (equal weights, AdamW)."""
    twin = copy.deepcopy(model).train()
    optimizer = build_optimizer(twin, lr=1e-4, weight_decay=0.0)
    parts = StepParts(optimizer=optimizer, scheduler=build_scheduler(optimizer, 0, 1000),
                      scaler=torch.amp.GradScaler(batch.images.device.type, enabled=False),
                      method=create("ew", num_tasks=len(twin.tasks)), params=task_parameters(twin))
    return lambda: train_step(twin, batch, parts)
