"""IMTL-G — impartial multi-task learning, gradient part (Liu et al. 2021, "Towards
impartial multi-task learning", ICLR, Sec. 3.2).

Find the combination ``g = Σ_t α_t g_t`` with ``Σ α_t = 1`` whose projection on every *unit*
task gradient ``u_t = g_t / ‖g_t‖`` is the same (``g·u_t`` equal for all t), so no task is
favoured whatever its gradient's magnitude. Closed form (Eq. 9), with
``D = [g_1 − g_2, …, g_1 − g_T]`` and ``U = [u_1 − u_2, …, u_1 − u_T]``:

    α_{2:T} = g_1 Uᵀ (D Uᵀ)^(-1),   α_1 = 1 − Σ_{t ≥ 2} α_t.

All inner products come from the Gramian (``g_i·u_j = M_ij / ‖g_j‖``); a least-squares
solve replaces the inverse so identical or dependent gradients stay finite. Scale as in
the paper (``Σ α = 1``). The loss part of IMTL (IMTL-L) is not included.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import RANK_RTOL, TINY, Array
from mtvision.balancing.base import GramianBalancer, register


@register("imtl_g")
class IMTLG(GramianBalancer):
    """Affine combination with equal projections on the unit task gradients."""

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        if len(gramian) == 1:
            return np.ones(1)
        onto_unit = gramian / np.sqrt(np.clip(np.diag(gramian), TINY, None))[None, :]  # [i, j] = g_i·u_j
        first = onto_unit[0, 0] - onto_unit[0, 1:]  # g_1·(u_1 − u_j)
        d_ut = first[None, :] - onto_unit[1:, 0:1] + onto_unit[1:, 1:]  # (g_1 − g_i)·(u_1 − u_j)
        rest = np.linalg.lstsq(d_ut.T, first, rcond=RANK_RTOL)[0]
        return np.concatenate([[1.0 - rest.sum()], rest])
