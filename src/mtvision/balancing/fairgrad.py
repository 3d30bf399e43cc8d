"""FairGrad (Ban & Ji 2024, "Fair resource allocation in multi-task learning", ICML).

The update ``d = Σ_t w_t g_t`` maximises an α-fair utility of the per-task improvements
``g_t·d``, ``Σ_t (g_t·d)^(1−α) / (1−α)``; at the optimum the weights solve the T-dim
nonlinear system (Eq. 6)

    G Gᵀ w = w^(−1/α)   (elementwise power, w > 0).

α = 1 is proportional fairness (Nash-MTL), α → ∞ max–min fairness (MGDA-like); the
paper's default is α = 2. Since ``g_t·d = w_t^(−1/α) > 0``, the update improves every task.
We solve the system by damped Newton on its convex potential (see
:func:`~mtvision.balancing._solvers.alpha_fair_weights`), warm-started from the previous
step's weights (state: ``start`` per task). As Nash-MTL's code does, the Gramian is first
divided by its Frobenius norm, so ``d`` scales with the gradients like a plain gradient
(the same learning rate works whatever the loss scale); a 1e-8 ridge on the cosine matrix
keeps the system solvable when gradients are linearly dependent, and a zero gradient gets
weight 0.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import TINY, Array, alpha_fair_weights, to_numpy
from mtvision.balancing.base import GramianBalancer, register


@register("fairgrad")
class FairGrad(GramianBalancer):
    """α-fair combination of the task gradients."""

    def __init__(self, num_tasks: int, *, alpha: float = 2.0) -> None:
        super().__init__(num_tasks)
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.alpha = alpha
        self.register_buffer("start", torch.ones(num_tasks, dtype=torch.float64))

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        i = idx.to(self.start.device)
        m = gramian / max(np.linalg.norm(gramian), TINY)
        weights = alpha_fair_weights(m, self.alpha, to_numpy(self.start[i]))
        self.start[i] = torch.from_numpy(np.where(weights > 0, weights, 1.0)).to(self.start)  # zero: restart at 1
        return weights
