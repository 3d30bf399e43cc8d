"""The worked transfer story of docs/transfer.md, measured: add normals to a depth + semseg model.

1. four synthetic folders: A (depth + semseg labels used) and B (normals labels used), each a
   train and a val folder, rendered from different seeds (different scenes);
2. ``original``: depth + semseg trained on A;
3. ``single``: normals alone trained on B from scratch (the reference the new task must reach);
4. normals added from B only (no depth / semseg labels), starting ``--from`` the original:
   (a) ``naive`` fine-tune, (b) ``frozen`` trunk + neck, (c) ``distill`` (LwF on depth + semseg),
   (d) ``rehearsal``: A and B as two sources with their own images (data.merge=none);
5. one table: old tasks' metrics (relative change vs the original), the new task vs single-task.

Run: ``python benchmarks/transfer.py [--num 400 --epochs1 12 --epochs2 6 --out runs/transfer_story]`` (64-px scenes
read at 32 px, one thread: a few minutes on an idle CPU).
Every run is an ordinary ``mtvision train`` command, printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mtvision.engine.loggers import read_results

BASE = ["model.backbone=test_resnet.r160_in1k", "data.image_size=32", "data.batch_size=32", "train.predict_images=0",
        "balancing.diagnostics=false", "run.threads=1", "train.warmup_epochs=0.5"]
OLD = {"semseg": ("miou", True), "depth": ("abs_rel", False)}
NEW = {"normals": ("mean_angle", False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=400, help="training images per source")
    parser.add_argument("--epochs1", type=int, default=12, help="epochs of the original and single-task models")
    parser.add_argument("--epochs2", type=int, default=6, help="epochs of each way of adding normals")
    parser.add_argument("--out", type=Path, default=Path("runs/transfer_story"))
    args = parser.parse_args()
    data = synth(args.out / "data", args.num)
    started = time.perf_counter()
    runs = {}
    a_val, b_val = source(data["A_val"], "semseg", "depth"), source(data["B_val"], "normals")
    runs["original"] = train(args, "original", args.epochs1, [source(data["A_train"], "semseg", "depth")], [a_val],
                             ["semseg", "depth"], "val/semseg/miou")
    runs["single"] = train(args, "single", args.epochs2, [source(data["B_train"], "normals")], [b_val], ["normals"],
                           "val/normals/mean_angle")
    best = str(args.out / "original" / "weights" / "best.pt")
    new_only, both_val = [source(data["B_train"], "normals")], [a_val, b_val]
    variants = {"naive": [], "frozen": ["model.freeze=[backbone]"],
                "distill": [f"train.distill.from={best}", "train.distill.tasks=[semseg, depth]"]}
    for name, extra in variants.items():
        runs[name] = train(args, name, args.epochs2, new_only, both_val, ["semseg", "depth", "normals"],
                           "val/normals/mean_angle", ["--from", best, *extra])
    runs["rehearsal"] = train(args, "rehearsal", args.epochs2, [source(data["A_train"], "semseg", "depth"), *new_only],
                              both_val, ["semseg", "depth", "normals"], "val/normals/mean_angle", ["--from", best])
    print(table(runs))
    print(f"\ntotal {sum(r['seconds'] for r in runs.values()):.0f} s in the runs "
          f"({time.perf_counter() - started:.0f} s with start-up, this call)")
    (args.out / "story.json").write_text(json.dumps(runs, indent=1))


def synth(folder: Path, num: int) -> dict[str, Path]:
    """Four folders of scenes from disjoint seeds; rendered once."""
    seeds = {"A_train": (num, 0), "A_val": (60, 100_000), "B_train": (num, 200_000), "B_val": (60, 300_000)}
    for name, (count, seed) in seeds.items():
        if not (folder / name / "dataset.json").is_file():
            run(["mtvision", "data", "synth", "--out", str(folder / name), "--num", str(count), "--size", "64",
                 "--seed", str(seed)])
    return {name: folder / name for name in seeds}


def source(path: Path, *tasks: str) -> dict:
    return {"path": str(path), "tasks": list(tasks)}


def train(args: argparse.Namespace, name: str, epochs: int, sources: list[dict], val: list[dict], tasks: list[str],
          best: str, extra: list[str] = ()) -> dict:
    """One ``mtvision train``; returns its last validation row and its time (results.csv)."""
    types = {"semseg": "semantic_segmentation", "depth": "depth", "normals": "normals"}
    config = {"run": {"name": name, "output": str(args.out)}, "data": {"source": sources, "val": val, "merge": "none"},
              "tasks": {t: {"type": types[t]} for t in tasks}, "train": {"epochs": epochs, "best_metric": best}}
    path = args.out / f"{name}.yaml"
    path.write_text(json.dumps(config))
    results = args.out / name / "results.csv"
    if not (results.is_file() and len(read_results(results)) == epochs):  # a finished run is reused
        if (args.out / name).exists():
            raise SystemExit(f"{args.out / name} holds an unfinished run: remove it to measure again")
        run(["mtvision", "train", str(path), *BASE, *extra])
    rows = read_results(results)
    return {"seconds": rows[-1]["time"], "last": rows[-1]}  # training + validation time of the run

def run(command: list[str]) -> None:
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL if "synth" in command else None)


def table(runs: dict) -> str:
    """Markdown: each model's old-task metrics (change vs original) and normals (share of single-task)."""
    original, single = runs["original"]["last"], runs["single"]["last"]
    lines = ["| model | semseg mIoU | depth abs_rel | normals mean angle (°) | new vs single | time (s) |",
             "|---|---|---|---|---|---|"]
    for name, result in runs.items():
        row = result["last"]
        cells = []
        for task, (metric, higher) in OLD.items():
            value = row.get(f"val/{task}/{metric}")
            base = original[f"val/{task}/{metric}"]
            change = "" if value is None or name == "original" else \
                f" ({100 * (value - base) / base * (1 if higher else -1):+.1f} %)"
            cells.append("" if value is None else f"{value:.4f}{change}")
        angle = row.get("val/normals/mean_angle")
        ratio = "" if angle is None else f"{100 * single['val/normals/mean_angle'] / angle:.1f} %"
        cells += ["" if angle is None else f"{angle:.2f}", ratio]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
