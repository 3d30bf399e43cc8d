"""Initialise a model from a trained mtvision checkpoint: every tensor whose name and shape match.

Users rarely train a multi-task model once: they add a task when a new label set arrives, drop
one, or change a class list. ``model.init`` (``mtvision train --from PATH``) copies whatever
still fits: the trunk, the neck, the heads of the tasks both models have. A task new to the
config keeps its fresh head, a task that is gone is dropped, and a tensor whose shape changed
(a classifier layer after a class list change) keeps its fresh initialisation while the rest
of that head is loaded. :class:`InitReport` says which tensor went where; the CLI prints it and
writes ``runs/<name>/init.json``.

Unlike ``--resume`` this starts a *new* run: the optimizer, the schedule and the balancing state
are fresh, only weights are copied.

The file is read with ``torch.load(weights_only=True)``: a pickle that would run code is refused,
and so is anything that is not an mtvision checkpoint (no ``model`` state and ``config``).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from mtvision.engine.checkpoint import save_checkpoint
    >>> from mtvision.models import build_model
    >>> old = build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16)
    >>> path = Path(tempfile.mkdtemp()) / "best.pt"
    >>> save_checkpoint(path, {"model": old.state_dict(), "config": {"model": {"backbone": "test_resnet.r160_in1k"}}})
    >>> report = initialise(build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16), path)
    >>> len(report.loaded) == len(old.state_dict()), report.created, report.dropped
    (True, [], [])
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from torch import Tensor, nn

from mtvision.engine.checkpoint import load_checkpoint
from mtvision.engine.parts import part_of

__all__ = ["InitReport", "TransferError", "describe", "initialise", "match_state", "read_trained"]


class TransferError(ValueError):
    """A checkpoint that cannot initialise this model; the message names the file and the fix."""


@dataclass
class InitReport:
    """Where every tensor of the model and of the checkpoint went."""

    source: str
    loaded: list[str] = field(default_factory=list)  # copied from the checkpoint
    created: list[str] = field(default_factory=list)  # in the model only: fresh initialisation
    dropped: list[str] = field(default_factory=list)  # in the checkpoint only: not used
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {key, checkpoint, model}: shapes differ
    tasks: dict[str, str] = field(default_factory=dict)  # task -> loaded / partly loaded / created / dropped
    notes: list[str] = field(default_factory=list)

    def counts(self, parts: dict[str, list[str]]) -> dict[str, dict[str, int]]:
        """Tensor counts per part (``backbone``, ``neck``, ``heads.<task>``) and status."""
        table: dict[str, dict[str, int]] = {}
        keyed = [("loaded", k) for k in self.loaded] + [("created", k) for k in self.created] + \
                [("dropped", k) for k in self.dropped] + [("skipped (shape)", s["key"]) for s in self.skipped]
        for status, key in keyed:
            row = table.setdefault(part_of(key, parts), dict.fromkeys(STATUSES, 0))
            row[status] += 1
        return table

    def table(self, parts: dict[str, list[str]]) -> Table:
        """The console table: one row per part, tensors counted by status."""
        out = Table(title=f"initialised from {self.source}")
        out.add_column("part")
        for status in STATUSES:
            out.add_column(status, justify="right")
        for part, row in self.counts(parts).items():
            out.add_row(part, *(str(row[s]) if row[s] else "" for s in STATUSES))
        return out

    def write(self, path: Path, parts: dict[str, list[str]]) -> None:
        """``init.json``: every key by status, the per-part counts, the per-task outcome."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**asdict(self), "parts": self.counts(parts)}, indent=1))


STATUSES = ("loaded", "created", "dropped", "skipped (shape)")


