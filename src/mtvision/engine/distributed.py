"""Run the same command on one process or under ``torchrun`` (DDP), without two code paths.

:func:`init_distributed` reads what ``torchrun`` puts in the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``) and starts a process group (NCCL on GPU, Gloo on CPU);
without those variables it returns a single-process :class:`DistInfo` and everything
below is a no-op. Only rank 0 prints, logs and saves (``dist_info.is_main``).

Samplers: training uses ``DistributedSampler`` even on one process, because its shuffle is
seeded from ``(seed, epoch)`` alone, which is what makes a resumed run draw the same
batches as an uninterrupted one. Evaluation uses :class:`ShardSampler`, which, unlike
``DistributedSampler``, never pads a rank with repeated samples, so metrics merged across
ranks are exact over the split.

Example:
    >>> info, device = init_distributed("cpu")  # no torchrun variables: a single process
    >>> info.world_size, info.is_main, device.type
    (1, True, 'cpu')
    >>> list(ShardSampler(5, rank=1, world_size=2))
    [1, 3]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from mtvision.tasks import Metric


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(request: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's CUDA device when there is one, else the CPU."""
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request == "cuda":
        request = f"cuda:{local_rank}"
    device = torch.device(request)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {request!r} requested but CUDA is not available; use device=cpu or auto")
        torch.cuda.set_device(device)
    return device


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """This process's rank and device; joins the process group when launched by ``torchrun``.

    ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; under torchrun ``auto`` and
    ``cuda`` mean the GPU of this process's ``LOCAL_RANK``.
    """
    info = DistInfo()
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    resolved = resolve_device(device, info.local_rank)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return info, resolved


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device, info: DistInfo, find_unused: bool) -> nn.Module:
    """DDP around ``model`` under torchrun; the model itself otherwise.

    ``find_unused`` must be true when some images lack a task's label: a batch without
    that task leaves its head without gradients, which DDP otherwise treats as an error.
    """
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (what checkpoints store)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_sampler(dataset: Dataset, info: DistInfo, seed: int) -> DistributedSampler:
    """Shuffled, seeded from ``(seed, epoch)`` via ``set_epoch``; one shard per rank."""
    return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...``: every sample on exactly one rank, no padding."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def merge_metrics(metrics: dict[str, Metric]) -> dict[str, Metric]:
    """Every rank's metrics merged into one exact set (identical on all ranks)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return metrics
    gathered: list[dict[str, Metric] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, metrics)
    merged = gathered[0]
    for other in gathered[1:]:
        for name, metric in other.items():
            merged[name].merge(metric)
    return merged


def sync_buffers(model: nn.Module) -> None:
    """Average float buffers (BatchNorm running statistics) over ranks; others from rank 0.

    DDP syncs buffers at the *start* of each forward, so after the last step every rank
    holds statistics of its own batches: evaluating or saving then would differ by rank.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for buffer in unwrap(model).buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(dist.get_world_size())
        else:
            dist.broadcast(buffer, src=0)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over ranks (the tensor itself on one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values
