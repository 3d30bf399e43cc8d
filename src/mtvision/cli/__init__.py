"""The ``mtvision`` command line (typer). The only place where names become objects.

Subcommand groups live in sibling modules and are attached here, so ``mtvision --help``
always lists every command.
"""

from __future__ import annotations

import typer

from mtvision.cli import errors

app = typer.Typer(
    name="mtvision",
    help="Multi-task learning for computer vision: one model, many tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Datasets: synth, preview, merge, check, stats, convert.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (or MTVISION_DEBUG=1)")
             ) -> None:
    """Multi-task learning for computer vision: one model, many tasks."""
    errors.set_debug(debug)


def main() -> None:
    app()


# Subcommand modules register themselves on `app` / `data_app` when imported.
from mtvision.cli import affinity as _affinity  # noqa: E402,F401
from mtvision.cli import compare as _compare  # noqa: E402,F401
from mtvision.cli import data_exports as _data_exports  # noqa: E402,F401
from mtvision.cli import data_synth_preview as _data_synth_preview  # noqa: E402,F401
from mtvision.cli import eval_coco as _eval_coco  # noqa: E402,F401
from mtvision.cli import export as _export  # noqa: E402,F401
from mtvision.cli import train as _train  # noqa: E402,F401

errors.install(app)  # after every registration: each command gets the one error boundary
