"""PCGrad — projecting conflicting gradients (Yu et al. 2020, "Gradient surgery for
multi-task learning", NeurIPS, Alg. 1).

Each task gradient is visited against every other task in a random order; whenever it
conflicts with ``g_j`` its component along ``g_j`` is removed,

    g_i' ← g_i' − (g_i'·g_j / ‖g_j‖²) g_j   if g_i'·g_j < 0,

and the update is ``Σ_i g_i'`` (EW's sum scale; EW itself when nothing conflicts). Every
``g_i'`` stays a combination of the task gradients, so the surgery is run on coefficients
over the Gramian (O(T³), not O(T²D)) and ``last_weights`` holds the combination. For two
tasks the update never conflicts with either task; for more, only pairwise. The order is
drawn with ``torch.randperm`` (seed torch for reproducible runs).
"""

from __future__ import annotations

import torch

from mtvision.balancing._solvers import Array, sequential_surgery
from mtvision.balancing.base import GramianBalancer, register


@register("pcgrad")
class PCGrad(GramianBalancer):
    """Sum of the task gradients after projecting out their pairwise conflicts."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        def project(i: int, j: int, coefficients: Array) -> float:
            dot = coefficients @ gramian[:, j]
            return -dot / gramian[j, j] if dot < 0 and gramian[j, j] > 0 else 0.0

        return sequential_surgery(len(gramian), project)
