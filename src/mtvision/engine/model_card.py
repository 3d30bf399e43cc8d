"""What a run's model is, written beside its weights, and what its architecture allows.

``runs/<name>/model.json`` records the architecture, its options and the parameter count of
every part (shared vs each task's own), so a run folder says how its tasks shared without
the config being read and the model rebuilt. Representation-mode balancing needs a shared
representation, which not every architecture has: :func:`gradient_mode` falls back to the
shared parameters there, with the architecture's reason in the log.

Example:
    >>> from mtvision.models import build_model
    >>> describe_model(build_model("test_resnet.r160_in1k", tasks={}))["architecture"]
    'hard'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mtvision.balancing import Balancer, GradientBalancer
from mtvision.models import MultiTaskModel

__all__ = ["describe_model", "gradient_mode", "write_model_card"]

logger = logging.getLogger(__name__)


def describe_model(model: MultiTaskModel) -> dict[str, Any]:
    """Architecture name, options, shared representation and parameter counts, JSON-ready."""
    sharing = model.architecture
    return {"architecture": sharing.name, "options": sharing.options,
            "representation": sharing.representation or f"none: {sharing.no_representation}",
            "parameters": model.parameter_counts()}


def write_model_card(model: MultiTaskModel, path: Path) -> None:
    path.write_text(json.dumps(describe_model(model), indent=2) + "\n")


def gradient_mode(requested: str | None, method: Balancer, model: MultiTaskModel) -> Any:
    """The per-task gradient mode a step uses: ``requested`` (None: the method's own), except
    representation mode on an architecture without a shared representation -> parameters."""
    wanted = requested or (method.gradients_of if isinstance(method, GradientBalancer) else None)
    sharing = model.architecture
    if wanted == "representation" and sharing.representation is None:
        logger.warning("architecture %r has no shared representation (%s): balancing per-task gradients of the "
                       "shared parameters instead", sharing.name, sharing.no_representation)
        return "parameters"
    return requested
