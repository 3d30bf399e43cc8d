"""UPGrad (Quinton & Rey 2024, "Jacobian descent for multi-objective optimization", TorchJD).

Each task gradient is projected onto the dual cone of the gradients,
``C* = {x : g_t·x ≥ 0 ∀t}``, and the projections are added:

    d = Σ_i π_{C*}(g_i),   π_{C*}(g_i) = (e_i + λ_i)ᵀ G,
    λ_i = argmin_{λ ≥ 0} ‖Gᵀ(λ + e_i)‖²  (a T×T problem on the Gramian).

``d`` lies in ``C*`` (no task's loss increases to first order) and equals equal weighting
when no gradients conflict. We *sum* the projections (EW's scale); TorchJD averages them.
Each projection is an exact non-negative least-squares solve on a factor of ``G Gᵀ``.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import Array, dual_cone_weights
from mtvision.balancing.base import GramianBalancer, register


@register("upgrad")
class UPGrad(GramianBalancer):
    """Sum of the projections of every task gradient onto the dual cone."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        return np.sum([dual_cone_weights(gramian, row) for row in np.eye(len(gramian))], axis=0)
