"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich 2018, "GradNorm: gradient
normalization for adaptive loss balancing in deep multitask networks", ICML).

Learnable task weights ``w_t`` are pushed so that each weighted gradient norm
``G_t = w_t ‖g_t‖`` approaches a common target scaled by the task's relative inverse
training rate ``r_t = L̃_t / mean(L̃)``, ``L̃_t = L_t / L_t(0)``:

    L_grad = Σ_t | w_t ‖g_t‖ − Ḡ r_t^α |,   Ḡ = mean_t G_t  (target held constant),

then ``w`` is renormalised to sum to ``T``. In this tensor-only setting ``‖g_t‖`` come from
the Gramian (pass the gradients of the last shared layer, as the paper does) and the
weight step is plain gradient descent on ``L_grad`` with the gradient divided by the mean
``‖g_t‖`` (the paper uses Adam, also scale-free):

    w_t ← w_t − lr · sign(G_t − Ḡ r_t^α) ‖g_t‖ / mean_i ‖g_i‖.

The update uses the weights *before* this step, ``d = Σ_t w_t g_t`` (sum scale: w starts
at 1). Needs ``losses=``; ``L_t(0)`` is each task's first observed loss. State: ``weights``,
``initial_losses``, ``seen`` per task; a partial batch renormalises only its present tasks.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import TINY, Array, to_numpy
from mtvision.balancing.base import GramianBalancer, register


@register("gradnorm")
class GradNorm(GramianBalancer):
    """Task weights adapted so weighted gradient norms follow the relative training rates."""

    needs_losses = True

    def __init__(self, num_tasks: int, *, alpha: float = 1.5, lr: float = 0.025, min_weight: float = 1e-3) -> None:
        super().__init__(num_tasks)
        self.alpha, self.lr, self.min_weight = alpha, lr, min_weight
        self.register_buffer("weights", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("initial_losses", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(num_tasks, dtype=torch.bool))

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        assert losses is not None  # aggregate() enforces it (needs_losses)
        i = idx.to(self.weights.device)
        first = torch.from_numpy(losses).to(self.initial_losses)
        self.initial_losses[i] = torch.where(self.seen[i], self.initial_losses[i], first)
        self.seen[i] = True
        weights, initial = to_numpy(self.weights[i]), to_numpy(self.initial_losses[i])
        norms = np.sqrt(np.clip(np.diag(gramian), 0.0, None))
        rate = losses / np.clip(initial, TINY, None)
        target = (weights * norms).mean() * (rate / max(rate.mean(), TINY)) ** self.alpha
        step = np.sign(weights * norms - target) * norms / max(norms.mean(), TINY)
        updated = np.clip(weights - self.lr * step, self.min_weight, None)
        self.weights[i] = torch.from_numpy(updated * weights.sum() / updated.sum()).to(self.weights)
        return weights
