"""Scale-invariant loss (SI): minimise ``Σ_t log L_t``.

``∇ log L_t = ∇L_t / L_t``, so the weights are ``w_t = 1 / L_t`` (detached): every task's
loss is measured relative to its current value, whatever its units. Listed as a baseline
by Navon et al. 2022 (Nash-MTL, "SI"); it is the loss-balancing half of DB-MTL
(Lin et al. 2023).

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> create("si", num_tasks=2).weigh(torch.tensor([0.5, 4.0]))
    tensor([2.0000, 0.2500])
"""

from __future__ import annotations

from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("si")
class ScaleInvariant(LossBalancer):
    """``w_t = 1 / max(L_t, eps)`` (``eps`` guards a loss that reaches 0)."""

    def __init__(self, num_tasks: int, *, eps: float = 1e-12) -> None:
        super().__init__(num_tasks)
        self.eps = eps

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return 1.0 / losses.clamp_min(self.eps)
