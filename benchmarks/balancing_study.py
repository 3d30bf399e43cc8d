"""Short balancing study: the same run under each balancing method, compared to equal weighting.

Every method trains the same model from the same seed on the same synthetic scenes (the
demo's dense and image-level tasks; detection off to keep it short) for the same number of
epochs, through the CLI (``mtvision train ... balancing.method=<m> run.name=<m>``). The
table has each task's primary validation metric after the last epoch, the run's time
(training + per-epoch validation, from ``results.csv``) and

    Δm = 100/T · Σ_t (−1)^{l_t} (M_t − M_t^EW) / M_t^EW      (l_t = 1 when lower is better)

(Maninis et al. 2019; Vandenhende et al. 2021): the mean relative gain over EW, in percent,
positive = better. It is printed and written to ``docs/balancing_study.md``.

    .venv/bin/python benchmarks/balancing_study.py                      # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/balancing_study.py --methods ew pcgrad --epochs 2 --images 200
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mtvision.engine.loggers import read_results

ROOT = Path(__file__).resolve().parents[1]
# task -> (primary validation metric, higher is better)
PRIMARY = {"semseg": ("miou", True), "depth": ("abs_rel", False), "normals": ("mean_angle", False),
           "classes": ("map", True), "lighting": ("top1", True), "edges": ("ods_f", True)}


def train(method: str, args: argparse.Namespace, output: Path) -> dict[str, float]:
    """One CLI run of ``method``; the last row of its ``results.csv``."""
    command = [str(Path(sys.executable).with_name("mtvision")), "train", "tasks.objects=null",
               f"balancing.method={method}", f"run.name={method}", f"run.output={output}",
               f"run.threads={args.threads}", f"train.epochs={args.epochs}", "train.predict_images=0",
               f"data.synthetic.num_train={args.images}", f"data.synthetic.num_val={args.val_images}",
               f"data.synthetic.size={args.size}", f"data.image_size={args.size}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"{method}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return read_results(output / method / "results.csv")[-1]


def delta_m(row: dict[str, float], base: dict[str, float]) -> float:
    """Mean relative gain over ``base`` in percent, each metric signed by its direction."""
    gains = [(row[key] - base[key]) / base[key] * (1 if higher else -1) for key, higher in _columns()]
    return 100 * sum(gains) / len(gains)


def table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per method, the primary metrics, time and Δm against the first method."""
    base = next(iter(rows.values()))
    header = [f"{key.split('/')[1]} {key.split('/')[2]} {'↑' if higher else '↓'}" for key, higher in _columns()]
    lines = ["| method | " + " | ".join(header) + " | time (s) | Δm vs EW (%) |",
             "|---" * (len(header) + 3) + "|"]
    for method, row in rows.items():
        metrics = " | ".join(f"{row[key]:.4f}" for key, _ in _columns())
        lines.append(f"| {method} | {metrics} | {row['time']:.0f} | {delta_m(row, base):+.2f} |")
    return "\n".join(lines)


def _columns() -> list[tuple[str, bool]]:
    return [(f"val/{task}/{metric}", higher) for task, (metric, higher) in PRIMARY.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ew", "uw", "famo", "pcgrad", "upgrad"],
                        help="the first one is the Δm reference")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=800, help="training scenes")
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: fastest on a busy CPU)")
    parser.add_argument("--out", type=Path, default=Path("docs/balancing_study.md"))
    args = parser.parse_args()

    output = ROOT / "runs" / "balancing_study" / time.strftime("%Y%m%d-%H%M%S")
    rows = {method: train(method, args, output) for method in args.methods}
    command = " ".join(["python benchmarks/balancing_study.py", *map(shlex.quote, sys.argv[1:])])
    text = "\n".join([
        "# Balancing study", "", f"    .venv/bin/{command}", "",
        f"Synthetic scenes, {args.images} training / {args.val_images} validation images at {args.size} px, "
        f"tasks {', '.join(PRIMARY)} (detection off), demo model and optimiser, seed 0, epochs: {args.epochs} "
        f"per method, {args.threads} torch thread(s) per run on a {os.cpu_count()}-core CPU. "
        f"Metrics: validation after the last epoch. Time: training + per-epoch validation (`results.csv`). "
        f"Δm: mean over the six metrics of the relative gain over {args.methods[0]}, lower-is-better metrics "
        f"sign-flipped (Maninis et al. 2019). Runs: `{output.relative_to(ROOT)}/<method>`.", "",
        table(rows), ""])
    print(text)
    (ROOT / args.out).write_text(text)


if __name__ == "__main__":
    main()
