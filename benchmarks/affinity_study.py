"""Does the affinity recommendation hold? Recommended groups vs all together vs random groups.

On the six dense and image-level tasks of the synthetic scenes (``benchmarks/mtl_benefit.py``
study (a): classes, lighting, semseg, depth, normals, edges; 300 training scenes, 6 epochs):

1. ``mtvision affinity`` measures TAG affinity on a short joint run (its defaults: 300 scenes,
   2 epochs, every step) and recommends K = 2 and K = 3 partitions.
2. ``mtvision compare`` trains, with study (a)'s budget and seeds, the recommended branched
   models (``model.branch_at=3``: the groups share the first 3 of 4 trunk stages), two random
   partitions with the same group sizes for each K, and reads all-together (hard sharing) from
   study (a) itself. Every Δm is against study (a)'s single-task runs (``--baseline runs/study_dense``).
3. Standley's ground truth on four tasks (semseg, depth, normals, edges): every pair trained
   jointly (hard sharing, same budget); the rank correlation between ``Z_{i→j}`` and the change
   of ``j``'s metrics when trained with ``i`` (per-task Δ of the pair against ``j`` alone).

Writes docs/affinity.md (and docs/images/affinity_study.png, the measured heatmap). Runs in
parallel one-thread jobs; a part of it with ``--seeds 0`` / ``--skip-pairs``.

    python benchmarks/affinity_study.py --jobs 2                  # everything, 3 seeds
    python benchmarks/affinity_study.py --seeds 0 --skip-pairs     # the grouping rows, one seed
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mtl_benefit import COMMON, DENSE, OUT, ROOT, compare, summary_of
from scipy.stats import spearmanr

BASE = ["tasks.objects=null"]
BASELINE = ["--baseline", str(OUT / "study_dense")]  # study (a): its single-task runs and its all-together row
BRANCH_AT = 3
PAIR_TASKS = ["semseg", "depth", "normals", "edges"]
AFFINITY = OUT / "study_affinity" / "affinity"
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"


def measure() -> dict:
    """The affinity run (skipped when its affinity.json exists)."""
    path = AFFINITY / "affinity.json"
    if not path.is_file():
        command = [str(Path(sys.executable).parent / "mtvision"), "affinity", "configs/demo.yaml", *BASE,
                   "run.name=study_affinity", "run.threads=1"]
        with (OUT / "study_affinity.log").open("w") as log:
            subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads(path.read_text())


def random_partitions(groups: list[list[str]], count: int, seed: int) -> list[list[list[str]]]:
    """``count`` random partitions of the same tasks into groups of the same sizes, none equal
    to ``groups`` or to each other (as sets of sets)."""
    tasks, sizes = [t for g in groups for t in g], [len(g) for g in groups]
    seen, out, rng = {_key(groups)}, [], random.Random(seed)
    for _ in range(1000):
        shuffled = rng.sample(tasks, len(tasks))
        cut = [sorted(shuffled[sum(sizes[:n]):sum(sizes[:n + 1])], key=DENSE.index) for n in range(len(sizes))]
        if _key(cut) not in seen:
            seen.add(_key(cut))
            out.append(cut)
        if len(out) == count:
            break
    return out


def _key(groups: list[list[str]]) -> frozenset:
    return frozenset(frozenset(g) for g in groups)


def rows(affinity: dict) -> dict[str, list[list[str]]]:
    """Row name -> partition: the recommended K = 2 and 3 and two random ones of each."""
    out = {}
    for k in ("2", "3"):
        recommended = affinity["groups"][k]
        out[f"aff_rec_k{k}"] = recommended
        for letter, groups in zip("ab", random_partitions(recommended, 2, seed=int(k))):
            out[f"aff_rand_k{k}{letter}"] = groups
    return out


def branched(groups: list[list[str]]) -> list[str]:
    flat = ", ".join(f"[{', '.join(g)}]" for g in groups)
    return [*BASE, "model.architecture=branched", f"model.branches=[{flat}]", f"model.branch_at={BRANCH_AT}"]


def pairs() -> dict[str, list[str]]:
    return {f"aff_pair_{a}_{b}": [a, b] for a, b in itertools.combinations(PAIR_TASKS, 2)}


def run(plan: dict[str, tuple[list[str], list[str]]], seeds: list[int], jobs: int) -> None:
    """Every (row, seed) as a one-thread job, then one gathering ``compare`` per row."""
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(compare, name, overrides, tasks, [seed], 1, BASELINE)
                   for name, (overrides, tasks) in plan.items() for seed in seeds]
        for future in futures:
            future.result()
    for name, (overrides, tasks) in plan.items():
        compare(name, overrides, tasks, seeds, None, BASELINE)


def grouping_table(groupings: dict[str, list[list[str]]]) -> tuple[str, dict[str, float]]:
    """The Markdown table (all together first) and each row's mean Δm."""
    lines = ["| grouping | groups | Δm (%) | params (M) | seeds |", "|---|---|---|---|---|"]
    means = {}
    for name, groups in {"all together (hard, study (a))": None, **groupings}.items():
        summary = summary_of("dense" if groups is None else name)
        dm, seeds = summary["delta_m"]["multitask"], summary["models"]["multitask"]["seeds"]
        means[name] = dm["mean"]
        shown = " \\| ".join(" + ".join(g) for g in groups) if groups else "all six"
        label = name.replace("aff_", "").replace("rec_", "recommended ").replace("rand_", "random ")
        lines.append(f"| {label} | {shown} | **{dm['mean']:+.2f} ± {dm['std']:.2f}** | "
                     f"{summary['models']['multitask']['params'] / 1e6:.2f} | {seeds} |")
    return "\n".join(lines), means


