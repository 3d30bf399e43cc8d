"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin 2023, "Independent component
alignment for multi-task learning", CVPR, Alg. 1).

Conflicts and dominance show up as a badly conditioned gradient matrix. Aligned-MTL
replaces ``G`` by the closest matrix (Procrustes) whose singular values are all equal to
the smallest one: with ``G Gᵀ = V Λ Vᵀ``,

    B = √λ_min · V Λ^(−1/2) Vᵀ,   α = B w,   d = αᵀ G,

``Ĝ = B G`` has orthogonal rows of equal norm ``√λ_min`` (``B M B = λ_min I``) and ``d`` is
their sum with task preferences ``w = 1`` (EW's sum scale: orthogonal gradients of equal
norm give exactly EW). Eigenvalues below ``RANK_RTOL · λ_max`` (float32 round-off) are
treated as zero (rank-deficient ``G``), and ``λ_min`` is the smallest kept one — the
paper's "min" scale mode.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import RANK_RTOL, Array
from mtvision.balancing.base import GramianBalancer, register


@register("aligned_mtl")
class AlignedMTL(GramianBalancer):
    """Sum of the task gradients after equalising the singular values of ``G``."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        eigenvalues, vectors = np.linalg.eigh(gramian)
        keep = eigenvalues > RANK_RTOL * max(eigenvalues.max(), 0.0)
        if not keep.any():
            return np.zeros(len(gramian))
        values, basis = eigenvalues[keep], vectors[:, keep]
        align = np.sqrt(values.min()) * (basis / np.sqrt(values)) @ basis.T
        return align @ np.ones(len(gramian))
