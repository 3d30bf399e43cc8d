"""ExcessMTL — robust multi-task learning with excess risks (He, Xu, Chen & Zhao 2024, ICML;
in LibMTL and TorchJD as ``ExcessMTL``).

Tasks are weighted by an estimate of their *excess* risk (how far each is from its own
optimum), not their loss, so a task with large irreducible noise does not take over. With
an AdaGrad-style diagonal Hessian ``H_t = diag(sqrt(Σ_steps g_t² + ε))`` (Eq. 7), the excess
risk is ``E_t ≈ g_tᵀ H_t^{-1} g_t`` (Eq. 6); it is divided by the task's first estimate
(scale processing, Sec. 3.2) and the weights take an exponentiated-gradient step (Eq. 9):

    w ← softmax(log w + η E / E⁰),   d = Σ_t w_t g_t.

The weights live on the simplex (initialised uniform, as in the paper and TorchJD; LibMTL and
the official code start at 1): a convex combination, ~1/T of EW's sum. On a task's first
step ``E⁰`` is set and ``E`` is used raw, as in TorchJD with no warm-up. State: the squared
gradient sums ``[T, D]`` (so parameter mode holds ``G``: the stored path), the weights, the
first estimates. Over the present tasks the softmax is shift-invariant, so absent tasks'
weights need no renormalisation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing._wide_state import WideState
from mtvision.balancing.base import GradientBalancer, register


@register("excess_mtl")
class ExcessMTL(WideState, GradientBalancer):
    """Exponentiated-gradient weights driven by each task's estimated excess risk."""

    WIDE = ("squared",)

    def __init__(self, num_tasks: int, *, step_size: float = 1.0, eps: float = 1e-7) -> None:
        super().__init__(num_tasks)
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.step_size, self.eps = step_size, eps
        self.register_buffer("squared", torch.zeros(num_tasks, 0))
        self.register_buffer("weights", torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64))
        self.register_buffer("first", torch.zeros(num_tasks, dtype=torch.float64))  # E⁰ per task; 0 = not seen yet

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        self._follow(grads.device)
        self._widen(grads)
        excess = torch.stack([self._excess(task, g) for task, g in zip(idx.tolist(), grads)]).to(self.first)
        i = idx.to(grads.device)
        seen = self.first[i] > 0
        self.first[i] = torch.where(seen, self.first[i], excess)
        scaled = torch.where(seen, excess / (self.first[i] + self.eps), excess)
        weights = torch.softmax(self.weights[i].log() + self.step_size * scaled, dim=0)
        self.weights[i] = weights
        self._record(weights.to(grads), idx)
        return weights.to(grads) @ grads

    def _excess(self, task: int, grad: Tensor) -> Tensor:
        """``g_tᵀ H_t^{-1} g_t`` after adding ``g_t²`` to the task's sums (one row at a time: no ``[k, D]`` temporary)."""
        squared = grad.square()
        self.squared[task].add_(squared)
        return (squared / (self.squared[task] + self.eps).sqrt()).sum()
