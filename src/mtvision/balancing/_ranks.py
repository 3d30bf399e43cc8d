"""What every rank must agree on before and after a balanced backward (DDP), and the one
collective that sums gradients.

Each rank sees its own shard of the batch, so its task losses, the set of tasks present
and the per-task gradients differ. :func:`gather_tasks` sums, over the ranks, which tasks
are present and their losses (one ``2T`` all-reduce): the tasks that get a row are those
present on *any* rank, a method sees the losses averaged over the ranks where each task
is present, and this rank's share of task ``t`` is weighted ``1 / (ranks where present)``
so that summing the ranks' gradients averages each task over those ranks. With no process
group everything here is the single-process identity (coefficients 1, no collective).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass
class Tasks:
    """The tasks with a row, as every rank agrees on them."""

    names: list[str]
    idx: Tensor  # CPU LongTensor of their task indices
    local: list[Tensor | None]  # this rank's loss of each (None where absent here)
    values: Tensor  # detached losses averaged over the ranks where present, at least float32 [k]
    coefficient: list[float]  # 1 / number of ranks where present
    group: dist.ProcessGroup | None


def gather_tasks(losses: Mapping[str, Tensor], names: list[str], device: torch.device,
                 group: dist.ProcessGroup | None) -> Tasks:
    """The tasks present on any rank, their rank-averaged losses and gradient coefficients."""
    dtype = functools.reduce(torch.promote_types, [loss.dtype for loss in losses.values()], torch.float32)
    stats = torch.zeros(2, len(names), device=device, dtype=dtype)
    for i, name in enumerate(names):
        if name in losses:
            stats[0, i], stats[1, i] = 1.0, losses[name].detach()
    if group is not None:
        dist.all_reduce(stats, group=group)
    counts = stats[0].tolist()
    rows = [i for i, count in enumerate(counts) if count > 0]
    return Tasks([names[i] for i in rows], torch.tensor(rows, dtype=torch.long), [losses.get(names[i]) for i in rows],
                 stats[1, rows] / stats[0, rows], [1.0 / counts[i] for i in rows], group)


def all_reduce_(tensors: Sequence[Tensor | None], like: Sequence[Tensor], group: dist.ProcessGroup,
                device: torch.device, flags: Sequence[bool] = ()) -> tuple[list[Tensor | None], list[bool]]:
    """Sum ``tensors`` (shaped like ``like``) and OR ``flags`` over the ranks in one collective.

    A ``None`` (no gradient on this rank, e.g. a layer only an absent task uses) counts as
    zeros and stays ``None`` only where it is ``None`` on every rank, as in one process.
    """
    present = [t is not None for t in tensors]
    parts = [t.reshape(-1) if t is not None else x.new_zeros(x.numel()) for t, x in zip(tensors, like)]
    dtype = parts[0].dtype if parts else torch.float32
    flat = torch.cat([*parts, torch.tensor([*present, *flags], dtype=dtype, device=device)])
    dist.all_reduce(flat, group=group)
    chunks = flat.split([x.numel() for x in like] + [len(present) + len(flags)])
    counts = chunks[-1].tolist()
    summed = [c.view(x.shape).to(x.dtype) if n > 0 else None for c, x, n in zip(chunks, like, counts)]
    return summed, [n > 0 for n in counts[len(present):]]


def all_reduce_grads_(params: Sequence[Tensor], group: dist.ProcessGroup) -> None:
    """Sum every parameter's ``.grad`` over the ranks (``None`` where no rank has one)."""
    for p, g in zip(params, all_reduce_([p.grad for p in params], params, group, params[0].device)[0]):
        p.grad = g
