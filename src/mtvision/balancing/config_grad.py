"""ConFIG — conflict-free inverse gradients (Liu, Chu, Thuerey 2024, "ConFIG: towards
conflict-free training of physics informed neural networks", ICLR 2025).

The direction has the *same positive cosine* with every task gradient, and its length is
the sum of the task gradients' projections on it:

    g_u = ũ / ‖ũ‖,   ũ = U⁺ 1   (U: the unit task gradients as rows),
    d = (Σ_t g_t·g_u) g_u.

With the cosine matrix ``C = U Uᵀ`` (from the Gramian), ``ũ = Uᵀ C⁺ 1 = Σ_t (β_t/‖g_t‖) g_t``
with ``β = C⁺ 1``, so ``d`` is a combination of the task gradients computed on ``G Gᵀ``.
When ``C`` is invertible (independent gradients), ``d·g_t > 0`` for every task; otherwise
the pseudo-inverse gives the least-squares compromise. Sum scale:
orthogonal gradients of equal norm give ``d = Σ_t g_t``.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import RANK_RTOL, TINY, Array, unit_gramian
from mtvision.balancing.base import GramianBalancer, register


@register("config")
class ConFIG(GramianBalancer):
    """Equal-cosine direction scaled by the summed projections."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        cosines, norms, live = unit_gramian(gramian)
        direction = np.zeros(len(gramian))  # ũ = Σ_t direction_t g_t; zero gradients take no part
        direction[live] = np.linalg.pinv(cosines, rtol=RANK_RTOL, hermitian=True) @ np.ones(len(norms)) / norms
        projected = gramian @ direction  # g_t·ũ
        return projected.sum() / max(direction @ projected, TINY) * direction
