"""Numeric helpers shared by several tasks' losses and metrics.

Kept free of any task knowledge: plain functions of tensors, so each one is tested once
and reused by classification (AP, F1), edges (F per threshold) and every dense loss
(masked means over valid pixels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.tasks.base import Metric


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 (still differentiable) when none is.

    ``torch.where`` rather than ``values[mask]`` keeps shapes static (export friendly), and
    the clamp makes a batch with no valid pixel contribute a zero loss instead of NaN.
    """
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1)


def safe_div(numerator: Tensor, denominator: Tensor) -> Tensor:
    """Element-wise ``numerator / denominator`` with 0 where the denominator is 0."""
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-12), torch.zeros_like(numerator))


def f_score(precision: Tensor, recall: Tensor) -> Tensor:
    """Harmonic mean ``2PR / (P + R)``, 0 where both are 0."""
    return safe_div(2 * precision * recall, precision + recall)


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Exact (non-interpolated) average precision of one class; NaN without positives.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, the definition
    of scikit-learn's ``average_precision_score``: tied scores form one threshold, so the
    order of equal scores does not matter.

    Example:
        >>> round(average_precision(torch.tensor([0.9, 0.8, 0.3]), torch.tensor([1, 0, 1])), 4)
        0.8333
    """
    order = scores.argsort(descending=True, stable=True)
    ranked, hits = scores[order], labels[order].to(torch.float64)
    positives = hits.sum()
    if positives == 0:
        return float("nan")
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    last_of_tie = torch.ones_like(ranked, dtype=torch.bool)
    last_of_tie[:-1] = ranked[1:] != ranked[:-1]
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    recall_gain = torch.diff(tp, prepend=tp.new_zeros(1)) / positives
    return float((recall_gain * tp / (tp + fp)).sum())


def mean_ignoring_nan(values: Tensor) -> float:
    """Mean of the finite entries (classes a metric is undefined for are skipped); NaN if none."""
    finite = values[~values.isnan()]
    return float(finite.mean()) if len(finite) else float("nan")


class SplitMetric(Metric):
    """A :class:`Metric` with fixed result ``keys`` that reports NaN before any update.

    A split can hold no labelled image for a task (partial labels); NaN says "not
    measured" where a 0 would read as a real, terrible score.
    """

    keys: tuple[str, ...] = ()

    def compute(self) -> dict[str, float]:
        if not self.sums and not self.items:
            return dict.fromkeys(self.keys, float("nan"))
        return self.result()

    def result(self) -> dict[str, float]:
        raise NotImplementedError
