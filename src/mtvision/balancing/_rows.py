"""The per-task gradient rows of one step: ``G[k, D]`` over the shared inputs, and each head's own.

Each task's loss is differentiated once, over the shared inputs (parameters, or features in
representation mode) together with its own head, so a head costs no extra backward. Rows
are copied into a buffer the caller keeps between steps (``workspace``): a fresh ``[k, D]``
block would be page-faulted in on every CPU step (~4 ms per 10 MB). On CPU one
``autograd.grad`` per task beats one vmapped ``is_grads_batched`` call (0.88 s vs 1.08 s for
three tasks of the demo model); the batched call stays available for devices where it wins.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from mtvision.balancing._ranks import Tasks

Strategy = Literal["loop", "batched"]
Workspace = dict[tuple[str, torch.dtype], Tensor]


HeadGrad = tuple[int, Tensor, Tensor | None]  # (row of its task, head parameter, its gradient)


class Rows(NamedTuple):
    """The per-task gradients of one step."""

    grads: Tensor  # G[k, D]: scale × coefficient × each task's gradient (a view of the workspace)
    heads: list[HeadGrad]
    used: list[bool]  # whether any task reached each input
    spare: list[Tensor | None]  # the last row's own gradient tensors: free buffers for wᵀG


def task_rows(tasks: Tasks, inputs: list[Tensor], heads: Mapping[str, list[Tensor]], workspace: Workspace,
              scale: float, strategy: Strategy, keep_graph: bool) -> Rows:
    """Every task's gradients over ``inputs``, copied as rows into ``G``, and over its head;
    a task absent on this rank has a zero row and no head gradients."""
    sizes = [t.numel() for t in inputs]
    dtype = torch.promote_types(inputs[0].dtype, torch.float32)
    grads = _buffer(workspace, len(tasks.names), sum(sizes), dtype, inputs[0].device)
    used, spare = [False] * len(inputs), [None] * len(inputs)
    head_grads: list[HeadGrad] = []
    for row, found, last in _task_gradients(tasks, inputs, heads, scale, strategy, keep_graph):
        for i, (chunk, g) in enumerate(zip(grads[row].split(sizes), found)):
            if g is None:
                chunk.zero_()
            else:
                chunk.view(g.shape).copy_(g)
                used[i] = True
        head_grads += [(row, p, g) for p, g in zip(heads[tasks.names[row]], found[len(inputs):])]
        if last:
            spare = _own_buffers(found)[:len(inputs)]
        del found  # copied: free it before the next task's backward allocates its own
    here = {row for row, _, _ in head_grads}
    for row, name in enumerate(tasks.names):
        if row not in here:  # absent on this rank (DDP): a zero row, and the same reduce list as the others
            grads[row].zero_()
            head_grads += [(row, p, None) for p in heads[name]]
    return Rows(grads, head_grads, used, spare)


def _task_gradients(tasks: Tasks, inputs: list[Tensor], heads: Mapping[str, list[Tensor]], scale: float,
                    strategy: Strategy, keep_graph: bool) -> Iterator[tuple[int, Sequence[Tensor | None], bool]]:
    """``(row, gradients over [*inputs, *its head], whether it is the last)`` for each task present here."""
    rows = [row for row, loss in enumerate(tasks.local) if loss is not None]
    if strategy == "batched":
        try:
            yield from _batched(tasks, rows, inputs, heads, scale)
            return
        except RuntimeError as error:  # an op without a batching rule: vmap cannot run this graph
            warnings.warn(f"batched per-task gradients failed, computing them one task at a time ({error})",
                          RuntimeWarning, stacklevel=4)
    for row in rows:
        loss = tasks.local[row]
        assert loss is not None
        last = row == rows[-1]
        yield row, torch.autograd.grad(loss * (scale * tasks.coefficient[row]), [*inputs, *heads[tasks.names[row]]],
                                       retain_graph=keep_graph or not last, allow_unused=True), last


def _batched(tasks: Tasks, rows: list[int], inputs: list[Tensor], heads: Mapping[str, list[Tensor]],
             scale: float) -> Iterator[tuple[int, Sequence[Tensor | None], bool]]:
    """All rows from one ``autograd.grad`` call vmapped over one-hot ``grad_outputs``."""
    outputs = torch.stack([tasks.local[row] for row in rows])  # type: ignore[misc]
    owned = [heads[tasks.names[row]] for row in rows]
    weights = torch.tensor([scale * tasks.coefficient[row] for row in rows]).to(outputs)
    found = torch.autograd.grad(outputs, [*inputs, *(p for group in owned for p in group)], torch.diag(weights),
                                retain_graph=True, allow_unused=True, is_grads_batched=True)
    shared, start = found[:len(inputs)], len(inputs)
    for j, (row, group) in enumerate(zip(rows, owned)):
        own = found[start:start + len(group)]
        start += len(group)
        yield row, [None if g is None else g[j] for g in (*shared, *own)], row == rows[-1]


def _buffer(workspace: Workspace, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A ``[rows, cols]`` view of the buffer kept in ``workspace`` (grown when too small)."""
    key = (str(device), dtype)
    if key not in workspace or workspace[key].numel() < rows * cols:
        workspace.pop(key, None)  # free the old one before allocating the larger
        workspace[key] = torch.empty(rows * cols, dtype=dtype, device=device)
    return workspace[key][:rows * cols].view(rows, cols)


def _own_buffers(found: Sequence[Tensor | None]) -> list[Tensor | None]:
    """The gradients of one call that alone own their contiguous memory (autograd may hand one
    tensor to two parameters), so that overwriting one changes nothing else; else None."""
    owners = Counter(g.untyped_storage().data_ptr() for g in found if g is not None)
    return [g if g is not None and owners[g.untyped_storage().data_ptr()] == 1 and g.is_contiguous()
            and g.untyped_storage().nbytes() == g.numel() * g.element_size() else None for g in found]
