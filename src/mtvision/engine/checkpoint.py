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
import errno
import os
import pickle
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtvision import __version__
from mtvision.structures import TaskInfo

__all__ = ["save_checkpoint", "load_checkpoint", "load_run_checkpoint", "remove_stale_temps", "CheckpointError",
           "DiskFullError", "FORMAT", "stamp", "seed_everything", "rng_state", "set_rng_state", "infos_to_plain",
           "infos_from_plain"]

#: Layout version of a run checkpoint; bumped when a key changes meaning, so an older
#: mtvision refuses a newer file by name instead of failing on a missing key.
FORMAT = 1
#: What ``val``, ``predict`` and ``--resume`` need from a run checkpoint.
RUN_KEYS = ("model", "config", "task_infos")
#: What :meth:`Trainer.resume` needs (a trainer built without the CLI saves no config).
RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "rng", "epoch")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: names the file, what is wrong with it and what to do."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"checkpoint {self.path}: {problem}" + (f"\n  fix: {fix}" if fix else ""))


class DiskFullError(OSError):
    """No space left while writing a file: names the file, the bytes it needed and what is free."""

    def __init__(self, path: str | Path, needed: int, free: int | None, kept: bool) -> None:
        left = "" if free is None else f", {_mb(free)} free"
        keep = "; the previous checkpoint is intact" if kept else ""
        super().__init__(errno.ENOSPC, f"no space left on device writing {path} (needs about {_mb(needed)}{left}"
                                       f"{keep}); free some space or set run.output to another disk", str(path))


def stamp() -> dict[str, Any]:
    """Which mtvision wrote a checkpoint, and in which layout (checked by :func:`load_run_checkpoint`)."""
    return {"version": __version__, "format": FORMAT}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    A full disk raises :class:`DiskFullError` naming the file, instead of torch's bare
    ``[enforce fail ...]``; the temp file is removed and the previous ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)) and _disk_full(error, path):
            raise DiskFullError(path, _state_bytes(state), _free_bytes(path.parent), path.is_file()) from error
        raise


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete ``.<name>.pt.*.tmp`` left by writes a ``kill -9`` cut short; called when a run (re)starts."""
    stale = sorted(Path(folder).glob(".*.pt.*.tmp"))
    for temp in stale:
        temp.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True`` (no arbitrary code runs).

    Every way a file can fail to load raises :class:`CheckpointError` naming it and saying
    what it is: missing, empty, truncated, not a PyTorch file, or an unsafe pickle refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "not found" if not path.exists() else "is not a file",
                              "give a weights/last.pt or weights/best.pt of a run")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "is empty (0 bytes): a copy or download that did not finish",
                              "copy it again, or use the run's other checkpoint (last.pt / best.pt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refused(path, str(error)) from None
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.PickleError, OSError) as error:
        raise _unreadable(path, error) from None


def load_run_checkpoint(path: str | Path, keys: tuple[str, ...] = RUN_KEYS) -> dict[str, Any]:
    """:func:`load_checkpoint`, then check that it is a run checkpoint (with ``keys``) this mtvision can use."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not all(key in state for key in keys):
        keys = ", ".join(list(state)[:6]) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(path, f"is a PyTorch file but not an mtvision run checkpoint (it holds: {keys})",
                              "give a weights/last.pt or best.pt written by `mtvision train`")
    written = state.get("mtvision", {"version": "before 0.1.0", "format": FORMAT})
    if written.get("format", FORMAT) != FORMAT:
        raise CheckpointError(path, f"was written by mtvision {written.get('version')} (checkpoint format "
                                    f"{written.get('format')}); this is mtvision {__version__} (format {FORMAT})",
                              f"use mtvision {written.get('version')} for this run")
    return state


def _refused(path: Path, message: str) -> CheckpointError:
    found = re.search(r"unsupported(?: global:)? GLOBAL ([\w.]+)", message, re.IGNORECASE)
    if found:
        return CheckpointError(path, f"refused: it would run Python code ({found.group(1)}) when loaded; "
                                     "a safe checkpoint holds only tensors and plain values",
                               "do not open it unless you trust who made it; mtvision never loads such files")
    return CheckpointError(path, "is a Python pickle, not a PyTorch checkpoint (the weights-only load refused it)",
                           "give a weights/last.pt or best.pt written by `mtvision train`")


def _unreadable(path: Path, error: BaseException) -> CheckpointError:
    with open(path, "rb") as file:
        zipped = file.read(4) == b"PK\x03\x04"
    size = path.stat().st_size
    if zipped:
        return CheckpointError(path, f"is truncated or corrupt ({size} bytes; {str(error).split('.')[0]})",
                               "an interrupted copy or download? copy it again, or use the run's other checkpoint")
    return CheckpointError(path, f"is not a PyTorch checkpoint ({size} bytes, {type(error).__name__})",
                           "give a weights/last.pt or best.pt written by `mtvision train`")


def _disk_full(error: BaseException, path: Path) -> bool:
    """ENOSPC anywhere in the chain (torch wraps it in ``[enforce fail ...]``), or a torch write
    failure on a disk with (almost) no space left."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cause = cause.__cause__ or cause.__context__
    free = _free_bytes(path.parent)
    return ("write" in str(error) or "enforce fail" in str(error)) and free is not None and free < 1 << 20


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _state_bytes(state: Any) -> int:
    """Roughly the size of a checkpoint: its tensors' bytes (the rest is small)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 64


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


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
