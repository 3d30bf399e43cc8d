"""Run a command and save what its console showed, colours included, as an SVG screenshot.

The README's console pictures (``docs/images/*.svg``) are made with it, so they show real
output. The command runs with rich's ``TTY_COMPATIBLE=1`` (colours and styles, as in a
terminal) and ``TTY_INTERACTIVE=0`` (no live progress bars, which a still picture cannot
show), at ``--width`` columns; rich's own recorder turns the ANSI text into the SVG.

    .venv/bin/python docs/screenshot.py docs/images/console.svg -- .venv/bin/mtvision train configs/demo.yaml
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s OUT [--width N] [--title T] -- COMMAND...")
    parser.add_argument("out", type=Path, help="the SVG to write")
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--title", default=None, help="window title (default: the command)")
    if "--" not in sys.argv:
        parser.error("give the command after --")
    split = sys.argv.index("--")
    args, command = parser.parse_args(sys.argv[1:split]), sys.argv[split + 1:]
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": str(args.width)}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    shown = result.stdout + result.stderr
    sys.stdout.write(shown)
    console = Console(record=True, width=args.width, file=io.StringIO(), force_terminal=True)
    console.print(f"$ {' '.join([Path(command[0]).name, *command[1:]])}", style="bold", highlight=False)
    console.print(Text.from_ansi(shown), soft_wrap=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    console.save_svg(str(args.out), title=args.title or Path(command[0]).name)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
