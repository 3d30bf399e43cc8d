"""What the trainer's ``train_step`` costs over a bare hand-written PyTorch loop.

Both sides train the same model (the demo's: every dense and image-level synthetic task) on
the same batch with AdamW; the bare loop sums the task losses, calls ``backward`` and
``optimizer.step`` and nothing else. ``train_step`` adds what makes it a trainer step:
the balanced backward (equal weighting: one ordinary backward of the weighted sum), the
non-finite check, the gradient norm (and clipping when set), the LR scheduler, the
balancing diagnostics the trainer keeps by default and the host syncs that read the logged
numbers. Target: ≤ 1.05×.

Time: the variants are interleaved step after step in one process (after warm-up steps)
and each keeps its median, so a load change on a shared machine hits them alike. On the
CPU the clock is this process's CPU time with one torch thread, which other processes'
load does not inflate; on CUDA it is wall time between synchronisations.

    .venv/bin/python benchmarks/overhead.py                     # demo model, 64x64, batch 32
    .venv/bin/python benchmarks/overhead.py --backbone resnet18 --repeats 50 --device cuda
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch import nn  # noqa: E402

from mtvision.balancing import create  # noqa: E402
from mtvision.balancing.backward import task_parameters  # noqa: E402
from mtvision.balancing.diagnostics import BalanceMonitor  # noqa: E402
from mtvision.data.dataset import collate  # noqa: E402
from mtvision.data.synthetic import SyntheticDataset  # noqa: E402
from mtvision.data.transforms import build_transforms  # noqa: E402
from mtvision.engine.distributed import resolve_device  # noqa: E402
from mtvision.engine.optim import build_optimizer, build_scheduler  # noqa: E402
from mtvision.engine.step import StepParts, train_step  # noqa: E402
from mtvision.models import TaskSpec, build_model  # noqa: E402
from mtvision.structures import Batch  # noqa: E402

TASKS = {"classes": "classification", "lighting": "classification", "semseg": "semantic_segmentation",
         "depth": "depth", "normals": "normals", "edges": "edges"}


def bare_step(model: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer) -> None:
    """The reference: what anyone would write by hand."""
    optimizer.zero_grad(set_to_none=True)
    _, losses = model(batch.images, batch)
    sum(parts["loss"] for parts in losses.values()).backward()
    optimizer.step()


def trainer_step(model: nn.Module, grad_clip: float | None, steps: int) -> Callable[[Batch], None]:
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0)
    parts = StepParts(optimizer, build_scheduler(optimizer, 0, steps), torch.amp.GradScaler("cpu", enabled=False),
                      create("ew", num_tasks=len(TASKS)), task_parameters(model), grad_clip=grad_clip,
                      monitor=BalanceMonitor(list(TASKS)))
    return lambda batch: train_step(model, batch, parts)  # noqa: E731 - the timed callable


def make_batch(size: int, batch_size: int, device: torch.device) -> Batch:
    transform = build_transforms("none", (size, size), train=False)
    dataset = SyntheticDataset(batch_size, size=size, seed=0, transform=transform)
    samples = [dataset[i] for i in range(batch_size)]
    for sample in samples:
        sample.targets.pop("objects", None)
    return collate(samples).to(device)


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def measure(variants: dict[str, Callable[[Batch], None]], batch: Batch, device: torch.device, repeats: int,
            warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant, run interleaved."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(warmup + repeats):
        for name, step in variants.items():
            start = clock(device)
            step(batch)
            elapsed = clock(device) - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="test_resnet.r160_in1k")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    batch = make_batch(args.size, args.batch_size, device)
    torch.manual_seed(0)
    specs = {name: TaskSpec(kind, SyntheticDataset(1).tasks[name]) for name, kind in TASKS.items()}
    reference = build_model(args.backbone, specs).to(device)
    models = [copy.deepcopy(reference) for _ in range(3)]
    bare_optimizer = build_optimizer(models[0], lr=1e-3, weight_decay=0.0)
    steps = args.warmup + args.repeats
    variants = {
        "bare loop": lambda b: bare_step(models[0], b, bare_optimizer),
        "train_step": trainer_step(models[1], None, steps),
        "train_step, grad_clip=10": trainer_step(models[2], 10.0, steps),
    }
    medians = measure(variants, batch, device, args.repeats, args.warmup)

    table = Table(title=f"{args.backbone}, {len(TASKS)} tasks, {args.batch_size}x{args.size}x{args.size}, "
                        f"{device}, median of {args.repeats}")
    for column in ("variant", "ms / step", "ratio to bare"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, seconds in medians.items():
        table.add_row(name, f"{seconds * 1000:.1f}", f"{seconds / medians['bare loop']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
