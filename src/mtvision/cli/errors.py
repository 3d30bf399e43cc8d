"""The CLI's one error boundary: the project's own errors become a few lines, not a traceback.

Every command is wrapped by :func:`guard` (``cli/__init__.py`` wraps them all once they are
registered, so a new command needs nothing). An error the project raises on purpose says
what is wrong and how to fix it; its traceback only hides that, so it is printed as
``error: <file / entry / key>: <problem>`` plus a ``fix:`` line, with exit code

* ``2`` for bad input: config, dataset annotations, unreadable images, checkpoints, paths;
* ``1`` for a run that failed: non-finite losses, a full disk;
* ``128 + signal`` for an interrupted run (130 for Ctrl-C, 143 for SIGTERM).

``mtvision --debug ...`` or ``MTVISION_DEBUG=1`` shows the traceback too. Any other
exception is a bug and keeps its traceback.

Example (shell)::

    $ mtvision train tasks.semseg.type=semantic_segmentatoin
    error: tasks.semseg.type: unknown task type 'semantic_segmentatoin' — did you mean 'semantic_segmentation'? ...
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import signal
import sys
from collections.abc import Callable
from typing import Any

import typer

# The project's error classes by module, looked up only in modules already imported: an error
# of a module never imported cannot have been raised, and importing them all here would load
# torch before `mtvision --help` could answer.
_CLASSES = {"RunInterrupted": "mtvision.engine.interrupts", "StopNow": "mtvision.engine.interrupts",
            "ConfigError": "mtvision.config", "CorruptImageError": "mtvision.data.loading",
            "FormatError": "mtvision.data.errors", "CheckpointError": "mtvision.engine.checkpoint",
            "DiskFullError": "mtvision.engine.checkpoint", "NonFiniteLossError": "mtvision.engine.step"}


def _is(error: BaseException, name: str) -> bool:
    """``isinstance(error, <the class name>)`` without importing its module."""
    cls = getattr(sys.modules.get(_CLASSES[name]), name, None)
    return cls is not None and isinstance(error, cls)

BAD_INPUT, FAILED_RUN = 2, 1
_debug = {"on": False}


def set_debug(on: bool) -> None:
    """``--debug`` on the command line (``MTVISION_DEBUG=1`` works without it)."""
    _debug["on"] = on


def debugging() -> bool:
    return _debug["on"] or os.environ.get("MTVISION_DEBUG", "") not in ("", "0")


def guard(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the project's errors turned into a short message and an exit code."""

    @functools.wraps(command)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as error:  # noqa: BLE001 -- sorted below; the rest is re-raised
            handled = explain(error)
            if handled is None or debugging():
                raise
            code, text = handled
            typer.secho("error: " if code in (BAD_INPUT, FAILED_RUN) else "", err=True, fg="red", nl=False)
            typer.echo(text, err=True)
            raise typer.Exit(code) from None

    return guarded


def install(group: typer.Typer) -> None:
    """Wrap every command registered on ``group`` and its sub-groups (idempotent)."""
    for info in group.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_guarded", False):
            info.callback = guard(info.callback)
            info.callback._guarded = True  # type: ignore[attr-defined]
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            install(sub.typer_instance)


def explain(error: BaseException) -> tuple[int, str] | None:
    """``(exit code, message)`` for an error of the project's own, None for a bug."""
    if _is(error, "RunInterrupted"):
        return error.exit_code, interrupted_message(error)  # type: ignore[attr-defined]
    if _is(error, "StopNow"):
        return 128 + error.signum, f"{error}: stopped at once; the last saved checkpoint is the latest"
    if isinstance(error, KeyboardInterrupt):
        return 128 + signal.SIGINT, "interrupted"
    if _is(error, "ConfigError"):
        return BAD_INPUT, f"config: {error}"
    if _is(error, "CorruptImageError"):
        return BAD_INPUT, f"{error}\n  fix: replace or remove the file, or set data.skip_corrupt=true to leave it out"
    if _is(error, "FormatError"):
        return BAD_INPUT, f"{error}\n  fix: correct that entry (`mtvision data check <dataset>` lists every problem)"
    if _is(error, "CheckpointError"):
        return BAD_INPUT, str(error)
    if _is(error, "NonFiniteLossError"):
        return FAILED_RUN, f"training diverged: {error}"
    if isinstance(error, OSError):
        return _os_error(error)
    return None


def _os_error(error: OSError) -> tuple[int, str] | None:
    """A full disk is a failed run; a missing or forbidden path given by the user is bad input."""
    where = f" ({error.filename})" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        if _is(error, "DiskFullError"):
            return FAILED_RUN, str(error.strerror)
        return FAILED_RUN, f"no space left on device{where}; free some space or set run.output to another disk"
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)) \
            and error.filename:
        return BAD_INPUT, f"{error.strerror}: {error.filename}"
    return None


def interrupted_message(error: Any) -> str:
    """What to type to continue; the exit code says which signal it was."""
    name = signal.Signals(error.signum).name
    if error.checkpoint is None:
        return f"{name}: interrupted at epoch {error.epoch}, step {error.step}"
    return (f"{name}: interrupted at epoch {error.epoch}, step {error.step}; resume with: "
            f"mtvision train --resume {shlex.quote(str(error.checkpoint))}")