def read_trained(path: str | Path) -> dict[str, Any]:
    """A trained mtvision checkpoint, loaded weights-only; anything else is refused with the reason."""
    path = Path(path)
    if not path.is_file():
        raise TransferError(f"model.init: {path} does not exist; give a run's weights/best.pt or weights/last.pt")
    try:
        state = load_checkpoint(path)
    except pickle.UnpicklingError as error:
        raise TransferError(f"model.init: refused {path}: it is not loadable weights-only (torch.load with "
                            f"weights_only=True); it holds Python objects that could run code, or is not a torch "
                            f"file. Give an mtvision checkpoint (runs/<name>/weights/best.pt). "
                            f"torch said: {str(error).splitlines()[0]}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:  # unreadable, or refused with its reason
        raise TransferError(f"model.init: refused {path}: {str(error).splitlines()[0]}; give an mtvision "
                            f"checkpoint (runs/<name>/weights/best.pt)") from None
    if not (isinstance(state, dict) and isinstance(state.get("model"), dict) and isinstance(state.get("config"), dict)):
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise TransferError(f"model.init: {path} is not an mtvision checkpoint (it needs 'model' weights and the "
                            f"run's 'config'; found {found}); give runs/<name>/weights/best.pt of an mtvision run")
    return state


def initialise(model: nn.Module, path: str | Path, backbone: str | None = None) -> InitReport:
    """Copy into ``model`` every tensor of the checkpoint at ``path`` whose name and shape match.

    ``backbone`` (the config's ``model.backbone``) is checked against the checkpoint's: two
    different trunks share no weights worth copying, so a mismatch is an error naming both.
    """
    state = read_trained(path)
    trained = state["config"].get("model", {})
    old_backbone = trained.get("backbone")
    if backbone is not None and old_backbone is not None and old_backbone != backbone:
        raise TransferError(f"model.init: {path} was trained with backbone {old_backbone!r} but the config asks for "
                            f"{backbone!r}; set model.backbone={old_backbone} or start from a checkpoint of "
                            f"{backbone!r}")
    weights = _hard_sharing_names(state["model"])
    report = match_state(model.state_dict(), weights, str(path))
    old_architecture, new_architecture = trained.get("architecture", "hard"), getattr(model.architecture, "name", None)
    if new_architecture and old_architecture != new_architecture:
        report.notes.append(f"architecture {old_architecture!r} -> {new_architecture!r}: only the tensors with the "
                            f"same module path were loaded")
    model.load_state_dict({key: weights[key] for key in report.loaded}, strict=False)
    return report


def match_state(target: dict[str, Tensor], source: dict[str, Tensor], name: str = "") -> InitReport:
    """Sort every key of ``target`` (the model) and ``source`` (the checkpoint) into loaded / created /
    dropped / skipped for shape, and each task into loaded / partly loaded / created / dropped."""
    report = InitReport(name)
    for key, tensor in target.items():
        if key not in source:
            report.created.append(key)
        elif tuple(source[key].shape) != tuple(tensor.shape):
            report.skipped.append({"key": key, "checkpoint": list(source[key].shape), "model": list(tensor.shape)})
        else:
            report.loaded.append(key)
    report.dropped = [key for key in source if key not in target]
    report.tasks = _task_outcomes(report)
    return report


def _task_outcomes(report: InitReport) -> dict[str, str]:
    def task(key: str) -> str | None:
        return key.split(".")[1] if key.startswith("tasks.") else None

    status: dict[str, set[str]] = {}
    for kind, keys in (("loaded", report.loaded), ("created", report.created), ("dropped", report.dropped),
                       ("skipped", [s["key"] for s in report.skipped])):
        for key in keys:
            if (name := task(key)) is not None:
                status.setdefault(name, set()).add(kind)
    outcome = {"loaded": "loaded", "created": "created", "dropped": "dropped"}
    return {name: outcome[next(iter(kinds))] if len(kinds) == 1 and "skipped" not in kinds else "partly loaded"
            for name, kinds in status.items()}


def _hard_sharing_names(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoints from before architectures existed hold the trunk at ``backbone.*`` / ``neck.*``."""
    return {f"architecture.{k}" if k.startswith(("backbone.", "neck.")) else k: v for k, v in weights.items()}


def describe(report: InitReport) -> str:
    """One line per task and note, under the table."""
    lines = [f"task {name}: {outcome}" for name, outcome in report.tasks.items()]
    lines += [f"  {s['key']}: checkpoint {tuple(s['checkpoint'])} vs model {tuple(s['model'])} (kept fresh)"
              for s in report.skipped]
    return "\n".join(lines + report.notes)

