"""Checkpoints that survive a crash mid-save and load with ``torch.load(weights_only=True)``.

A checkpoint holds everything needed to continue a run exactly (model, optimizer,
scheduler, GradScaler, balancing method, every RNG, epoch, best score) and everything needed to use the model
without the dataset or the config file (the resolved config and each task's label space),
as plain Python containers and tensors only: ``weights_only`` loading refuses arbitrary
pickles, which is what makes a downloaded ``.pt`` safe to open.

Writes go to a temporary file in the same folder and are moved into place with
``os.replace`` (atomic on POSIX and Windows), so a crash during a save leaves the previous
checkpoint intact rather than a truncated one.

Example:
    >>> import tempfile, torch
    >>> folder = Path(tempfile.mkdtemp())
    >>> save_checkpoint(folder / "last.pt", {"epoch": 3, "w": torch.ones(2)})
    >>> load_checkpoint(folder / "last.pt")["epoch"]
    3
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtvision.structures import TaskInfo

__all__ = ["save_checkpoint", "load_checkpoint", "seed_everything", "rng_state", "set_rng_state", "infos_to_plain",
           "infos_from_plain"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): model init and augmentation follow ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every random generator a training step draws from, as weights-only-safe values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when both sides have it)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def infos_to_plain(infos: dict[str, TaskInfo]) -> dict[str, dict[str, Any]]:
    """Task label spaces as plain dicts (tuples become lists), so ``val``/``predict`` need no dataset."""
    return {name: _lists(dataclasses.asdict(info)) for name, info in infos.items()}


def infos_from_plain(plain: dict[str, dict[str, Any]]) -> dict[str, TaskInfo]:
    """Inverse of :func:`infos_to_plain`."""
    infos = {}
    for name, fields in plain.items():
        fields = dict(fields)
        fields["skeleton"] = [tuple(pair) for pair in fields.get("skeleton", [])]
        infos[name] = TaskInfo(**fields)
    return infos


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value
