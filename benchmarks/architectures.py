"""How should tasks share? Every architecture as one ``mtvision compare`` row, same budget.

On the synthetic scenes' four dense tasks (semseg, depth, normals, edges: the NYUD-v2 set
of the MTL literature), each architecture's multi-task model is trained with one budget
(150 training scenes, 4 epochs, the demo's optimizer and augmentation; smaller than
``benchmarks/mtl_benefit.py`` so that seven architectures x 3 seeds fit in an hour of 2 CPU
cores) and compared with the same single-task models, trained once by the hard row and
reused by the others (``--baseline``). Seeds run as parallel one-thread jobs; a last
``compare`` per architecture gathers the seeds and measures the costs. Writes
docs/architectures_table.md.

    python benchmarks/architectures.py --jobs 2
    python benchmarks/architectures.py --architectures hard mtan --seeds 0   # a part of it
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from mtl_benefit import COMMON, OUT, ROOT, compare, summary_of

TASKS = ["semseg", "depth", "normals", "edges"]
# The study's budget on top of mtl_benefit.COMMON (later overrides win).
BASE = ["tasks.objects=null", "data.synthetic.num_train=150", "data.synthetic.num_val=50",
        "data.synthetic.num_test=100", "train.epochs=4"]
# The branched row splits the geometric tasks from the semantic ones after stage 3 of 4;
# `mtvision affinity` recommends a tree from measurements instead.
ARCHITECTURES = {"hard": [], "mtan": [], "cross_stitch": [], "mmoe": [], "padnet": [], "mti_net": [],
                 "branched": ["tasks.classes=null", "tasks.lighting=null",  # the branches must name every task
                              "model.branches=[[semseg, edges], [depth, normals]]", "model.branch_at=3"]}
BASELINE = ["--baseline", str(OUT / "study_arch_hard")]  # the hard row trains the single-task models


def overrides(name: str) -> list[str]:
    return [*BASE, f"model.architecture={name}", *ARCHITECTURES[name]]


def run(names: list[str], seeds: list[int], jobs: int) -> None:
    """Every (architecture, seed) job, seed after seed so that an interrupted study has whole
    seeds; the hard row's seed trains the single-task models the other rows of that seed
    reuse, so those wait for it. Then one gathering ``compare`` per architecture."""
    with ThreadPoolExecutor(jobs) as pool:
        hard = {seed: pool.submit(compare, "arch_hard", overrides("hard"), TASKS, [seed], 1) for seed in seeds}

        def job(name: str, seed: int) -> None:
            hard[seed].result()
            compare(f"arch_{name}", overrides(name), TASKS, [seed], 1, BASELINE)

        futures = [pool.submit(job, name, seed) for seed in seeds for name in names if name != "hard"]
        for future in [*hard.values(), *futures]:
            future.result()


def gather(names: list[str], seeds: list[int]) -> dict[str, list[int]]:
    """One ``compare`` per architecture over the seeds it finished (all of them unless the
    study was cut short): gathers them and measures the costs, alone on the machine."""
    done = {}
    for name in ["hard", *(n for n in names if n != "hard")]:
        folder = OUT / f"study_arch_{name}" / "compare"
        done[name] = [s for s in seeds if (folder / f"seed{s}" / "multitask" / "test.json").is_file()]
        if done[name]:
            compare(f"arch_{name}", overrides(name), TASKS, done[name], None, BASELINE if name != "hard" else [])
    return done


def _spread(mean: float, std: float, seeds: int, digits: int) -> str:
    return f"{mean:+.{digits}f}" + (f" ± {std:.{digits}f}" if seeds > 1 else "")


def table(names: list[str], done: dict[str, list[int]]) -> str:
    rows = ["| architecture | seeds | Δm (%) | " + " | ".join(f"Δ {t} (%)" for t in TASKS)
            + " | params (M) | FLOPs (G) | latency (ms) | train peak memory (MB) |",
            "|---" * (7 + len(TASKS)) + "|"]
    for name in [n for n in names if done.get(n)]:
        summary, n = summary_of(f"arch_{name}"), len(done[name])
        dm, cost = summary["delta_m"]["multitask"], summary["models"]["multitask"]
        per_task = " | ".join(_spread(dm["per_task"][t], dm["per_task_std"][t], n, 1) for t in TASKS)
        rows.append(f"| {name} | {n} | **{_spread(dm['mean'], dm['std'], n, 2)}** | {per_task} | "
                    f"{cost['params'] / 1e6:.2f} | {cost['flops'] / 1e9:.3f} | {cost['latency_ms']:.1f} | "
                    f"{cost['train_peak_memory_mb']:.0f} |")
    separate = summary_of("arch_hard")["models"]["separate"]
    zeros = " | ".join("0" for _ in TASKS)
    rows.append(f"| separate single-task models | {len(done['hard'])} | 0 (reference) | {zeros} | "
                f"{separate['params'] / 1e6:.2f} | {separate['flops'] / 1e9:.3f} | {separate['latency_ms']:.1f} | "
                f"{separate['train_peak_memory_mb']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--gather-only", action="store_true", help="no training: gather the seeds each finished")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.gather_only:
        run(args.architectures, args.seeds, args.jobs)
    text = table(args.architectures, gather(args.architectures, args.seeds))
    print(text)
    (ROOT / "docs" / "architectures_table.md").write_text(
        f"<!-- generated by benchmarks/architectures.py on {time.strftime('%Y-%m-%d')}, "
        f"{(time.perf_counter() - start) / 60:.0f} min; common settings: {' '.join(COMMON)} -->\n\n{text}\n")


if __name__ == "__main__":
    main()
