"""Short balancing study: the same run under each balancing method, compared to equal weighting.

Every method trains the same model on the same synthetic scenes (the demo's dense and
image-level tasks; detection off to keep it short) for the same number of epochs, through
the CLI (``mtvision train ... balancing.method=<m> run.seed=<s>``), once per seed (the seed
sets the initialisation and the batch order). The table has, per method, each task's
primary validation metric after the last epoch (mean ± standard deviation over the seeds),
the run's time (training + per-epoch validation, from ``results.csv``) and

    Δm = 100/T · Σ_t (−1)^{l_t} (M_t − M_t^EW) / M_t^EW      (l_t = 1 when lower is better)

(Maninis et al. 2019; Vandenhende et al. 2021): the mean relative gain over EW of the same
seed, in percent, positive = better. It is printed and written to ``docs/balancing_study.md``.

    .venv/bin/python benchmarks/balancing_study.py --jobs 2              # ~20 min on 2 CPU cores
    .venv/bin/python benchmarks/balancing_study.py --methods ew pcgrad --seeds 0 --epochs 2 --images 200
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

from mtvision.engine.loggers import read_results

ROOT = Path(__file__).resolve().parents[1]
# task -> (primary validation metric, higher is better)
PRIMARY = {"semseg": ("miou", True), "depth": ("abs_rel", False), "normals": ("mean_angle", False),
           "classes": ("map", True), "lighting": ("top1", True), "edges": ("ods_f", True)}


Runs = dict[str, list[dict[str, float]]]  # method -> the last results row of each seed's run


def train(method: str, seed: int, args: argparse.Namespace, output: Path) -> dict[str, float]:
    """One CLI run of ``method`` from ``seed``; the last row of its ``results.csv``."""
    name = f"{method}-seed{seed}"
    command = [str(Path(sys.executable).with_name("mtvision")), "train", "tasks.objects=null",
               f"balancing.method={method}", f"run.seed={seed}", f"run.name={name}", f"run.output={output}",
               f"run.threads={args.threads}", f"train.epochs={args.epochs}", "train.predict_images=0",
               f"data.synthetic.num_train={args.images}", f"data.synthetic.num_val={args.val_images}",
               f"data.synthetic.size={args.size}", f"data.image_size={args.size}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return read_results(output / name / "results.csv")[-1]


def delta_m(row: dict[str, float], base: dict[str, float]) -> float:
    """Mean relative gain over ``base`` in percent, each metric signed by its direction."""
    gains = [(row[key] - base[key]) / base[key] * (1 if higher else -1) for key, higher in _columns()]
    return 100 * sum(gains) / len(gains)


def table(runs: Runs) -> str:
    """Markdown: one row per method, the primary metrics, time and Δm against the first
    method (seed by seed), each as mean ± standard deviation over the seeds."""
    base = next(iter(runs.values()))
    header = [f"{key.split('/')[1]} {key.split('/')[2]} {'↑' if higher else '↓'}" for key, higher in _columns()]
    lines = ["| method | " + " | ".join(header) + " | time (s) | Δm vs EW (%) |",
             "|---" * (len(header) + 3) + "|"]
    for method, rows in runs.items():
        metrics = " | ".join(_spread([row[key] for row in rows], ".4f") for key, _ in _columns())
        deltas = _spread([delta_m(row, reference) for row, reference in zip(rows, base)], "+.2f")
        lines.append(f"| {method} | {metrics} | {statistics.mean(row['time'] for row in rows):.0f} | {deltas} |")
    return "\n".join(lines)


def _spread(values: list[float], spec: str) -> str:
    """``mean ± std`` (sample standard deviation), or the value alone for one seed."""
    mean = format(statistics.mean(values), spec)
    return mean if len(values) < 2 else f"{mean} ± {statistics.stdev(values):{spec.lstrip('+')}}"


def _columns() -> list[tuple[str, bool]]:
    return [(f"val/{task}/{metric}", higher) for task, (metric, higher) in PRIMARY.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ew", "uw", "famo", "pcgrad", "cagrad", "upgrad", "nash_mtl"],
                        help="the first one is the Δm reference")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one per core at most)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=800, help="training scenes")
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: fastest on a busy CPU)")
    parser.add_argument("--out", type=Path, default=Path("docs/balancing_study.md"))
    args = parser.parse_args()

    output = ROOT / "runs" / "balancing_study" / time.strftime("%Y%m%d-%H%M%S")
    jobs = list(product(args.methods, args.seeds))
    with ThreadPoolExecutor(args.jobs) as pool:  # threads only wait on the training subprocesses
        results = list(pool.map(lambda job: train(*job, args, output), jobs))
    runs: Runs = {method: [row for (m, _), row in zip(jobs, results) if m == method] for method in args.methods}
    command = " ".join(["python benchmarks/balancing_study.py", *map(shlex.quote, sys.argv[1:])])
    text = "\n".join([
        "# Balancing study", "", f"    .venv/bin/{command}", "",
        f"Synthetic scenes, {args.images} training / {args.val_images} validation images at {args.size} px, "
        f"tasks {', '.join(PRIMARY)} (detection off), demo model and optimiser, seeds "
        f"{', '.join(map(str, args.seeds))}, epochs: {args.epochs} per method, {args.threads} torch thread(s) per "
        f"run, {args.jobs} run(s) at a time on a {os.cpu_count()}-core CPU. Cells: mean ± standard deviation over "
        f"the seeds. "
        f"Metrics: validation after the last epoch. Time: training + per-epoch validation (`results.csv`). "
        f"Δm: mean over the six metrics of the relative gain over {args.methods[0]}, lower-is-better metrics "
        f"sign-flipped, against the {args.methods[0]} run of the same seed (Maninis et al. 2019). "
        f"Runs: `{output.relative_to(ROOT)}/<method>-seed<seed>`.", "",
        table(runs), ""])
    print(text)
    (ROOT / args.out).write_text(text)


if __name__ == "__main__":
    main()
