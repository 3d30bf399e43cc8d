"""CAGrad — conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu 2021, NeurIPS).

Around the average gradient ``g_0 = (1/T) Σ_t g_t``, CAGrad picks the update in the ball
``‖d − g_0‖ ≤ c‖g_0‖`` that maximises the worst task's improvement ``min_t g_t·d``. Its
dual is a T-dimensional problem on the simplex (Eq. 5):

    w* = argmin_{w ∈ Δ} g_wᵀg_0 + c‖g_0‖ ‖g_w‖,   g_w = Σ_t w_t g_t,
    d = g_0 + (c‖g_0‖ / ‖g_w‖) g_w,

so ``d = Σ_t (1/T + c‖g_0‖ w*_t / ‖g_w‖) g_t`` and everything is computed on the Gramian.
Scale as in the paper (around the *mean* gradient); with ``rescale`` (the official code's
default) ``d`` is divided by ``1 + c²``. ``c = 0`` gives the mean gradient; ``c = 0.4`` is
the paper's choice for NYUv2/Cityscapes. The inner problem is solved with SLSQP.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import TINY, Array, minimize_on_simplex, normalized
from mtvision.balancing.base import GramianBalancer, register


@register("cagrad")
class CAGrad(GramianBalancer):
    """Best worst-task improvement within a ball around the average gradient."""

    def __init__(self, num_tasks: int, *, c: float = 0.4, rescale: bool = True) -> None:
        super().__init__(num_tasks)
        self.c, self.rescale = c, rescale

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        m = normalized(gramian)  # the weights below are invariant to the gradients' scale
        k = len(m)
        towards_mean = m.mean(axis=1)  # G g_0
        radius = self.c * np.sqrt(max(m.mean(), 0.0))  # c ‖g_0‖

        def norm(w: Array) -> float:
            return float(np.sqrt(max(w @ m @ w, TINY)))

        w = minimize_on_simplex(
            lambda w: float(w @ towards_mean) + radius * norm(w),
            lambda w: towards_mean + radius * (m @ w) / norm(w),
            k,
        )
        weights = 1.0 / k + radius * w / norm(w)
        return weights / (1 + self.c**2) if self.rescale else weights
