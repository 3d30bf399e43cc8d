"""Uncertainty weighting (UW; Kendall, Gal & Cipolla 2018, "Multi-task learning using
uncertainty to weigh losses for scene geometry and semantics", CVPR).

Each task has a learnable log-variance ``s_t = log σ_t²`` and the total loss is

    L = Σ_t exp(−s_t) L_t + s_t

i.e. ``weigh`` returns ``w_t = exp(−s_t)`` and ``regularizer()`` returns ``Σ_t s_t``; the
trainer minimises ``combine(losses) = Σ w_t L_t + Σ s_t`` and must give ``m.parameters()``
(the log-variances) to its optimiser. This is twice the paper's regression form
``L_t / (2σ²) + log σ``: the optimum ``s_t = log L_t`` is the same and, at the start
(``s = 0``), the weights are 1, exactly equal weighting. ``∂L/∂s_t = 1 − exp(−s_t) L_t``.

The weights are the only ones in this package that are *not* detached: they carry the
graph to ``s``. Call ``m.to(device)`` before building the optimiser so ``s`` lives with
the losses.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("uw", num_tasks=2)
    >>> m.combine(torch.tensor([1.0, 3.0])).backward()
    >>> m.log_vars.grad
    tensor([ 0., -2.])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtvision.balancing.base import LossBalancer, TaskIndex, register


@register("uw")
class UncertaintyWeighting(LossBalancer):
    """``w_t = exp(−s_t)`` with learnable ``s`` (``log_vars``), plus ``Σ s_t`` as regulariser."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks)
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return torch.exp(-self.log_vars[idx.to(self.log_vars.device)]).to(losses.device)

    def regularizer(self, tasks: TaskIndex = None) -> Tensor:
        return self.log_vars[self._indices(tasks).to(self.log_vars.device)].sum()