def pair_correlation(affinity: dict) -> tuple[str, float, float]:
    """Spearman ρ between ``Z_{i→j}`` and ``j``'s per-task Δ (%) trained with ``i`` (12 directed pairs)."""
    tasks, z = affinity["tasks"], affinity["affinity"]
    lines, xs, ys = ["| i → j | Z (%) | Δ of j with i (%) |", "|---|---|---|"], [], []
    for name, (a, b) in pairs().items():
        per_task = summary_of(name)["delta_m"]["multitask"]["per_task"]
        for i, j in ((a, b), (b, a)):
            x = z[tasks.index(i)][tasks.index(j)]
            xs.append(x)
            ys.append(per_task[j])
            lines.append(f"| {i} → {j} | {100 * x:+.2f} | {per_task[j]:+.2f} |")
    rho, p = spearmanr(xs, ys)
    return "\n".join(lines), float(rho), float(p)


def write_doc(affinity: dict, table: str, means: dict[str, float], pair_text: str, seconds: float) -> None:
    """The generated part of docs/affinity.md, between its ``study:begin`` / ``study:end`` markers."""
    image = ROOT / "docs" / "images" / "affinity_study.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(AFFINITY / "affinity.png", image)
    rec = {k: means[f"aff_rec_k{k}"] for k in (2, 3)}
    rand = {k: [v for name, v in means.items() if name.startswith(f"aff_rand_k{k}")] for k in (2, 3)}
    together = means["all together (hard, study (a))"]
    verdict = " ".join(f"K={k}: recommended {rec[k]:+.2f} % vs random {', '.join(f'{v:+.2f}' for v in rand[k])} % "
                       f"and all together {together:+.2f} % — "
                       f"{'the best mean' if rec[k] > max([*rand[k], together]) else 'not the best mean'}."
                       for k in (2, 3)) + " (Means of 3 seeds; compare the ± above.)"
    text = [f"<!-- generated by benchmarks/affinity_study.py on {time.strftime('%Y-%m-%d')}, "
            f"{seconds / 60:.0f} min; common settings: {' '.join(COMMON)} -->",
            f"Measured in {affinity['seconds']:.0f} s ({affinity['probes']} of {affinity['steps']} steps probed, "
            f"{affinity['cost_ratio']:.2f}× the run without it).", table, verdict]
    if pair_text:
        text.append(pair_text)
    doc = ROOT / "docs" / "affinity.md"
    head, _, rest = doc.read_text().partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{BEGIN}\n" + "\n\n".join(text) + f"\n{END}{tail}")
    print("\n\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-pairs", action="store_true", help="leave out the pairwise ground truth")
    parser.add_argument("--only", nargs="*", help="run only these rows (e.g. aff_rec_k2), then write nothing")
    args = parser.parse_args()
    start = time.perf_counter()
    affinity = measure()
    groupings = rows(affinity)
    plan = {name: (branched(groups), DENSE) for name, groups in groupings.items()}
    if not args.skip_pairs:
        # best.pt by the pair's first task (demo.yaml selects on semseg, which three pairs lack)
        plan.update({name: ([*BASE, "train.best_metric=null"], tasks) for name, tasks in pairs().items()})
    if args.only:
        plan = {name: plan[name] for name in args.only}
    run(plan, args.seeds, args.jobs)
    if args.only:
        return
    table, means = grouping_table(groupings)
    pair_text = ""
    if not args.skip_pairs:
        lines, rho, p = pair_correlation(affinity)
        pair_text = f"{lines}\n\nSpearman ρ = {rho:+.2f} (p = {p:.2f}, 12 directed pairs)"
    write_doc(affinity, table, means, pair_text, time.perf_counter() - start)


if __name__ == "__main__":
    main()
