"""Per-task gradients and the one backward of a training step: the only ``torch.autograd.grad``.

:func:`balanced_backward` leaves ``.grad`` on every trainable parameter (shared trunk, heads,
a loss method's own), ready for ``optimizer.step()`` / ``scaler.step(optimizer)``, by one of:

* ``"loss"`` — a loss method: one ordinary backward of ``method.combine(losses)``;
* ``"reuse"`` — a gradient method with ``reuse_weights=True`` (``balancing.every: K``): one
  ordinary backward of ``Σ_t last_weights[t] · L_t``, the update while the weights hold;
* ``"parameters"`` — exact: one ``autograd.grad`` per task over the shared parameters and
  its head, the rows copied into a ``G[k, D]`` that :class:`TaskParameters` keeps (see
  :mod:`~mtvision.balancing._rows`);
* ``"representation"`` — MGDA-UB: rows are the gradients w.r.t. the shared features (all
  levels of the batch), the combined one is backpropagated once into the encoder. The
  features must not be computed from one another (true of the FPN), or it would count twice.

Parameter mode has two paths for a Gramian method (a :class:`GramianBalancer`):
``"parameters_stored"`` holds ``G`` (below); ``"parameters_streamed"`` never holds it —
``G Gᵀ`` is summed block by block (a parameter tensor, or a few output channels of a
convolution weight) from one task-batched backward that keeps the graph, the heads and the
image-side stems run once per task (:mod:`~mtvision.balancing._stream`,
:mod:`~mtvision.balancing._graph`); then one ordinary backward of ``Σ_t w_t L_t`` writes every
``.grad`` (the heads get ``w_t ∇L_t`` from it). Streaming costs that extra backward, ``1/T``
of the floor's work; holding costs ``k × D`` floats. ``"parameters"`` picks by a memory
estimate: stored while ``G`` takes under a quarter of the free memory where it would live,
streamed beyond. Methods that need ``G`` itself (GradDrop, DB-MTL, MoCo, ExcessMTL,
TrimmedMean, Auto-Lambda) always take the stored path (a forced ``"parameters_streamed"`` warns), and so
does a DDP step where a task is absent on some rank (the ranks' batched passes must pair up).

A Gramian method (all but those) is given a ``[k, k]`` factor of ``G Gᵀ``:
its weights depend on nothing else, so ``G Gᵀ`` (cache-sized blocks) and ``d = wᵀG`` (into
buffers already in memory) are computed here, once. Each head gets its own task's gradient,
from that task's call, times the task's weight (1 for GradDrop and DB-MTL).

**AMP.** Pass unscaled losses and the GradScaler factor as ``scale``: the backward runs on
``scale · L``, methods see true gradients and ``.grad`` holds ``scale · d`` for
``scaler.step`` to unscale and inf-check. A non-finite row never reaches a method: the
result is ``skipped`` and ``.grad`` the plain, non-finite sum, as after a plain backward.

**DDP** (see :mod:`~mtvision.balancing._ranks`): every rank applies the same update, a task
absent on some ranks averaging over the others. Parameter mode sums ``G`` and the heads'
gradients over the ranks; representation mode sums the Gramian (the batch's feature rows
are the ranks' rows side by side), then the gradients; loss paths sum the gradients. Run
the forward under ``ddp_model.no_sync()``: ``autograd.grad`` fires no DDP hook.

Expects zeroed gradients (``zero_grad(set_to_none=True)``); like ``backward`` it adds to them.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mtvision.balancing import create
    >>> trunk, heads = nn.Linear(2, 2), nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)})
    >>> params = TaskParameters(list(trunk.parameters()), {n: list(h.parameters()) for n, h in heads.items()})
    >>> x = trunk(torch.ones(4, 2))
    >>> losses = {n: h(x).pow(2).mean() for n, h in heads.items()}
    >>> result = balanced_backward(create("mgda", num_tasks=2), losses, params)
    >>> result.path, result.skipped, trunk.weight.grad is not None
    ('parameters', False, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from mtvision.balancing._ranks import Tasks, all_reduce_, all_reduce_grads_, gather_tasks
from mtvision.balancing._rows import Rows, Strategy, Workspace, task_rows
from mtvision.balancing._solvers import factor
from mtvision.balancing._stream import available_bytes, every_rank_has_every_task, stored_bytes, streamed_gramian
from mtvision.balancing.base import Balancer, GradientBalancer, GramianBalancer

__all__ = ["BackwardResult", "TaskParameters", "balanced_backward", "task_parameters"]

Mode = Literal["parameters", "parameters_streamed", "parameters_stored", "representation"]
STORED_SHARE = 4  # "parameters" holds G while it takes under 1/STORED_SHARE of the free memory
BLOCK = 1 << 16  # columns of G per Gramian block: k rows of it stay in cache


@dataclass
class TaskParameters:
    """Trainable parameters split by who trains them (``heads`` in task-index order), and the
    ``G`` buffer kept from one step to the next: a fresh ``[k, D]`` block would be
    page-faulted in on every CPU step (~4 ms per 10 MB); ``workspace.clear()`` frees it."""

    shared: list[Tensor]
    heads: dict[str, list[Tensor]]
    workspace: Workspace = field(default_factory=dict, repr=False)


def task_parameters(model: nn.Module) -> TaskParameters:
    """Split a multi-task model (unwrapped from DDP) into shared parameters and per-task heads.

    A task's own parameters are ``model.own_parameters(name)`` where the model defines it (an
    architecture's per-task modules besides the head, e.g. MTAN's attention), else those of
    ``model.tasks[name]``; everything else trainable is shared. The order of ``model.tasks``
    is the task index a balancing method sees.
    """
    own = getattr(model, "own_parameters", None) or (lambda name: model.tasks[name].parameters())
    heads = {name: [p for p in own(name) if p.requires_grad] for name in model.tasks}
    owned = {id(p) for group in heads.values() for p in group}
    return TaskParameters([p for p in model.parameters() if p.requires_grad and id(p) not in owned], heads)


@dataclass(frozen=True)
class BackwardResult:
    """What the step logs: which path ran, the weights, and the gradient geometry on request."""

    path: Literal["loss", "reuse", "parameters", "parameters_streamed", "representation"]
    tasks: Tensor  # CPU LongTensor: indices of the tasks that had a row (present on any rank)
    weights: Tensor | None  # method.last_weights ([num_tasks], 0 for absent tasks), or None
    skipped: bool  # a non-finite gradient row: the optimiser step must be skipped
    # diagnostics=True, of the rows (parameter or feature gradients), NaN for absent tasks:
    grad_norms: Tensor | None = None  # [num_tasks] float64
    cosines: Tensor | None = None  # [num_tasks, num_tasks] float64


def balanced_backward(method: Balancer, losses: Mapping[str, Tensor], params: TaskParameters, *,
                      features: Sequence[Tensor] | None = None, mode: Mode | None = None, scale: float = 1.0,
                      reuse_weights: bool = False, process_group: dist.ProcessGroup | None = None,
                      diagnostics: bool = False, strategy: Strategy = "loop") -> BackwardResult:
    """Leave the balanced gradient of ``losses`` in ``.grad`` of every trainable parameter.

    Args:
        method: a balancing method for ``len(params.heads)`` tasks.
        losses: the present tasks' scalar losses (unscaled, with their graphs); an absent
            task has no entry.
        params: from :func:`task_parameters`.
        features: the shared representation the heads read (``model.features(images)``);
            required in representation mode.
        mode: per-task gradients of the ``"parameters"`` (``"parameters_streamed"`` /
            ``"parameters_stored"`` force a path) or the ``"representation"`` (default: the
            method's ``gradients_of``); loss methods ignore it.
        scale: the GradScaler factor (``scaler.get_scale()``), 1.0 without one.
        reuse_weights: backpropagate ``Σ last_weights · L`` instead of recomputing them (a
            task absent at the last recomputation keeps weight 0 until the next one).
        process_group: the DDP group; ``None`` (or one rank) for a single process.
        diagnostics: also return per-task gradient norms and pairwise cosines (free on the
            gradient paths: they come from the Gramian computed anyway).
        strategy: ``"loop"`` (one ``autograd.grad`` per task) or ``"batched"`` (one vmapped
            call; falls back to the loop where an op has no batching rule).
    """
    names = list(params.heads)
    if method.num_tasks != len(names) or not set(losses) <= set(names):
        raise ValueError(f"{type(method).__name__} is for {method.num_tasks} tasks, the model has {names}; "
                         f"losses name {sorted(losses)}: create the method with num_tasks={len(names)}")
    group = process_group if process_group is not None and dist.get_world_size(process_group) > 1 else None
    tasks = gather_tasks(losses, names, params.shared[0].device, group)
    if not tasks.names:
        return BackwardResult("loss", tasks.idx, None, skipped=True)
    if not isinstance(method, GradientBalancer) or (reuse_weights and method.last_weights is not None):
        return _combined_backward(method, tasks, params, scale, reuse=isinstance(method, GradientBalancer))
    mode = mode or method.gradients_of
    if mode == "representation" and features is None:
        raise ValueError("representation mode needs features=model.features(images), the tensors the heads read")
    if mode != "representation" and _streams(method, mode, tasks, params.shared):
        result = _streamed_backward(method, tasks, params, scale, diagnostics, features)
        if result is not None:
            return result
    inputs = list(params.shared if mode != "representation" else features)  # type: ignore[arg-type]
    return _task_backward(method, tasks, params, inputs, "representation" if mode == "representation" else
                          "parameters", scale, diagnostics, strategy)


def _streams(method: GradientBalancer, mode: Mode, tasks: Tasks, shared: list[Tensor]) -> bool:
    """Whether parameter mode takes the streamed path (see the module docstring)."""
    if mode == "parameters_stored":
        return False
    if not isinstance(method, GramianBalancer):
        if mode == "parameters_streamed":
            warnings.warn(f"{type(method).__name__} needs the gradients themselves, not only G Gᵀ: it holds G "
                          "(gradients: parameters_stored)", RuntimeWarning, stacklevel=3)
        return False
    if not every_rank_has_every_task(tasks):
        return False
    return mode == "parameters_streamed" or stored_bytes(tasks, shared) * STORED_SHARE > available_bytes(
        shared[0].device)


def _streamed_backward(method: GramianBalancer, tasks: Tasks, params: TaskParameters, scale: float,
                       diagnostics: bool, features: Sequence[Tensor] | None) -> BackwardResult | None:
    """``G Gᵀ`` streamed, the method's weights, one backward of ``Σ w_t L_t``; None: take the stored path."""
    gramian = streamed_gramian(tasks, params.shared, scale, features)
    if gramian is None:
        return None
    gramian /= scale**2
    skipped = not bool(torch.isfinite(gramian.diagonal()).all())
    # Skipped: the plain sum leaves .grad non-finite, as a backward would; no solver sees a NaN.
    weights = torch.ones(len(tasks.names), dtype=torch.float64) if skipped else _gramian_weights(method, tasks, gramian)
    coefficients = [w * c * scale for w, c in zip(weights.tolist(), tasks.coefficient)]
    torch.stack([c * loss.float() for c, loss in zip(coefficients, tasks.local)]).sum().backward()  # type: ignore[union-attr]
    if tasks.group is not None:
        all_reduce_grads_([*params.shared, *(p for group in params.heads.values() for p in group)], tasks.group)
    norms, cosines = _geometry(gramian, tasks, method.num_tasks) if diagnostics and not skipped else (None, None)
    return BackwardResult("parameters_streamed", tasks.idx, None if skipped else method.last_weights, skipped,
                          norms, cosines)


def _combined_backward(method: Balancer, tasks: Tasks, params: TaskParameters, scale: float,
                       reuse: bool) -> BackwardResult:
    """One ordinary backward of a weighted sum of the losses (loss methods, reused weights)."""
    local = torch.stack([c * loss.to(tasks.values.dtype) if loss is not None else tasks.values.new_zeros(())
                         for loss, c in zip(tasks.local, tasks.coefficient)])
    # The values of the rank average (what a stateful method must see on every rank), the gradients of this rank's share.
    vector = local + (tasks.values - local).detach()
    if reuse:
        assert method.last_weights is not None  # balanced_backward takes this path only then
        total = (method.last_weights.to(vector)[tasks.idx.to(vector.device)] * vector).sum()
    else:
        total = method.combine(vector, tasks.idx)
    (total * scale).backward()
    if tasks.group is not None:  # the method's own parameters (UW) saw the rank-averaged losses: already equal
        all_reduce_grads_([*params.shared, *(p for group in params.heads.values() for p in group)], tasks.group)
    return BackwardResult("reuse" if reuse else "loss", tasks.idx, method.last_weights, skipped=False)


def _task_backward(method: GradientBalancer, tasks: Tasks, params: TaskParameters, inputs: list[Tensor],
                   mode: Mode, scale: float, diagnostics: bool, strategy: Strategy) -> BackwardResult:
    """Per-task rows ``G`` over ``inputs``, the method's weights or update, ``.grad`` everywhere."""
    rows = task_rows(tasks, inputs, params.heads, params.workspace, scale, strategy,
                     keep_graph=mode == "representation")
    split_batch = tasks.group is not None and mode == "representation"  # each rank holds some columns of G
    if tasks.group is not None:
        reduced, used = all_reduce_([g for _, _, g in rows.heads], [p for _, p, _ in rows.heads], tasks.group,
                                    rows.grads.device, rows.used)
        rows = rows._replace(heads=[(r, p, g) for (r, p, _), g in zip(rows.heads, reduced)], used=used)
        if not split_batch:
            dist.all_reduce(rows.grads, group=tasks.group)
    gramian = _gramian(rows.grads, tasks.group if split_batch else None) / scale**2
    skipped = not bool(torch.isfinite(gramian.diagonal()).all())
    # Skipped, no solver sees a NaN: the plain sum of the rows leaves .grad non-finite, as a backward would.
    update, weights = None, torch.ones(len(tasks.names), dtype=torch.float64)
    if not skipped and isinstance(method, GramianBalancer):
        weights = _gramian_weights(method, tasks, gramian)
    elif not skipped:
        rows = rows._replace(spare=[None] * len(inputs))  # the method allocates d itself: free the last row first
        update = method.aggregate(rows.grads.div_(scale), tasks.idx, losses=tasks.values).mul_(scale)
        weights = weights if method.last_weights is None else method.last_weights[tasks.idx.to(update.device)]
    _write(rows, inputs, mode, update, weights)
    if split_batch:
        all_reduce_grads_(params.shared, tasks.group)  # type: ignore[arg-type]
    norms, cosines = _geometry(gramian, tasks, method.num_tasks) if diagnostics and not skipped else (None, None)
    return BackwardResult(mode, tasks.idx, None if skipped else method.last_weights, skipped, norms, cosines)


def _gramian(grads: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """``G Gᵀ`` in float64 from cache-sized column blocks, summed over the ranks when their
    rows are parts of one batch."""
    gramian = grads.new_zeros(len(grads), len(grads), dtype=torch.float64)
    for block in grads.split(BLOCK, dim=1):
        gramian += (block @ block.T).double()
    if group is not None:
        dist.all_reduce(gramian, group=group)
    return gramian


def _gramian_weights(method: GramianBalancer, tasks: Tasks, gramian: Tensor) -> Tensor:
    """The method's weights from a ``[k, k]`` factor whose Gramian is ``G Gᵀ``."""
    root = torch.from_numpy(np.ascontiguousarray(factor(gramian.cpu().numpy()).T))
    method.aggregate(root, tasks.idx, losses=tasks.values.cpu())
    assert method.last_weights is not None  # a Gramian method always records its weights
    return method.last_weights[tasks.idx.to(method.last_weights.device)]


def _write(rows: Rows, inputs: list[Tensor], mode: Mode, update: Tensor | None, weights: Tensor) -> None:
    """Into ``.grad``: ``update`` (or ``wᵀG``; both already scaled) on the shared parameters,
    or backpropagated from the features; each head's gradient times its task's weight."""
    if update is None:
        parts = _combine(rows, inputs, weights, reuse=mode == "parameters")
    else:
        parts = [c.view(t.shape) for c, t in zip(update.split([t.numel() for t in inputs]), inputs)]
    parts = [g.to(t.dtype) for g, t in zip(parts, inputs)]
    if mode == "parameters":
        for p, g, used in zip(inputs, parts, rows.used):
            if used:
                _accumulate(p, g)
    else:
        torch.autograd.backward(inputs, grad_tensors=parts)
    head_weights = weights.tolist()
    for row, p, g in rows.heads:
        if g is not None:  # out of place: autograd may hand one tensor to two parameters
            _accumulate(p, g * head_weights[row])


def _combine(rows: Rows, inputs: list[Tensor], weights: Tensor, reuse: bool) -> list[Tensor]:
    """``wᵀG`` one input at a time, into the last row's own gradient tensors where possible
    (in memory already, where a new buffer would be page-faulted in)."""
    w = weights.to(rows.grads)
    out = []
    for block, t, spare in zip(rows.grads.split([t.numel() for t in inputs], dim=1), inputs, rows.spare):
        fits = reuse and spare is not None and spare.dtype == block.dtype
        target = spare if fits else block.new_empty(t.shape)
        torch.mv(block.T, w, out=target.view(-1))
        out.append(target)
    return out


def _geometry(gramian: Tensor, tasks: Tasks, num_tasks: int) -> tuple[Tensor, Tensor]:
    """Per-task gradient norms and pairwise cosines from the Gramian, NaN for absent tasks."""
    m = gramian.cpu()
    norms = m.diagonal().clamp_min(0).sqrt()
    full_norms = torch.full((num_tasks,), float("nan"), dtype=torch.float64)
    full_norms[tasks.idx] = norms
    cosines = torch.full((num_tasks, num_tasks), float("nan"), dtype=torch.float64)
    cosines[tasks.idx[:, None], tasks.idx[None, :]] = m / torch.outer(norms, norms)
    return full_norms, cosines


def _accumulate(param: Tensor, grad: Tensor) -> None:
    """Add ``grad`` to ``param.grad`` as autograd would: take it when empty, else add in place."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)
