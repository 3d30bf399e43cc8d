"""Does multi-task learning pay off on the synthetic scenes? Three ``mtvision compare`` studies.

(a) ``dense``: the six dense and image-level tasks (classes, lighting, semseg, depth, normals,
    edges) in one model vs six single-task models: Δm, parameters, FLOPs, latency, memory.
(b) ``scarce_depth``: the same with depth labelled on 5 % of the training images
    (``data.label_fraction.depth=0.05``): does a scarce-label task gain from the others?
(c) ``with_detection``: (b) plus detection with masks and keypoints.
(d) ``lever_<method>``: (a)'s multi-task model with another balancing method (Nash-MTL, the
    best of docs/balancing_study.md), against (a)'s single-task runs (``--baseline``), when
    (a)'s Δm is negative.

Every model has the same budget (data, augmentation, optimizer, schedule, epochs); each is
selected on the validation scenes (the multi-task model on semseg mIoU, as the demo; each
single-task model on its own primary metric) and scored once on 200 test scenes, for 3
seeds. Seeds run
as parallel one-thread jobs (``--jobs``); a last ``compare`` per study, alone on the machine,
gathers the seeds and measures the costs. Single-task runs that an earlier study already
trained with identical settings are copied, not retrained (a task's runs do not depend on
which other tasks are compared). Writes docs/mtl_benefit.md.

    python benchmarks/mtl_benefit.py --jobs 2            # about 40 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs"
COMMON = ["data.synthetic.num_train=300", "data.synthetic.num_val=100", "data.synthetic.num_test=200",
          "train.epochs=6", "train.predict_images=0", "balancing.diagnostics=false"]
DENSE = ["classes", "lighting", "semseg", "depth", "normals", "edges"]
STUDIES = {
    "dense": (["tasks.objects=null"], DENSE),
    "scarce_depth": (["tasks.objects=null", "data.label_fraction.depth=0.05"], DENSE),
    "with_detection": (["data.label_fraction.depth=0.05"], [*DENSE, "objects"]),
}
REUSE = {"scarce_depth": ("dense", set(DENSE) - {"depth"}), "with_detection": ("scarce_depth", set(DENSE))}


def compare(name: str, overrides: list[str], tasks: list[str], seeds: list[int], threads: int | None,
            extra: list[str] = ()) -> None:
    threads_arg = [f"run.threads={threads}"] if threads else []
    command = [str(Path(sys.executable).parent / "mtvision"), "compare", "configs/demo.yaml", *COMMON, *overrides,
               f"run.name=study_{name}", *threads_arg, "--tasks", ",".join(tasks), *extra,
               *(arg for seed in seeds for arg in ("--seeds", str(seed)))]
    log = OUT / f"study_{name}.seed{'-'.join(map(str, seeds))}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def copy_reused(name: str, seed: int) -> None:
    """Single-task runs of an earlier study with the same settings for that task, copied in."""
    if name not in REUSE:
        return
    source, tasks = REUSE[name]
    for task in tasks:
        src = OUT / f"study_{source}" / "compare" / f"seed{seed}" / f"single-{task}"
        dst = OUT / f"study_{name}" / "compare" / f"seed{seed}" / f"single-{task}"
        if (src / "test.json").is_file() and not dst.exists():
            shutil.copytree(src, dst)


def run_seeds(seeds: list[int], jobs: int) -> None:
    """Every (study, seed) as a one-thread job; a study's seed waits for the one it reuses."""
    done: dict[tuple[str, int], object] = {}
    with ThreadPoolExecutor(jobs) as pool:
        def job(name: str, seed: int) -> None:
            if name in REUSE:
                done[(REUSE[name][0], seed)].result()  # type: ignore[attr-defined]
            copy_reused(name, seed)
            overrides, tasks = STUDIES[name]
            compare(name, overrides, tasks, [seed], threads=1)
        for name in STUDIES:
            for seed in seeds:
                done[(name, seed)] = pool.submit(job, name, seed)
        for future in done.values():
            future.result()  # type: ignore[attr-defined]


def levers(seeds: list[int], methods: list[str], jobs: int) -> list[str]:
    """(a) with other balancing methods against (a)'s single-task runs."""
    overrides, tasks = STUDIES["dense"]
    baseline = ["--baseline", str(OUT / "study_dense")]
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(compare, f"lever_{m}", [*overrides, f"balancing.method={m}"], tasks, [seed], 1, baseline)
                   for m in methods for seed in seeds]
        for future in futures:
            future.result()
    for m in methods:
        compare(f"lever_{m}", [*overrides, f"balancing.method={m}"], tasks, seeds, None, baseline)
    return [f"lever_{m}" for m in methods]


def summary_of(name: str) -> dict:
    return json.loads((OUT / f"study_{name}" / "compare" / "compare.json").read_text())


def write_doc(names: list[str], seconds: float) -> None:
    parts = ["# Does multi-task learning pay off? (generated by benchmarks/mtl_benefit.py)\n",
             f"`python benchmarks/mtl_benefit.py` — {time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min. "
             f"Common settings: `{' '.join(COMMON)}` on top of configs/demo.yaml.\n"]
    for name in names:
        report = (OUT / f"study_{name}" / "compare" / "report.md").read_text()
        parts.append(f"\n## {name}\n\n" + report.split("\n", 1)[1])
    (ROOT / "docs" / "mtl_benefit.md").write_text("\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--levers", nargs="*", default=["nash_mtl"], help="balancing methods tried when Δm < 0")
    args = parser.parse_args()
    start = time.perf_counter()
    run_seeds(args.seeds, args.jobs)
    for name, (overrides, tasks) in STUDIES.items():  # gather the seeds, measure costs alone on the machine
        compare(name, overrides, tasks, args.seeds, threads=None)
    names = list(STUDIES)
    if summary_of("dense")["delta_m"]["multitask"]["mean"] < 0 and args.levers:
        names += levers(args.seeds, args.levers, args.jobs)
    for name in names:
        dm = summary_of(name)["delta_m"]["multitask"]
        print(f"{name:>16}: Δm = {dm['mean']:+.2f} ± {dm['std']:.2f} %  per task {dm['per_task']}")
    write_doc(names, time.perf_counter() - start)


if __name__ == "__main__":
    main()
