"""Training, evaluation and prediction around one readable ``train_step`` (DESIGN §2).

Modules: :mod:`~mtvision.engine.step` (the step), :mod:`~mtvision.engine.trainer` (the loop),
:mod:`~mtvision.engine.checkpoint`, :mod:`~mtvision.engine.distributed`,
:mod:`~mtvision.engine.evaluate`, :mod:`~mtvision.engine.baselines`,
:mod:`~mtvision.engine.predict`, :mod:`~mtvision.engine.loggers`, :mod:`~mtvision.engine.plots`.
"""

from mtvision.engine.step import NonFiniteLossError, StepParts, train_step
from mtvision.engine.trainer import FitSummary, Trainer, TrainSettings

__all__ = ["FitSummary", "NonFiniteLossError", "StepParts", "TrainSettings", "Trainer", "train_step"]
