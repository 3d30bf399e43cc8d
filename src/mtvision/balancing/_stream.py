"""``G Gᵀ`` over the shared parameters without ever holding ``G[k, D]`` (the streamed path).

A Gramian method needs only ``M = G Gᵀ`` (k × k), and ``M = Σ_b G_b G_bᵀ`` over the
parameter tensors ``b``. One backward pass vmapped over the k tasks (``autograd.grad`` with
``is_grads_batched``, one-hot ``grad_outputs``) produces, for each parameter tensor, all k
task gradients of that tensor at once, ``G_b[k, D_b]``. A hook on the tensor takes that
block as it appears, adds ``G_b G_bᵀ`` into ``M`` (after summing the block over the DDP
ranks, where the ranks' rows are parts of one batch) and hands autograd a zero that owns no
memory (a stride-0 expansion), so a block lives only while its hook runs, and the peak is
the activations plus k copies of the few activation gradients live at once, not ``k × D``.
The caller then runs one ordinary backward of ``Σ_t w_t L_t`` (TorchJD's autogram idea:
Quinton & Rey 2024; here at parameter-tensor granularity).

The hook sees the block as a batched tensor of the legacy vmap that ``is_grads_batched``
runs on; :func:`_unbatched` takes the ``[k, ...]`` tensor out of it with the same private
calls as ``torch._vmap_internals`` (its nesting level, ``torch._remove_batch_dim``). Where
that or a batching rule fails, :func:`streamed_gramian` returns ``None`` and the caller
takes the stored path.

Cost: the vmapped pass costs about k plain backward passes (on CPU ~1.1–1.2× the loop, see
``_rows``), and the combined backward one more: ``(k + 1) / k`` of the floor's backward
work plus the vmap overhead, in exchange for ``k × D`` floats of memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from mtvision.balancing._ranks import Tasks

__all__ = ["available_bytes", "every_rank_has_every_task", "streamed_gramian", "stored_bytes"]


def every_rank_has_every_task(tasks: Tasks) -> bool:
    """Whether each task is present on every rank (always, in one process): the ranks' graphs,
    hence their hooks' all-reduces, pair up only then."""
    world = 1 if tasks.group is None else dist.get_world_size(tasks.group)
    return all(round(1.0 / c) == world for c in tasks.coefficient)


def stored_bytes(tasks: Tasks, shared: list[Tensor]) -> int:
    """Bytes of the ``G[k, D]`` buffer the stored path would hold (float32 at least)."""
    dtype = torch.promote_types(shared[0].dtype, torch.float32)
    return len(tasks.names) * sum(p.numel() for p in shared) * dtype.itemsize


def available_bytes(device: torch.device) -> int:
    """Free memory where ``G`` would live: the device's free memory on CUDA, the host's
    available memory otherwise (0 where it cannot be read: then the streamed path is picked)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def streamed_gramian(tasks: Tasks, shared: list[Tensor], scale: float) -> Tensor | None:
    """``G Gᵀ`` (float64, ``[k, k]``, of ``scale ×`` the gradients, summed over the ranks)
    from one task-batched backward that keeps the graph; ``None`` where it cannot run."""
    k = len(tasks.names)
    gramian = torch.zeros(k, k, dtype=torch.float64, device=shared[0].device)
    hook = _block_hook(gramian, k, tasks.group)
    handles = [p.register_hook(hook) for p in shared]
    try:
        stacked = torch.stack([c * scale * loss for loss, c in zip(tasks.local, tasks.coefficient)])  # type: ignore[operator]
        torch.autograd.grad(stacked, shared, torch.eye(k, dtype=stacked.dtype, device=stacked.device),
                            retain_graph=True, allow_unused=True, is_grads_batched=True)
    except RuntimeError as error:  # an op without a batching rule, or a torch whose vmap moved
        warnings.warn(f"streamed Gramian failed, holding G instead ({error})", RuntimeWarning, stacklevel=3)
        return None
    finally:
        for handle in handles:
            handle.remove()
    return gramian


def _block_hook(gramian: Tensor, k: int, group: dist.ProcessGroup | None) -> Callable[[Tensor], Tensor]:
    """The tensor hook: one parameter's ``[k, ...]`` task gradients into ``gramian``, a free zero out.

    Under DDP every rank runs the same graph (every task present everywhere: the caller
    checks), so the hooks fire in the same order and their all-reduces pair up."""

    def hook(grad: Tensor) -> Tensor:
        block = _unbatched(grad, k).reshape(k, -1)
        if group is not None:
            block = block.contiguous()
            dist.all_reduce(block, group=group)
        gramian.add_((block @ block.T).double())
        return grad.new_zeros(()).expand(grad.shape)

    return hook


def _unbatched(grad: Tensor, k: int) -> Tensor:
    """The ``[k, *shape]`` tensor behind a batched gradient of the current legacy-vmap level."""
    level = torch._C._vmapmode_increment_nesting() - 1  # the level is the nesting depth; read it, undo the step
    torch._C._vmapmode_decrement_nesting()
    if level < 1:
        raise RuntimeError("the gradient hook ran outside the batched backward")
    return torch._remove_batch_dim(grad, level, k, 0)
