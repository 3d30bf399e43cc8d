"""SDMGrad — stochastic direction-oriented multi-objective gradient (Xiao, Ban & Ji 2023,
"Direction-oriented multi-objective learning: simple and provable stochastic algorithms",
NeurIPS; in LibMTL and TorchJD as ``SDMGrad``).

The update is pulled from MGDA's min-norm point towards a preferred direction ``g_0 = w̃ᵀG``
(``w̃`` uniform: the mean gradient). The weights on the simplex minimise

    ½ ‖Gᵀ(w + λ w̃)‖²   over w ∈ Δ,   d = Gᵀ(w + λ w̃) / (1 + λ),

solved as in the official code by ``n_iter`` steps of projected SGD with momentum on
``M̂ (w + λ w̃)``, ``M̂ = M / s²``, ``s`` the mean gradient norm (so the inner learning rate does
not depend on the gradients' scale), warm-started from the previous step's ``w`` (state:
``w`` per task, renormalised over the present tasks). The paper evaluates ``M`` on two
independent batches for an unbiased estimate; like LibMTL we use the step's own Gramian.
λ = 0.3, lr 10, momentum 0.5 and 20 iterations as in the official experiments. Scale as in
the paper: the weights sum to 1 (a convex combination, ~1/T of EW's sum).
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import Array, project_simplex, to_numpy
from mtvision.balancing.base import GramianBalancer, register


@register("sdmgrad")
class SDMGrad(GramianBalancer):
    """Min-norm weights pulled towards the mean gradient by ``λ``."""

    def __init__(self, num_tasks: int, *, lambda_: float = 0.3, lr: float = 10.0, momentum: float = 0.5,
                 n_iter: int = 20) -> None:
        super().__init__(num_tasks)
        if lambda_ < 0 or lr <= 0 or not 0 <= momentum < 1 or n_iter < 1:
            raise ValueError("SDMGrad needs lambda_ ≥ 0, lr > 0, 0 ≤ momentum < 1 and n_iter ≥ 1, got "
                             f"{lambda_}, {lr}, {momentum}, {n_iter}")
        self.lambda_, self.lr, self.momentum, self.n_iter = lambda_, lr, momentum, n_iter
        self.register_buffer("w", torch.ones(num_tasks, dtype=torch.float64))

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        i = idx.to(self.w.device)
        k = len(gramian)
        w = to_numpy(self.w[i])
        w = w / w.sum() if w.sum() > 0 else np.full(k, 1.0 / k)  # all present tasks at 0: restart uniform
        preferred = np.full(k, 1.0 / k)
        scale = np.sqrt(np.clip(np.diag(gramian), 0.0, None)).mean()
        m = gramian / (scale**2 + 1e-8)
        velocity = np.zeros(k)
        for step in range(self.n_iter):
            grad = m @ (w + self.lambda_ * preferred)
            velocity = grad if step == 0 else self.momentum * velocity + grad
            w = project_simplex(w - self.lr * velocity)
        self.w[i] = torch.from_numpy(w).to(self.w)
        return (w + self.lambda_ * preferred) / (1 + self.lambda_)
