"""GradDrop — gradient sign dropout (Chen et al. 2020, "Just pick a sign: optimizing deep
multitask models with gradient sign dropout", NeurIPS).

Per coordinate, the sign purity of the task gradients

    P = ½ (1 + Σ_t g_t / Σ_t |g_t|)   ∈ [0, 1]

is the probability of keeping the positive contributions; one uniform ``U`` per coordinate
keeps the positive ones if ``P > U`` and the negative ones otherwise:

    d = Σ_t 1[(P > U and g_t > 0) or (P < U and g_t < 0)] g_t.

Coordinates where all tasks agree pass through summed (sum scale). The paper applies the
rule to gradients w.r.t. activations (summed over the batch) with an optional leak; here
it is applied to the rows of ``G`` as given. Elementwise, so not a combination of the task
gradients: ``last_weights`` is None. ``U`` comes from torch's global generator on the
gradients' device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import GradientBalancer


class GradDrop(GradientBalancer):
    """Keep, per coordinate, only the gradient contributions of one randomly chosen sign."""

    def __init__(self, num_tasks: int, *, eps: float = 1e-12) -> None:
        super().__init__(num_tasks)
        self.eps = eps

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        purity = 0.5 * (1 + grads.sum(0) / grads.abs().sum(0).clamp_min(self.eps))
        draw = torch.rand_like(purity)
        keep = torch.where(grads > 0, purity > draw, purity < draw)
        self.last_weights = None
        return (grads * keep).sum(0)
