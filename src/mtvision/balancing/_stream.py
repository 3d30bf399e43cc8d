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
Quinton & Rey 2024).

**Blocks smaller than a tensor.** A whole-tensor block of a large convolution (resnet18's
3×3 layer4 weights: ``[6, 2.36M]`` floats at T = 6, 54 MiB) would set the peak. So a
convolution weight is not requested from autograd at all: a pre-hook on its
``ConvolutionBackward`` node receives the node's ``[k, ...]`` output gradient (needed
anyway for the input's gradient) and computes the weight's gradient itself from the node's
saved input, :data:`CHUNK_BYTES` of output channels at a time (``aten.convolution_backward``
with only the weight output), each chunk added into ``M`` and dropped. The node then skips
its own weight gradient (autograd computes only what was requested). This is the module-level
step of autogram, done on the graph's nodes so that it needs no access to the modules: it
applies to a weight used by exactly one ungrouped, non-transposed convolution whose input
needs a gradient (otherwise the node would never run); every other tensor keeps the tensor
hook. Under autocast the weight reaches the node through a cast and keeps the tensor hook.

**Stems apart.** The image-side stems (:mod:`~mtvision.balancing._graph`) hold the largest
activations and few parameters: the batched pass stops at a stem's top edge, and the stem
runs once per task from that edge's ``[k, ...]`` gradient, its rows ``[k, d_stem]`` held
(9.5k columns for resnet18). Where the features the heads read cut the graph, the heads too
run once per task and the batched pass starts at the features (:func:`_start`). Together:
resnet18 + FPN at T = 6, 1.10× EW's peak (2.27× with whole-tensor blocks and the stem and heads
batched; ``docs/balancing_cost.md``).

The hook sees the block as a batched tensor of the legacy vmap that ``is_grads_batched``
runs on; :func:`_unbatched` takes the ``[k, ...]`` tensor out of it with the same private
calls as ``torch._vmap_internals`` (its nesting level, ``torch._remove_batch_dim``). Where
that or a batching rule fails, :func:`streamed_gramian` returns ``None`` and the caller
takes the stored path.

Cost: the vmapped pass costs about k plain backward passes, and the combined backward one
more: ``(k + 1) / k`` of the floor's backward work plus the vmap overhead and the per-task
weight chunks (resnet18, T = 6: 1.39–1.42× the floor on CPU), in exchange for ``k × D`` floats
of memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from mtvision.balancing._graph import Graph, Stem, convolution_nodes, cuts_at, stems
from mtvision.balancing._ranks import Tasks

__all__ = ["available_bytes", "every_rank_has_every_task", "streamed_gramian", "stored_bytes"]

CHUNK_BYTES = 8 << 20  # k rows of a convolution weight's gradient computed at once, at most


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


def streamed_gramian(tasks: Tasks, shared: list[Tensor], scale: float,
                     features: Sequence[Tensor] | None = None) -> Tensor | None:
    """``G Gᵀ`` (float64, ``[k, k]``, of ``scale ×`` the gradients, summed over the ranks)
    from one task-batched backward that keeps the graph (and one pass per task through each
    head and each stem, :mod:`~mtvision.balancing._graph`); ``None`` where it cannot run."""
    k = len(tasks.names)
    gramian = torch.zeros(k, k, dtype=torch.float64, device=shared[0].device)
    stacked = torch.stack([c * scale * loss for loss, c in zip(tasks.local, tasks.coefficient)])  # type: ignore[operator]
    outputs, grad_outputs = _start(stacked, list(features or []), shared)
    graph = Graph.of(stacked)
    bottoms = stems(graph, shared)
    below = {id(p) for stem in bottoms for p in stem.parameters}
    convolutions = convolution_nodes(graph, shared, exclude=below)
    fired: set[int] = set()
    rest = [p for p in shared if id(p) not in convolutions and id(p) not in below]
    handles = [p.register_hook(_block_hook(gramian, k, tasks.group)) for p in rest]
    handles += [node.register_prehook(_convolution_hook(node, gramian, k, tasks.group, fired))
                for node in convolutions.values()]
    try:
        edges = torch.autograd.grad(outputs, [*rest, *(stem.edge for stem in bottoms)], grad_outputs,
                                    retain_graph=True, allow_unused=True, is_grads_batched=True)[len(rest):]
    except RuntimeError as error:  # an op without a batching rule, or a torch whose vmap moved
        warnings.warn(f"streamed Gramian failed, holding G instead ({error})", RuntimeWarning, stacklevel=3)
        return None
    finally:
        for handle in handles:
            handle.remove()
    if len(fired) != len(convolutions):  # a node autograd did not need to run: its weight is not in M
        warnings.warn("streamed Gramian missed a convolution weight, holding G instead", RuntimeWarning, stacklevel=3)
        return None
    for stem, edge_grad in zip(bottoms, edges):
        _add_block(gramian, _stem_rows(stem, edge_grad, k), tasks.group)
    return gramian


