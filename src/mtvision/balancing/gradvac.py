"""Gradient vaccine (GradVac; Wang, Tsvetkov, Firat & Cao 2021, "Gradient vaccine:
investigating and improving multi-task optimization in massively multilingual models",
ICLR, Alg. 1).

PCGrad only acts when two gradients point apart (cosine < 0). GradVac instead keeps, per
task pair, an EMA target ``φ̂_ij`` of their observed cosine ``φ_ij`` and, whenever
``φ_ij < φ̂_ij``, adds the amount of ``g_j`` that raises the cosine to exactly the target:

    g_i' ← g_i' + ‖g_i'‖ (φ̂ √(1−φ²) − φ √(1−φ̂²)) / (‖g_j‖ √(1−φ̂²)) · g_j,
    φ̂_ij ← (1 − β) φ̂_ij + β φ_ij      (β = 0.01 in the paper).

With ``φ̂ = 0`` (the initial target) the step is PCGrad's projection. The update is
``Σ_i g_i'`` (sum scale); surgery runs on coefficients over the Gramian, in a random
order per task. The paper applies it per layer; this tensor-level version treats ``G`` as
one block (pass per-layer blocks to separate instances for the per-layer variant).
State: ``targets[i, j]`` per task pair (global task indices).
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import TINY, Array, sequential_surgery, to_numpy
from mtvision.balancing.base import GramianBalancer, register


@register("gradvac")
class GradVac(GramianBalancer):
    """Raise each pairwise cosine to an EMA target of its own history."""

    def __init__(self, num_tasks: int, *, beta: float = 0.01) -> None:
        super().__init__(num_tasks)
        self.beta = beta
        self.register_buffer("targets", torch.zeros(num_tasks, num_tasks, dtype=torch.float64))

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        task = idx.tolist()
        targets = to_numpy(self.targets)
        norms = np.sqrt(np.clip(np.diag(gramian), TINY, None))

        def vaccinate(i: int, j: int, coefficients: Array) -> float:
            norm_i = np.sqrt(max(coefficients @ gramian @ coefficients, TINY))
            cosine = coefficients @ gramian[:, j] / (norm_i * norms[j])
            target = targets[task[i], task[j]]
            targets[task[i], task[j]] = (1 - self.beta) * target + self.beta * cosine
            if cosine >= target or gramian[j, j] <= TINY:  # nothing to align with a zero gradient
                return 0.0
            sine, target_sine = np.sqrt(max(1 - cosine**2, 0.0)), np.sqrt(max(1 - target**2, TINY))
            return norm_i * (target * sine - cosine * target_sine) / (norms[j] * target_sine)

        weights = sequential_surgery(len(gramian), vaccinate)
        self.targets.copy_(torch.from_numpy(targets))
        return weights
