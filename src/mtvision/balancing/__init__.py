"""Loss weighting and gradient balancing for multi-task training (DESIGN §2).

A method sees tensors, never the model. Loss methods (``kind == "loss"``) map per-task
losses to weights; gradient methods (``kind == "gradient"``) map the per-task gradient
matrix ``G[T, D]`` to one update direction. The registry is a plain dict filled by each
method's ``@register`` when the explicit imports of this file run, so it is complete as soon
as the package is imported.
See :mod:`mtvision.balancing.base` for the contract (scale, partial labels, state).

Example:
    >>> import torch
    >>> from mtvision.balancing import available, create
    >>> "pcgrad" in available()
    True
    >>> m = create("mgda", num_tasks=2)
    >>> m.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
    >>> m.last_weights
    tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from typing import Any

from mtvision.balancing.base import METHODS, Balancer, GradientBalancer, GramianBalancer, LossBalancer
# Each method's module registers it in METHODS (@register): importing them all fills the registry.
from mtvision.balancing import (  # noqa: F401
    aligned_mtl, auto_lambda, cagrad, config_grad, db_mtl, dualproj, dwa, ew, excess_mtl, fairgrad, famo, fixed, gls,
    graddrop, gradnorm, gradvac, imtl, imtl_g, imtl_l, krum, mgda, moco, nash_mtl, pcgrad, rlw, sdmgrad, si, stch,
    trimmed_mean, upgrad, uw,
)


def available() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(METHODS)


def create(name: str, num_tasks: int, **options: Any) -> Balancer:
    """Build the method ``name`` for ``num_tasks`` tasks with its keyword ``options``.

    Names are case-insensitive and ``-`` may replace ``_`` ("Nash-MTL"). An unknown name
    raises ``ValueError`` listing the valid ones; an unknown option raises ``TypeError``
    naming it and the method's options.
    """
    key = name.lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"unknown balancing method {name!r}; available: {', '.join(available())}")
    cls = METHODS[key]
    unknown = sorted(set(options) - set(cls.options()))
    if unknown:
        valid = ", ".join(cls.options()) or "none"
        raise TypeError(f"balancing method {key!r} has no option {unknown[0]!r}; its options: {valid}")
    return cls(num_tasks, **options)


__all__ = ["METHODS", "Balancer", "GradientBalancer", "GramianBalancer", "LossBalancer", "available", "create"]
