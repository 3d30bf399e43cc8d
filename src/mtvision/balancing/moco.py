"""MoCo — multi-objective gradient correction (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen
2023, "Mitigating gradient bias in multi-objective learning: a provably convergent approach",
ICLR; as in LibMTL's ``MoCo``).

MGDA's weights computed from noisy stochastic gradients are biased. MoCo tracks each task's
gradient with a moving average and takes a projected step on the weights, not a full solve:

    ĝ_t = L_t g_t / ‖g_t‖                      (loss-scaled unit gradient, as the code)
    y_t ← y_t − β_k (y_t − ĝ_t),   β_k = β / k^σ_β
    λ ← softmax(λ − γ_k (Y Yᵀ + ρ I) λ),   γ_k = γ / k^σ_γ
    d = Yᵀ λ

``k`` counts the task's steps. β = γ = 0.5 and 0.1, σ_β = σ_γ = 0.5, ρ = 0 as in LibMTL
(which, like the official code, uses a softmax where the paper projects on the simplex).
``λ`` lives on the simplex (a convex combination of the tracked gradients, whose norms are the
losses). ``d`` mixes past gradients, so it is not a combination of the current ones
(``last_weights`` is None) and the state ``Y[T, D]`` makes parameter mode hold ``G`` (the
stored path). Absent tasks keep their ``y_t`` and ``λ_t``; ``λ`` is renormalised over the
present tasks (so a fresh state starts uniform over them) and ``γ_k`` uses their mean step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing._wide_state import WideState
from mtvision.balancing.base import GradientBalancer, register


@register("moco")
class MoCo(WideState, GradientBalancer):
    """Tracked loss-scaled gradients, combined by weights that take one projected step per call."""

    needs_losses = True
    WIDE = ("tracked",)

    def __init__(self, num_tasks: int, *, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1,
                 gamma_sigma: float = 0.5, rho: float = 0.0) -> None:
        super().__init__(num_tasks)
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = beta, beta_sigma, gamma, gamma_sigma, rho
        self.register_buffer("tracked", torch.zeros(num_tasks, 0))
        self.register_buffer("lambdas", torch.ones(num_tasks))
        self.register_buffer("steps", torch.zeros(num_tasks))

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        assert losses is not None  # aggregate() enforces it (needs_losses)
        self._follow(grads.device)
        self._widen(grads)
        i = idx.to(grads.device)
        self.steps[i] += 1
        rates = self.beta / self.steps[i] ** self.beta_sigma
        scales = rates * losses / (torch.linalg.vector_norm(grads, dim=1) + 1e-8)
        tasks = idx.tolist()
        for row, task in enumerate(tasks):  # y ← (1 − β) y + β ĝ, in place, one row at a time
            self.tracked[task].mul_(1 - rates[row]).add_(grads[row] * scales[row])
        gram = torch.stack([torch.stack([self.tracked[a] @ self.tracked[b] for b in tasks]) for a in tasks])
        lambdas = self.lambdas[i] / self.lambdas[i].sum()
        gamma = self.gamma / self.steps[i].mean() ** self.gamma_sigma
        step = (gram + self.rho * torch.eye(len(tasks), device=grads.device, dtype=gram.dtype)) @ lambdas.to(gram)
        lambdas = torch.softmax(lambdas - gamma * step, dim=0)
        self.lambdas[i] = lambdas.to(self.lambdas)
        self.last_weights = None
        coefficients = self.tracked.new_zeros(self.num_tasks).index_put_((i,), lambdas.to(self.tracked))
        return torch.mv(self.tracked.T, coefficients)
