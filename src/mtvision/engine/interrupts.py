"""Stopping a run on SIGINT / SIGTERM without losing the epoch in progress.

A cluster scheduler sends SIGTERM and waits a little before SIGKILL; a person presses
Ctrl-C. Either way the trainer should finish the step it is in, write ``last.pt`` with the
exact position (epoch, step, RNG) and stop, so that ``--resume`` continues from that step.
:class:`StopRequest` only records the first signal (a handler must not do real work: it
runs between two bytecodes of whatever the loop was doing); the trainer polls it after
every step. A second signal raises :class:`StopNow` at once, for a person who cannot wait.

Example:
    >>> with StopRequest() as stop:
    ...     stop.requested()
    False
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["StopRequest", "StopNow", "RunInterrupted", "SkippingSampler"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopNow(KeyboardInterrupt):
    """A second signal: stop without saving (the last saved checkpoint stays the latest)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunInterrupted(Exception):
    """The run stopped on a signal after saving its position; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, epoch: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.epoch, self.step, self.checkpoint = signum, epoch, step, checkpoint
        self.exit_code = 128 + signum
        super().__init__(f"{signal.Signals(signum).name}: interrupted at epoch {epoch}, step {step}")


class StopRequest:
    """Records SIGINT / SIGTERM while active (main thread only; elsewhere it never fires)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise StopNow(signum)
        self.signum = signum
        # os.write: the only output that is safe inside a signal handler (no locks, no buffers).
        os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step and saving last.pt "
                    "(send it again to stop at once)\n".encode())

    def requested(self) -> bool:
        """Whether a signal came, agreed by every rank under DDP so that all stop at the same step."""
        flag = self.signum is not None
        if dist.is_available() and dist.is_initialized():
            tensor = torch.tensor([float(self.signum or 0)])
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            self.signum = int(tensor.item()) or None
            flag = self.signum is not None
        return flag


class SkippingSampler(Sampler[int]):
    """``sampler`` with its first ``skip`` indices of the current epoch left out (a mid-epoch resume).

    The inner sampler's order depends on ``(seed, epoch)`` alone, so leaving out the indices
    of the batches already trained reproduces the rest of the interrupted epoch exactly.
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.skip = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = iter(self.sampler)
        for _ in range(self.skip):
            next(indices, None)
        return indices

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)
