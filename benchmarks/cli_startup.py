"""How long the ``mtvision`` command takes before it does anything (issue 19, item 6).

Each case runs in a fresh interpreter, ``--repeats`` times; the median wall time is printed.
"before" is what every command paid until the commands were imported lazily: importing
every command module (``mtvision.cli.load_all()``, which is what ``cli/__init__.py`` did at
import). "after" are the commands as they run now. On a loaded machine all numbers grow;
the ratios are the comparable part.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5]

Also: ``python -X importtime -c "import mtvision.cli"`` lists what is imported, and when.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "before: import every command (the old `import mtvision.cli`)":
        "from mtvision.cli import load_all; load_all()",
    "after: `mtvision --help`": "from mtvision.cli import app; app(['--help'])",
    "after: `mtvision train --bogus` (an argument error)": "from mtvision.cli import app; app(['train', '--bogus'])",
    "after: `mtvision train --help`": "from mtvision.cli import app; app(['train', '--help'])",
    "after: a data command ready to work (`data check` imports)":
        "import mtvision.cli, mtvision.cli.data_exports",
}


def seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    times = {name: statistics.median(seconds(code) for _ in range(repeats)) for name, code in CASES.items()}
    before = next(iter(times.values()))
    for name, value in times.items():
        print(f"{value:6.2f} s  {before / value:5.1f}x faster than before  {name}")


if __name__ == "__main__":
    main()
