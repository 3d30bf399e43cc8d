"""Fast adaptive multitask optimisation (FAMO; Liu, Liu, Stone & Liu 2023, NeurIPS).

O(1) per step: no per-task gradients. With logits ``ξ`` and ``z = softmax(ξ)`` the model
descends ``Σ_t c z_t ∇ log L_t`` with ``c = (Σ_i z_i / L_i)^(-1)``, i.e. loss weights

    w_t = k · z_t / (L_t Σ_i z_i / L_i)

(scaled by the number of present tasks ``k`` so that uniform ``z`` and equal losses give
equal weighting; the paper's are 1/k of these). After the optimiser step the trainer calls
``update(new_losses)`` (``needs_new_losses`` is True) and the logits follow the observed
log-loss decrease ``δ_t = log L_t − log L_t'`` (Alg. 1):

    ξ ← ξ − β (J_zᵀ δ + γ ξ),   J_zᵀ δ = z ⊙ (δ − zᵀδ)

so a task whose loss fell more than the others loses weight. β = 0.025 and γ = 0.001 as
in the paper; losses are offset by ``eps`` (the paper's minimum-loss offset set to 0).

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("famo", num_tasks=2)
    >>> m.weigh(torch.tensor([1.0, 4.0]))
    tensor([1.6000, 0.4000])
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, TaskIndex, register


@register("famo")
class FAMO(LossBalancer):
    """Softmax task logits trained online from the loss decrease each step produces."""

    needs_new_losses = True

    def __init__(self, num_tasks: int, *, lr: float = 0.025, weight_decay: float = 1e-3, eps: float = 1e-8) -> None:
        super().__init__(num_tasks)
        self.lr, self.weight_decay, self.eps = lr, weight_decay, eps
        self.register_buffer("logits", torch.zeros(num_tasks))
        self.register_buffer("previous", torch.ones(num_tasks))

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        i = idx.to(losses.device)
        shifted = losses + self.eps
        self.previous[i] = shifted.to(self.previous.dtype)  # the state keeps its dtype whatever the losses'
        ratio = self.logits[i].softmax(0) / shifted
        return len(losses) * ratio / ratio.sum()

    def update(self, new_losses: Tensor, tasks: TaskIndex = None) -> None:
        i = self._indices(tasks, new_losses.shape[0]).to(new_losses.device)
        self._follow(new_losses.device)
        decrease = self.previous[i].log() - (new_losses.detach().to(self.logits.dtype) + self.eps).log()
        z = self.logits[i].softmax(0)
        step = z * (decrease - (z * decrease).sum())
        self.logits[i] -= self.lr * (step + self.weight_decay * self.logits[i])
