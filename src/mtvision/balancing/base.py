"""What a balancing method is (DESIGN §2 ``balancing/``): a small function of tensors.

A method sees per-task losses or per-task gradients, never the model. Two kinds:

* ``kind == "loss"`` — ``weigh(losses[k]) -> weights[k]``; the trainer minimises
  ``combine(losses) = Σ_t w_t L_t + regularizer()``. Weights are detached, except for
  uncertainty weighting whose weights carry its learnable log-variances.
* ``kind == "gradient"`` — ``aggregate(G[k, D]) -> d[D]`` from the per-task gradients; the
  trainer writes ``d`` into the shared parameters' ``.grad`` (or backpropagates it from the
  shared representation when ``gradients_of == "representation"``).

**Scale.** Equal weighting has weights 1: the loss total is the *sum* of the task losses and
its gradient the *sum* of the task gradients. Methods whose neutral case is EW share that
sum scale (UPGrad, DualProj, PCGrad, GradVac, Aligned-MTL, ConFIG, GradNorm, GradDrop, UW,
DWA, RLW, FAMO). Convex or affine combinations (MGDA, IMTL-G, CAGrad around the mean) and
methods whose scale is set by their own fixed point or the losses (Nash-MTL, FairGrad,
DB-MTL, GLS, SI) keep the scale of their paper, stated in their docstring.

**Partial labels.** A task absent from a batch has no row. ``tasks`` (a CPU LongTensor or
list of the present task indices, default all) says which of the ``num_tasks`` tasks the
rows are; stateful methods keep state per task index and update only present tasks.

**Reuse.** ``last_weights`` is the ``Tensor[num_tasks]`` of the last combination weights
(0 for absent tasks) whenever the update is ``Σ_t w_t g_t``, else ``None`` (GradDrop,
DB-MTL): a trainer may reuse them for a few steps as loss weights,
``Σ_t last_weights[tasks] · L_t``, without computing per-task gradients.

**State.** Methods are ``nn.Module``s: state lives in buffers (uncertainty weighting's in a
parameter), so ``state_dict()`` holds tensors only and ``torch.load(weights_only=True)``
reads it back. Loss methods' and DB-MTL's buffers follow the device of the inputs; the
Gramian methods' small state is read and written on the host wherever it lives.

**Syncs.** Loss methods never sync with the device. A Gramian method copies the T×T
Gramian to the host once per call and its weights back; give ``tasks`` on the CPU.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("upgrad", num_tasks=2)
    >>> m.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([1., 1.])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from mtvision.balancing._solvers import Array, to_numpy
from mtvision.structures.registry import registrar

TaskIndex = Tensor | Sequence[int] | None

METHODS: dict[str, type[Balancer]] = {}  # name -> method class, filled by @register in each method's module
register = registrar(METHODS, "balancing method")  # class decorator @register("pcgrad"); a taken name is an error


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """At least float32: half-precision inputs are promoted before any arithmetic."""
    return torch.promote_types(tensor.dtype, torch.float32)


class Balancer(nn.Module):
    """Shared plumbing: task-index checks, ``last_weights`` and state on the inputs' device."""

    kind: ClassVar[Literal["loss", "gradient"]]

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
        self.num_tasks = num_tasks
        self.last_weights: Tensor | None = None

    @classmethod
    def options(cls) -> list[str]:
        """The keyword options ``create`` accepts for this method."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def end_epoch(self) -> None:
        """Called by the trainer after each epoch; only epoch-level methods (DWA) use it."""

    def _indices(self, tasks: TaskIndex, rows: int | None = None) -> Tensor:
        """CPU LongTensor naming the task of each row; checks it names ``rows`` distinct tasks."""
        if tasks is None:
            if rows is not None and rows != self.num_tasks:
                raise ValueError(f"got {rows} rows for {self.num_tasks} tasks; pass tasks= to say which tasks they are")
            return torch.arange(self.num_tasks)
        idx = torch.as_tensor(tasks, dtype=torch.long).cpu().reshape(-1)
        if rows is not None and idx.numel() != rows:
            raise ValueError(f"tasks names {idx.numel()} tasks but there are {rows} rows")
        if idx.numel() == 0 or idx.unique().numel() != idx.numel():
            raise ValueError(f"tasks must name at least one task, each once; got {idx.tolist()}")
        if idx.min() < 0 or idx.max() >= self.num_tasks:
            raise ValueError(f"task indices must lie in [0, {self.num_tasks}); got {idx.tolist()}")
        return idx

    def _record(self, weights: Tensor, idx: Tensor) -> None:
        full = weights.detach().new_zeros(self.num_tasks)
        full[idx.to(full.device)] = weights.detach()
        self.last_weights = full

    def _follow(self, device: torch.device) -> None:
        """Keep the state buffers on the inputs' device (a no-op once they are there)."""
        for name, buffer in self.named_buffers(recurse=False):
            if buffer.device != device:
                setattr(self, name, buffer.to(device))


