"""Geometric loss strategy (GLS; Chennupati et al. 2019, "MultiNet++").

Minimise the geometric mean ``L = (Π_t L_t)^(1/T)``. Its gradient is
``∂L/∂L_t = L / (T L_t)``, so the weights are ``w_t = (Π L)^(1/T) / (T L_t)`` (detached):
then ``Σ_t w_t L_t`` has exactly the value *and* the gradient of the geometric mean.
Like SI it is invariant to each loss's scale, but the step shrinks with the losses.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> create("gls", num_tasks=2).weigh(torch.tensor([1.0, 4.0]))
    tensor([1.0000, 0.2500])
"""

from __future__ import annotations

from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("gls")
class GeometricLoss(LossBalancer):
    """``w_t = GM(L) / (k L_t)`` over the ``k`` present tasks (losses floored at ``eps``)."""

    def __init__(self, num_tasks: int, *, eps: float = 1e-12) -> None:
        super().__init__(num_tasks)
        self.eps = eps

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        floored = losses.clamp_min(self.eps)
        return floored.log().mean().exp() / (len(floored) * floored)
