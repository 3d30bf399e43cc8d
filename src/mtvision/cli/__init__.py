"""The ``mtvision`` command line (typer). The only place where names become objects.

Commands live in sibling modules that register themselves on ``app`` / ``data_app`` when
imported. They are imported **lazily**: a command's module (and torch with it) loads only
when that command runs, so ``mtvision --help``, ``mtvision train --help`` and argument
errors answer at once instead of after seconds of imports (benchmarks/cli_startup.py).
The tables below name each command's module and one-line help; a test checks them against
the commands themselves, so a new command is one line here plus its module.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name

from mtvision.cli import errors

#: command -> (module that registers it, its help's first line) for ``mtvision <command>``.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("mtvision.cli.train", "Train one model on every configured task (default: the synthetic demo)."),
    "val": ("mtvision.cli.train", "Evaluate a checkpoint: every task's metrics, next to constant baselines."),
    "predict": ("mtvision.cli.train",
                "Every task's prediction for each image: overlays per task and one predictions.json."),
    "config": ("mtvision.cli.config_cmd", "Print the resolved config: every key with its value, default and comment."),
    "export": ("mtvision.cli.export", "Export every task to one ONNX file with its metadata; fails, writing nothing, "
               "if it disagrees with PyTorch."),
    "compare": ("mtvision.cli.compare",
                "Multi-task model vs one model per task: test metrics, Δm and measured cost."),
    "affinity": ("mtvision.cli.affinity", "Task affinity (TAG) and gradient cosines from a short run; task groups; "
                 "a branched config."),
    "eval-coco": ("mtvision.cli.eval_coco",
                  "Evaluate a COCO results file against COCO ground truth (AP, AP50, AP75, by size)."),
}
#: the same for ``mtvision data <command>``.
DATA_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("mtvision.cli.config_cmd", "Write a starter config for a dataset: its own tasks, every key commented."),
    "synth": ("mtvision.cli.data_synth_preview", "Render synthetic scenes with every task's ground truth and write "
              "them in the combined format."),
    "preview": ("mtvision.cli.data_synth_preview", "Draw images with all their annotations (boxes, masks, keypoints, "
                "dense maps, labels), one PNG each."),
    "check": ("mtvision.cli.data_exports", "Find what would silently hurt training; exit status 1 when any error is "
              "found (even with --fix)."),
    "stats": ("mtvision.cli.data_exports", "Per-task counts and class histograms (and a bar chart with --out)."),
    "convert": ("mtvision.cli.data_exports", "Rewrite a dataset in another format, warning about every task or field "
                "the target cannot hold."),
    "merge": ("mtvision.cli.data_exports", "Merge exports labelling different tasks of the same images into one "
              "combined dataset."),
}


class _LazyGroup(TyperGroup):
    """A typer group whose commands are imported when run; listed from a table for ``--help``."""

    table: ClassVar[dict[str, tuple[str, str]]] = {}
    owner: ClassVar[str] = "app"  # the module attribute holding this group's typer app

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in self.table if name not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The real command once loaded, else a stand-in carrying its help line (for listings)."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in self.table:
            return click.Command(cmd_name, help=self.table[cmd_name][1])
        return None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[Any, Any, list[str]]:
        if args and args[0] not in self.commands:
            self.load(args[0])
        return super().resolve_command(ctx, args)

    def load(self, name: str) -> None:
        """Import ``name``'s module (every listed module for an unlisted name) and add its commands."""
        modules = [self.table[name][0]] if name in self.table else sorted({m for m, _ in self.table.values()})
        for module in modules:
            importlib.import_module(module)
        typer_app = globals()[self.owner]
        for info in typer_app.registered_commands:
            command_name = info.name or get_command_name(info.callback.__name__)
            if command_name not in self.commands:
                self.commands[command_name] = get_command_from_info(
                    info, pretty_exceptions_short=typer_app.pretty_exceptions_short,
                    rich_markup_mode=typer_app.rich_markup_mode)


class _MainGroup(_LazyGroup):
    table = COMMANDS


class _DataGroup(_LazyGroup):
    table = DATA_COMMANDS
    owner = "data_app"


class _Typer(typer.Typer):
    """Every command registered is wrapped in the CLI's error boundary (:func:`errors.guard`) as it is
    registered: commands arrive lazily, after any one-time wrapping pass would have run."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        register = super().command(*args, **kwargs)

        def decorator(function: Any) -> Any:
            guarded = errors.guard(function)
            guarded._guarded = True  # errors.install leaves it as it is
            register(guarded)
            return function

        return decorator


app = _Typer(
    name="mtvision",
    cls=_MainGroup,
    help="Multi-task learning for computer vision: one model, many tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = _Typer(cls=_DataGroup, help="Datasets: init, synth, preview, merge, check, stats, convert.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (or MTVISION_DEBUG=1)")
             ) -> None:
    """Multi-task learning for computer vision: one model, many tasks."""
    errors.set_debug(debug)


def main() -> None:
    app()


def load_all() -> None:
    """Import every command module (tests, documentation): ``app`` then holds every command."""
    for module in sorted({m for m, _ in [*COMMANDS.values(), *DATA_COMMANDS.values()]}):
        importlib.import_module(module)
