"""Loss weighting and gradient balancing for multi-task training (DESIGN §2).

A method sees tensors, never the model. Loss methods (``kind == "loss"``) map per-task
losses to weights; gradient methods (``kind == "gradient"``) map the per-task gradient
matrix ``G[T, D]`` to one update direction. The registry below is a plain dict filled by
the explicit imports of this file, so it is complete as soon as the package is imported.
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

from mtvision.balancing.aligned_mtl import AlignedMTL
from mtvision.balancing.base import Balancer, GradientBalancer, GramianBalancer, LossBalancer
from mtvision.balancing.cagrad import CAGrad
from mtvision.balancing.config_grad import ConFIG
from mtvision.balancing.db_mtl import DBMTL
from mtvision.balancing.dualproj import DualProj
from mtvision.balancing.dwa import DynamicWeightAverage
from mtvision.balancing.ew import EqualWeighting
from mtvision.balancing.fairgrad import FairGrad
from mtvision.balancing.famo import FAMO
from mtvision.balancing.fixed import FixedWeighting
from mtvision.balancing.gls import GeometricLoss
from mtvision.balancing.graddrop import GradDrop
from mtvision.balancing.gradnorm import GradNorm
from mtvision.balancing.gradvac import GradVac
from mtvision.balancing.imtl_g import IMTLG
from mtvision.balancing.mgda import MGDA, MGDAUB
from mtvision.balancing.nash_mtl import NashMTL
from mtvision.balancing.pcgrad import PCGrad
from mtvision.balancing.rlw import RandomLossWeighting
from mtvision.balancing.si import ScaleInvariant
from mtvision.balancing.upgrad import UPGrad
from mtvision.balancing.uw import UncertaintyWeighting

METHODS: dict[str, type[Balancer]] = {
    # loss weighting
    "ew": EqualWeighting,
    "fixed": FixedWeighting,
    "uw": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "rlw": RandomLossWeighting,
    "gls": GeometricLoss,
    "si": ScaleInvariant,
    "famo": FAMO,
    # gradient balancing
    "gradnorm": GradNorm,
    "mgda": MGDA,
    "mgda_ub": MGDAUB,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "graddrop": GradDrop,
    "cagrad": CAGrad,
    "imtl_g": IMTLG,
    "nash_mtl": NashMTL,
    "aligned_mtl": AlignedMTL,
    "upgrad": UPGrad,
    "dualproj": DualProj,
    "config": ConFIG,
    "db_mtl": DBMTL,
    "fairgrad": FairGrad,
}


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
