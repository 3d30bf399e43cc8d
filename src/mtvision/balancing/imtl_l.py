"""IMTL-L — impartial multi-task learning, loss part (Liu et al. 2021, "Towards impartial
multi-task learning", ICLR, Sec. 3.1).

Each task has a learnable scale ``s_t`` and the total loss is

    L = Σ_t e^{s_t} L_t − s_t,

i.e. ``weigh`` returns ``w_t = e^{s_t}`` (carrying the graph to ``s``, like uncertainty
weighting) and ``regularizer()`` returns ``−Σ_t s_t``. ``∂L/∂s_t = e^{s_t} L_t − 1``: at the
optimum every scaled loss ``e^{s_t} L_t`` equals 1, so no task dominates by its loss scale.
At the start (``s = 0``) the weights are 1: equal weighting. The trainer must give
``m.parameters()`` to its optimiser. The hybrid with IMTL-G is ``"imtl"``.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("imtl_l", num_tasks=2)
    >>> m.combine(torch.tensor([1.0, 3.0])).backward()
    >>> m.log_scales.grad
    tensor([0., 2.])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mtvision.balancing.base import LossBalancer, TaskIndex, register


@register("imtl_l")
class IMTLL(LossBalancer):
    """``w_t = e^{s_t}`` with learnable ``s`` (``log_scales``), plus ``−Σ s_t`` as regulariser."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks)
        self.log_scales = nn.Parameter(torch.zeros(num_tasks))

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return torch.exp(self.log_scales[idx.to(self.log_scales.device)]).to(losses.device)

    def regularizer(self, tasks: TaskIndex = None) -> Tensor:
        return -self.log_scales[self._indices(tasks).to(self.log_scales.device)].sum()
