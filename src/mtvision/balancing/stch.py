"""STCH — smooth Tchebycheff scalarisation (Lin, Zhang, Liu, Zhang & Kwong 2024, "Smooth
Tchebycheff scalarization for multi-objective optimization", ICML; as in LibMTL's ``STCH``).

The Tchebycheff scalarisation minimises the worst task, ``max_t (f_t − z_t)``; its smooth
version is a log-sum-exp with temperature μ. On log-losses relative to a nadir point ``n``
(the mean losses of the warm-up epochs, as the official code):

    L_STCH = k μ log Σ_t exp(log(L_t / n_t) / μ),

whose gradient is ``Σ_t w_t ∇L_t`` with detached weights

    w_t = k softmax_t(log(L_t / n_t) / μ) / L_t.

During the first ``warmup_epochs`` the weights are ``1 / L_t`` (the summed log-losses, the
official warm-up) and the losses are averaged per task into ``n``; a task first seen after
the warm-up takes its first loss as ``n_t``. μ → 0 weighs only the worst relative task;
large μ gives ``1/L_t`` (equal log-loss weighting). Scale: ``k`` = the present tasks, so
equal relative losses give the summed log-losses. μ = 1 as LibMTL's default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("stch")
class STCH(LossBalancer):
    """Softmax of the relative log-losses: the worst-off task weighs most."""

    def __init__(self, num_tasks: int, *, mu: float = 1.0, warmup_epochs: int = 1, eps: float = 1e-20) -> None:
        super().__init__(num_tasks)
        if mu <= 0 or warmup_epochs < 0:
            raise ValueError(f"mu must be positive and warmup_epochs ≥ 0, got {mu}, {warmup_epochs}")
        self.mu, self.warmup_epochs, self.eps = mu, warmup_epochs, eps
        self.register_buffer("loss_sum", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("nadir", torch.zeros(num_tasks, dtype=torch.float64))  # 0 = not fixed yet
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def end_epoch(self) -> None:
        self.epoch += 1

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        """Branch-free on the epoch (a device tensor): a loss method never syncs with the device."""
        i = idx.to(losses.device)
        shifted = losses + self.eps
        warming = self.epoch < self.warmup_epochs
        self.loss_sum[i] += torch.where(warming, losses.to(self.loss_sum), 0.0)
        self.loss_count[i] += warming.to(self.loss_count)
        mean = torch.where(self.loss_count[i] > 0, self.loss_sum[i] / self.loss_count[i].clamp_min(1), shifted.double())
        self.nadir[i] = torch.where(~warming & (self.nadir[i] <= 0), mean.clamp_min(self.eps), self.nadir[i])
        relative = (shifted / self.nadir[i].clamp_min(self.eps).to(losses)).log() / self.mu
        return torch.where(warming, 1.0 / shifted, len(losses) * torch.softmax(relative, dim=0) / shifted)
