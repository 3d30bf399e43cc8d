"""The affinity variants (isolated, tag, sgd) side by side on depth + normals + a random-label task
(tests/analysis/test_affinity.py's setup): the three probes measure the same batches of one run.

    python benchmarks/affinity_variants.py --num-train 128 --epochs 3 0 1 2 3   # docs/affinity.md's table
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mtvision.analysis.affinity import VARIANTS, AffinityProbe
from mtvision.analysis.grouping import group_tasks
from mtvision.cli import build
from mtvision.config import load_config
from mtvision.engine.distributed import DistInfo
from mtvision.engine.step import train_step
from mtvision.structures import TaskInfo

torch.set_num_threads(1)
parser = argparse.ArgumentParser()
parser.add_argument("seeds", type=int, nargs="+")
parser.add_argument("--num-train", type=int, default=64)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--cache", default="runs/affinity_variants")
args = parser.parse_args()
SCENES = [f"data.synthetic.num_train={args.num_train}", "data.synthetic.num_val=8", "data.synthetic.size=32",
          "data.image_size=32", "data.batch_size=16", "model.neck_channels=16", f"train.epochs={args.epochs}",
          "train.warmup_epochs=0", "train.predict_images=0", "balancing.diagnostics=false"]
cache = Path(args.cache)
for seed in args.seeds:
    cfg = load_config(None, [*SCENES, f"data.cache={cache}", "tasks.noise.type=classification", f"run.seed={seed}",
                             *(f"tasks.{t}=null" for t in ("classes", "lighting", "semseg", "edges", "objects"))])
    train, val, _ = build.splits(cfg, DistInfo())
    rng = np.random.default_rng(seed)
    for record in (train, val):
        record.tasks["noise"] = TaskInfo(kind="label", classes=["x", "y", "z"])
        for image in record.images:
            image.targets["noise"] = int(rng.integers(3))
    trainer, _ = build.trainer(cfg, DistInfo(), torch.device("cpu"), None, run_dir=cache / f"run{seed}",
                               data=build.Splits(train, val))
    parts = trainer.parts
    probes = {v: AffinityProbe(trainer.model, parts.optimizer, parts.grad_clip, parts.amp_dtype, v) for v in VARIANTS}
    t0 = time.time()
    for epoch in range(1, cfg.train.epochs + 1):
        trainer.model.train(); trainer.sampler.set_epoch(epoch)
        for batch in trainer.train_loader:
            for p in probes.values():
                p.measure(batch)
            train_step(trainer.model, batch, parts)
    for v, p in probes.items():
        r = p.result(); z = r.affinity; names = r.tasks
        n, d, nm = names.index("noise"), names.index("depth"), names.index("normals")
        # margin: how much more the other geometric task gives each geometric task than noise does
        margin = min(z[nm, d] - z[n, d], z[d, nm] - z[n, nm])
        col = np.nanmean([np.ptp(z[[i for i in range(3) if i != j], j]) for j in range(3)])
        g = group_tasks(z, names, 2).groups
        ok = any(set(x) == {"depth", "normals"} for x in g)
        print(f"seed {seed} {v:9s} Z(depth->normals) {z[d,nm]*100:+.3f} Z(noise->normals) {z[n,nm]*100:+.3f} "
              f"Z(normals->depth) {z[nm,d]*100:+.3f} Z(noise->depth) {z[n,d]*100:+.3f} Z(d->noise) {z[d,n]*100:+.3f} "
              f"Z(nm->noise) {z[nm,n]*100:+.3f} margin {margin*100:+.3f} within-col spread {col*100:.3f} K2 {g} {'OK' if ok else 'FAIL'}",
              flush=True)
    print(f"seed {seed}: {time.time()-t0:.0f}s", flush=True)