def _start(stacked: Tensor, features: list[Tensor], shared: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Where the batched pass starts, and its ``[k, ...]`` gradients there: the features, after
    one pass per task through its head, where they cut the graph; else the losses themselves."""
    k = len(stacked)
    if not features or not cuts_at(stacked, features, shared):
        return [stacked], [torch.eye(k, dtype=stacked.dtype, device=stacked.device)]
    per_task = [torch.autograd.grad(stacked[t], features, retain_graph=True, materialize_grads=True)
                for t in range(k)]
    return features, [torch.stack([row[level] for row in per_task]) for level in range(len(features))]


def _stem_rows(stem: Stem, edge_grad: Tensor | None, k: int) -> Tensor:
    """``[k, d]`` gradient rows of a stem's parameters: one ordinary pass per task from its top edge."""
    if edge_grad is None:  # no task reaches the stem
        return torch.zeros(k, sum(p.numel() for p in stem.parameters), device=stem.parameters[0].device)
    rows = [torch.autograd.grad(stem.edge, stem.parameters, edge_grad[t], retain_graph=True, allow_unused=True,
                                materialize_grads=True) for t in range(k)]
    return torch.stack([torch.cat([g.reshape(-1) for g in row]) for row in rows])


def _convolution_hook(node: Any, gramian: Tensor, k: int, group: dist.ProcessGroup | None,
                      fired: set[int]) -> Callable[[tuple[Tensor, ...]], None]:
    """The node pre-hook: the weight's ``[k, ...]`` gradient chunk by chunk of output channels into ``gramian``."""

    def hook(grad_outputs: tuple[Tensor, ...]) -> None:
        fired.add(id(node))
        output_grad, inputs, weight = _unbatched(grad_outputs[0], k), node._saved_input, node._saved_weight
        step = max(1, CHUNK_BYTES // (k * weight[0].numel() * weight.element_size()))
        for start in range(0, weight.shape[0], step):
            part = weight[start:start + step]
            rows = output_grad.new_empty(k, part.numel())  # filled one task at a time: no k-fold stack copy
            for t in range(k):
                rows[t] = torch.ops.aten.convolution_backward(
                    output_grad[t][:, start:start + step], inputs, part, None, node._saved_stride,
                    node._saved_padding, node._saved_dilation, False, node._saved_output_padding, 1,
                    [False, True, False])[1].reshape(-1)
            _add_block(gramian, rows, group)

    return hook


def _block_hook(gramian: Tensor, k: int, group: dist.ProcessGroup | None) -> Callable[[Tensor], Tensor]:
    """The tensor hook: one parameter's ``[k, ...]`` task gradients into ``gramian``, a free zero out.

    Under DDP every rank runs the same graph (every task present everywhere: the caller
    checks), so the hooks fire in the same order and their all-reduces pair up."""

    def hook(grad: Tensor) -> Tensor:
        _add_block(gramian, _unbatched(grad, k).reshape(k, -1), group)
        return grad.new_zeros(()).expand(grad.shape)

    return hook


def _add_block(gramian: Tensor, block: Tensor, group: dist.ProcessGroup | None) -> None:
    """``gramian += B Bᵀ`` for one ``[k, d]`` block of ``G``, summed over the ranks first."""
    if group is not None:
        block = block.contiguous()
        dist.all_reduce(block, group=group)
    gramian.add_((block @ block.T).double())


def _unbatched(grad: Tensor, k: int) -> Tensor:
    """The ``[k, *shape]`` tensor behind a batched gradient of the current legacy-vmap level."""
    level = torch._C._vmapmode_increment_nesting() - 1  # the level is the nesting depth; read it, undo the step
    torch._C._vmapmode_decrement_nesting()
    if level < 1:
        raise RuntimeError("the gradient hook ran outside the batched backward")
    return torch._remove_batch_dim(grad, level, k, 0)
