"""DualProj (Quinton & Rey 2024, "Jacobian descent for multi-objective optimization", TorchJD).

The equal-weighting update ``Σ_t g_t`` is projected onto the dual cone of the gradients,
``C* = {x : g_t·x ≥ 0 ∀t}``:

    d = (1 + λ)ᵀ G,   λ = argmin_{λ ≥ 0} ‖Gᵀ(λ + 1)‖²,

the closest update to EW that conflicts with no task (first-order). Sum scale, like EW
(TorchJD projects the mean). One exact non-negative least-squares solve on the Gramian.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import Array, dual_cone_weights
from mtvision.balancing.base import GramianBalancer, register


@register("dualproj")
class DualProj(GramianBalancer):
    """Projection of the summed gradient onto the dual cone."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        return dual_cone_weights(gramian, np.ones(len(gramian)))