class LossBalancer(Balancer):
    """A method that weighs the per-task losses: ``total = Σ_t w_t L_t + regularizer``."""

    kind = "loss"
    #: whether the trainer must call ``update(new_losses)`` after each optimiser step (FAMO).
    needs_new_losses: ClassVar[bool] = False

    def weigh(self, losses: Tensor, tasks: TaskIndex = None) -> Tensor:
        """Weights ``Tensor[k]`` for the losses ``Tensor[k]`` of the present ``tasks``."""
        if losses.ndim != 1:
            raise ValueError(f"losses must be a vector Tensor[k], got shape {tuple(losses.shape)}")
        idx = self._indices(tasks, losses.shape[0])
        self._follow(losses.device)
        weights = self._weigh(losses.detach().to(compute_dtype(losses)), idx)
        self._record(weights, idx)
        return weights

    def regularizer(self, tasks: TaskIndex = None) -> Tensor | float:
        """Extra term of the total loss (uncertainty weighting's ``Σ s_t``); 0 otherwise."""
        return 0.0

    def combine(self, losses: Tensor, tasks: TaskIndex = None) -> Tensor:
        """The scalar the trainer backpropagates: ``Σ_t w_t L_t + regularizer``."""
        return (self.weigh(losses, tasks) * losses).sum() + self.regularizer(tasks)

    def update(self, new_losses: Tensor, tasks: TaskIndex = None) -> None:
        """Receives the losses measured after the optimiser step; only FAMO uses them."""

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        raise NotImplementedError


class GradientBalancer(Balancer):
    """A method that maps the per-task gradients ``G[k, D]`` to one update ``d[D]``."""

    kind = "gradient"
    #: whether ``aggregate`` requires ``losses=`` (GradNorm, DB-MTL, MGDA with a loss normalisation).
    needs_losses: bool = False
    #: which per-task gradients the backward engine computes: w.r.t. the shared parameters,
    #: or w.r.t. the shared representation (MGDA-UB).
    gradients_of: ClassVar[Literal["parameters", "representation"]] = "parameters"

    def aggregate(self, grads: Tensor, tasks: TaskIndex = None, losses: Tensor | None = None) -> Tensor:
        """Update direction ``Tensor[D]`` from the gradients ``Tensor[k, D]`` of the present tasks."""
        if grads.ndim != 2:
            raise ValueError(f"grads must be a matrix Tensor[k, D], got shape {tuple(grads.shape)}")
        idx = self._indices(tasks, grads.shape[0])
        if losses is not None and losses.shape != (grads.shape[0],):
            raise ValueError(f"losses must have shape ({grads.shape[0]},), got {tuple(losses.shape)}")
        if losses is None and self.needs_losses:
            raise ValueError(f"{type(self).__name__} needs the task losses: call aggregate(grads, losses=...)")
        grads = grads.detach().to(compute_dtype(grads))
        return self._aggregate(grads, idx, None if losses is None else losses.detach().to(grads))

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        raise NotImplementedError


class GramianBalancer(GradientBalancer):
    """An update ``d = wᵀG`` whose weights depend on the gradients only through ``M = G Gᵀ``.

    The cost in D is two matmuls (``G Gᵀ`` and ``wᵀG``); the T×T work runs on the host in
    float64 (one tiny device-to-host copy per step).
    """

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        gramian = to_numpy(grads @ grads.T)
        weights = self._weights(gramian, idx, None if losses is None else to_numpy(losses))
        w = torch.from_numpy(np.ascontiguousarray(weights)).to(grads)
        self._record(w, idx)
        return w @ grads

    def _weights(self, gramian: Array, idx: Tensor, losses: Array | None) -> Array:
        raise NotImplementedError
