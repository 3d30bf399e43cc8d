"""Does the data pipeline keep up with training? Images/s produced vs images/s consumed.

Produced: reading the demo's synthetic dataset from disk (combined format: PNG images,
16-bit depth, normals, masks as RLE), decoding every target and applying the ``default``
augmentation preset (flip, scale jitter + crop, colour jitter, sanitiser), then collating.
Consumed: training steps of the demo model (the config defaults: every task, detection
included) on batches of the same size. Both run in this one process with the same number
of threads, one after the other, so the ratio says how many data-loader workers training
needs (< 1 would mean the GPU/CPU waits for data even with a worker per core).

    python benchmarks/data_pipeline.py            # prints a small table
    python benchmarks/data_pipeline.py --threads 2 --images 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mtvision.config import load_config
from mtvision.data.dataset import MultiTaskDataset, collate
from mtvision.data.formats import combined
from mtvision.data.synthetic import synthetic_tasks
from mtvision.data.synthetic.combined_writer import export_synthetic
from mtvision.data.transforms import build_transforms
from mtvision.engine.optim import build_optimizer
from mtvision.models import TaskSpec, build_model


def produce_rate(dataset: MultiTaskDataset, batch_size: int) -> float:
    """Images/s of load + augment + collate over the whole dataset."""
    start = time.perf_counter()
    for first in range(0, len(dataset) - batch_size + 1, batch_size):
        collate([dataset[i] for i in range(first, first + batch_size)])
    return (len(dataset) // batch_size * batch_size) / (time.perf_counter() - start)


def consume_rate(dataset: MultiTaskDataset, batch_size: int, steps: int) -> float:
    """Images/s of training steps of the demo model (forward, every task's loss, backward, the trainer's AdamW)."""
    cfg = load_config(None)
    infos = synthetic_tasks()
    specs = {name: TaskSpec(task.type, infos[name], task.options) for name, task in cfg.tasks.items()}
    model = build_model(cfg.model.backbone, specs, neck_channels=cfg.model.neck_channels).train()
    optimizer = build_optimizer(model, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    batch = collate([dataset[i] for i in range(batch_size)])
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and is dropped
        start = time.perf_counter()
        _, losses = model(batch.images, batch)
        sum(parts["loss"] for parts in losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return batch_size / sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192, help="dataset size for the producer")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(None)
    size = cfg.data.synthetic.size
    with tempfile.TemporaryDirectory() as folder:
        path = export_synthetic(Path(folder), num=args.images, size=size, seed=0)
        infos = synthetic_tasks()
        transform = build_transforms("default", (size, size), {"objects": infos["objects"].flip_idx})
        dataset = MultiTaskDataset(combined.read(path), transform=transform)
        produced = produce_rate(dataset, args.batch_size)
        consumed = consume_rate(dataset, args.batch_size, args.steps)
    print("| threads | pipeline (default preset) img/s | demo training img/s | pipeline / training |")
    print("|---|---|---|---|")
    print(f"| {args.threads} | {produced:.0f} | {consumed:.0f} | {produced / consumed:.2f} |")


if __name__ == "__main__":
    main()
