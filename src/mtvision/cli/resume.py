"""What ``mtvision train --resume last.pt key=value ...`` may change, and what it refuses.

A resumed run continues the checkpoint's model, optimizer, schedule and balancing state,
so an override of most keys would be silently ignored (the saved state wins) while
``config.yaml`` claimed it. Here every changed key is either applied, by a documented rule,
or refused with the reason; ``docs/reliability.md`` has the table.

Applied on resume (:data:`APPLIED`):

* ``train.epochs``: the learning rate follows the schedule of a run planned with the new
  number of epochs from the step reached (warmup unchanged, cosine over the new length);
  a lower number than the epochs done finishes the run;
* ``train.patience``, ``train.eval_every``, ``train.max_nonfinite``, ``train.grad_clip``,
  ``train.predict_images``, ``train.predict_every_epoch``: read afresh every epoch/step;
* ``run.threads``, ``run.device``, ``data.workers``, ``data.skip_corrupt``,
  ``logging.tensorboard``, ``balancing.diagnostics``: how the run executes, not what it learns.

Example:
    >>> sorted(refusals({"train": {"lr": 0.002}}, {"train": {"lr": 1e6}}))
    ['train.lr (1000000.0; the run has 0.002): the optimizer and its schedule continue from the checkpoint']
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

from mtvision.config import Config, ConfigError, load_config

APPLIED = ("train.epochs", "train.patience", "train.eval_every", "train.max_nonfinite", "train.grad_clip",
           "train.predict_images", "train.predict_every_epoch", "run.threads", "run.device", "data.workers",
           "data.skip_corrupt", "logging.tensorboard", "balancing.diagnostics")

#: Why a key cannot change on resume, by the longest matching prefix.
WHY = {
    "model": "the weights are those of the saved model",
    "tasks": "the heads and the balancing state are those of the saved tasks",
    "balancing": "the balancing method's state continues from the checkpoint",
    "data": "the position in the epoch and the weights belong to the run's data and augmentation",
    "data.batch_size": "the schedule and the position count steps of the saved batch size",
    "train": "the optimizer and its schedule continue from the checkpoint",
    "train.amp": "the mixed-precision loss scale continues from the checkpoint",
    "train.best_metric": "best.pt was selected on the saved metric; another one would compare unlike scores",
    "train.best_mode": "best.pt was selected in the saved direction",
    "run.seed": "the shuffled order and the random state continue from the checkpoint",
    "run.name": "a resume continues the checkpoint's own run folder",
    "run.output": "a resume continues the checkpoint's own run folder",
}


def resume_config(state: dict[str, Any], path: Optional[Path], overrides: list[str]) -> Config:
    """The config a resume runs with: the saved one plus the overrides it may apply (else ConfigError)."""
    saved = load_config(None, [], base=copy.deepcopy(state["config"])).model_dump(mode="json")
    new = load_config(path, overrides, base=copy.deepcopy(state["config"]))  # overrides edit nested dicts
    refused = refusals(saved, new.model_dump(mode="json"))
    if refused:
        raise ConfigError("cannot change on resume:\n  " + "\n  ".join(refused) +
                          "\n  fix: drop those overrides, or start a new run (`mtvision train ... --from "
                          "<checkpoint>` copies its weights)")
    return new


def refusals(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per changed key that a resume cannot apply: the key, the values and why."""
    lines = []
    for key, (old, value) in _changes(saved, new).items():
        if key in APPLIED:
            continue
        reason = WHY[max((p for p in WHY if key == p or key.startswith(p + ".")), key=len, default="model")]
        lines.append(f"{key} ({value}; the run has {old}): {reason}")
    return lines


def _changes(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ (a whole section for a task added or removed)."""
    if prefix == "tasks" and old.keys() != new.keys():
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        what = "; ".join(f"{verb} {', '.join(names)}" for verb, names in (("adds", added), ("removes", removed))
                         if names)
        return {"tasks": (", ".join(old), what)}
    if isinstance(old, dict) and isinstance(new, dict):
        found: dict[str, tuple[Any, Any]] = {}
        for key in dict.fromkeys([*old, *new]):
            found.update(_changes(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key))
        return found
    return {} if old == new else {prefix: (old, new)}


def finished(state: dict[str, Any], cfg: Config, checkpoint: Path) -> Optional[str]:
    """Why a resume has nothing to do, and how to continue; None when epochs remain."""
    epoch, step = state["epoch"], state.get("step", 0)
    best = state.get("best_score")
    score = f"best {state.get('best_metric')} = {best:.4f}" if isinstance(best, float) else "no best score"
    patience = cfg.train.patience
    if patience is not None and state.get("bad_evals", 0) >= patience:
        return (f"{checkpoint}: this run stopped early at epoch {epoch} ({patience} evaluations without a new best; "
                f"{score}). To continue: mtvision train --resume {checkpoint} train.patience={patience * 2}")
    if epoch >= cfg.train.epochs and step == 0:
        return (f"{checkpoint}: this run is finished ({epoch} of {cfg.train.epochs} epochs; {score}). To train "
                f"longer: mtvision train --resume {checkpoint} train.epochs={epoch + max(epoch // 2, 1)} "
                "(the learning rate then follows the schedule of that longer run)")
    return None
