"""What balancing costs: the training-step time and peak memory of every method, relative to EW.

The model is the demo's (``test_resnet.r160_in1k`` + 64-channel FPN, trained from scratch) on
one batch of 32 synthetic 64x64 scenes, with the first T of the demo's tasks (semseg, depth,
normals, classes, lighting, edges); ``--backbone resnet18 --batch 16`` measures a shared trunk
30 times larger (11.7M parameters), where ``G`` outweighs the activations. A step is the
trainer's :func:`~mtvision.engine.step.train_step` (forward, the balanced backward, the
trainer's fused AdamW step, and FAMO's second forward on the updated model; diagnostics
off). Every gradient method runs in both gradient modes, plus the ``every: 10`` variant
(one full step, then nine that reuse its weights: its time is ``(full + 9 reuse) / 10``
from the two step kinds measured side by side).

The **floor** is the least an exact per-task method can do: one forward, T plain
``autograd.grad`` calls over the shared parameters (no heads, no copies, no method) and the
same AdamW step. Targets: parameter mode ≤ 1.1× floor, representation mode ≤ 1.2× EW,
every-10 ≤ 1.2× EW, peak memory ≤ 1.5× EW. Parameter mode runs both of its paths for a Gramian
method: ``parameters_stored`` holds ``G[T, D]``, ``parameters_streamed`` sums ``G Gᵀ`` one
parameter tensor at a time and then runs one more backward (``balancing.backward``).

Time: all variants of one T are interleaved in one process, round after round (the first
round is a warm-up), and each variant's median over the rounds is kept, so a load change on a
shared machine hits every variant alike; Python's garbage collector runs between the rounds and
is off during them, as in ``timeit``. The clock is this process's CPU time (one torch
thread), which other processes' load does not inflate. Memory: the peak of the bytes held by
torch tensors during one step, above what was held when it started (model, optimizer
state) — from ``torch.profiler``'s allocation events on the CPU, ``max_memory_allocated``
on CUDA. It counts activations, gradients, ``G`` and temporaries; not the Python heap.

    .venv/bin/python benchmarks/balancing_cost.py --tasks 3 6 --repeats 3
    .venv/bin/python benchmarks/balancing_cost.py --tasks 3 6 --repeats 3 --backbone resnet18 --batch 16
    .venv/bin/python benchmarks/balancing_cost.py --quick      # tiny model, a smoke run
    .venv/bin/python benchmarks/balancing_cost.py --methods upgrad mgda --json rows.json  # a few methods, rows as JSON
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import torch  # noqa: E402
from torch.amp import GradScaler  # noqa: E402
from torch.optim.lr_scheduler import LambdaLR  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from mtvision.balancing import Balancer, GramianBalancer, available, create  # noqa: E402
from mtvision.balancing.backward import TaskParameters, task_parameters  # noqa: E402
from mtvision.config import Config  # noqa: E402
from mtvision.data.dataset import collate  # noqa: E402
from mtvision.data.synthetic import SyntheticDataset, synthetic_tasks  # noqa: E402
from mtvision.data.transforms import build_transforms  # noqa: E402
from mtvision.engine.optim import build_optimizer  # noqa: E402
from mtvision.engine.step import StepParts, train_step  # noqa: E402
from mtvision.models import MultiTaskModel, TaskSpec, build_model  # noqa: E402
from mtvision.structures import Batch  # noqa: E402

DEMO = Config()  # the defaults are the demo's (configs/demo.yaml)
TASK_TYPES = {"semseg": "semantic_segmentation", "depth": "depth", "normals": "normals",
              "classes": "classification", "lighting": "classification", "edges": "edges"}


@dataclass
class Setup:
    """One model and batch shared by every variant of one T (so they differ only by method)."""

    model: MultiTaskModel
    batch: Batch
    optimizer: torch.optim.Optimizer
    device: torch.device
    params: TaskParameters  # one for all variants: they share its G buffer, as steps of one run would

    @property
    def names(self) -> list[str]:
        return list(self.model.tasks)


@dataclass
class Variant:
    label: str
    kind: str
    mode: str
    step: Callable[[], None]
    method: Balancer | None = None
    times: list[float] = field(default_factory=list)
    memory: int = 0  # peak bytes, see peak_bytes


def make_setup(num_tasks: int, backbone: str, size: int, batch_size: int, device: torch.device) -> Setup:
    infos = synthetic_tasks()
    torch.manual_seed(0)
    tasks = dict(itertools.islice(TASK_TYPES.items(), num_tasks))
    specs = {n: TaskSpec(k, infos[n]) for n, k in tasks.items()}
    model = build_model(backbone, specs, neck_channels=DEMO.model.neck_channels).to(device)
    dataset = SyntheticDataset(batch_size, size=size, transform=build_transforms("none", (size, size), train=False))
    batch = collate([dataset[i] for i in range(batch_size)]).to(device)
    return Setup(model, batch, build_optimizer(model, lr=1e-5, weight_decay=0.0), device, task_parameters(model))


def method_variant(setup: Setup, name: str, mode: str, reuse: bool = False) -> Variant:
    """Real training steps (:func:`train_step`) with method ``name``, its own instance so that
    its state is its own; ``reuse``: every step after the first reuses the first's weights."""
    method = create(name, num_tasks=len(setup.names)).to(setup.device)
    schedule = LambdaLR(setup.optimizer, lambda _: 1.0)
    parts = StepParts(setup.optimizer, schedule, GradScaler(setup.device.type, enabled=False), method, setup.params,
                      gradients=None if mode == "-" else mode, every=2**62 if reuse else 1)  # type: ignore[arg-type]
    return Variant(name, method.kind, "reuse" if reuse else mode, lambda: train_step(setup.model, setup.batch, parts),
                   method)


def floor_step(setup: Setup) -> Callable[[], None]:
    """Forward, T plain ``autograd.grad`` over the shared parameters, the optimizer step."""
    shared = setup.params.shared

    def step() -> None:
        setup.optimizer.zero_grad(set_to_none=True)
        _, parts = setup.model(setup.batch.images, setup.batch)
        losses = [parts[n]["loss"] for n in setup.names]
        for i, loss in enumerate(losses):
            grads = torch.autograd.grad(loss, shared, retain_graph=i < len(losses) - 1)
        for p, g in zip(shared, grads):
            p.grad = g
        setup.optimizer.step()

    return step


def variants(setup: Setup, names: list[str]) -> tuple[list[Variant], dict[str, Variant]]:
    """Every variant to time, and the reuse steps (by method) that make the every-10 rows."""
    rows = [Variant("floor", "-", "exact floor", floor_step(setup))]
    reuse: dict[str, Variant] = {}
    for name in sorted({"ew", *names}):
        method = create(name, num_tasks=len(setup.names))
        if method.kind == "loss":
            rows.append(method_variant(setup, name, "-"))
            continue
        streamed = ["parameters_streamed"] if isinstance(method, GramianBalancer) else []
        rows += [method_variant(setup, name, mode) for mode in ("parameters_stored", *streamed, "representation")]
        reuse[name] = method_variant(setup, name, "parameters_stored", reuse=True)
    return rows, reuse


def clock(setup: Setup, step: Callable[[], None]) -> float:
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)
        start = time.perf_counter()
        step()
        torch.cuda.synchronize(setup.device)
        return time.perf_counter() - start
    start = time.process_time()
    step()
    return time.process_time() - start


def peak_bytes(setup: Setup, step: Callable[[], None]) -> int:
    """Peak tensor bytes of one step above those held when it started, ``G``'s buffer included."""
    setup.params.workspace.clear()  # kept between steps: count it as this step's
    setup.optimizer.zero_grad(set_to_none=True)  # start from no gradients, as every step does
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)
        torch.cuda.reset_peak_memory_stats(setup.device)
        start = torch.cuda.memory_allocated(setup.device)
        step()
        return torch.cuda.max_memory_allocated(setup.device) - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    return max(itertools.accumulate((e.nbytes() for e in events), initial=0))


def measure(setup: Setup, repeats: int, names: list[str]) -> tuple[list[Variant], dict[str, Variant]]:
    rows, reuse = variants(setup, names)
    interleaved = [v for row in rows for v in [row, *([reuse[row.label]] if row.mode == "parameters_stored" else [])]]
    for r in range(repeats + 1):  # round 0 warms up (allocator, lazy inits, method state)
        gc.collect()  # else a collection lands in whichever step crosses the threshold; off in a round, as in timeit
        gc.disable()
        for variant in interleaved:
            seconds = clock(setup, variant.step)
            if r:
                variant.times.append(seconds)
        gc.enable()
        print(f"  round {r}/{repeats} done", flush=True)
    for variant in rows:
        variant.memory = peak_bytes(setup, variant.step)
    return rows, reuse


def table(num_tasks: int, backbone: str, rows: list[Variant], reuse: dict[str, Variant]) -> list[dict]:
    """One row per variant (and per every-10 variant): the JSON rows; :func:`markdown` prints them."""
    median = {id(v): statistics.median(v.times) for v in [*rows, *reuse.values()]}
    ew, floor = next(v for v in rows if v.label == "ew"), rows[0]
    base, floor_time = median[id(ew)], median[id(floor)]
    out = []

    def row(v: Variant, mode: str, seconds: float) -> dict:
        return {"method": v.label, "kind": v.kind, "mode": mode, "T": num_tasks, "backbone": backbone,
                "time_ew": round(seconds / base, 3), "time_floor": round(seconds / floor_time, 3),
                "memory_ew": round(v.memory / ew.memory, 3), "ms": round(seconds * 1e3, 1),
                "peak_mib": round(v.memory / 2**20, 1)}

    for v in rows:
        out.append(row(v, v.mode, median[id(v)]))
        if v.mode == "parameters_stored":
            reused = reuse[v.label]
            has_weights = reused.method is not None and reused.method.last_weights is not None
            every = (median[id(v)] + 9 * median[id(reused)]) / 10 if has_weights else median[id(v)]
            out.append(row(v, "parameters, every 10" + ("" if has_weights else " (no weights: always full)"), every))
    return out


def markdown(rows: list[dict]) -> list[str]:
    lines = ["| method | kind | mode | T | time/EW | time/floor | memory/EW | ms/step | peak MiB |", "|---" * 9 + "|"]
    return lines + [f"| {r['method']} | {r['kind']} | {r['mode']} | {r['T']} | {r['time_ew']:.2f} | "
                    f"{r['time_floor']:.2f} | {r['memory_ew']:.2f} | {r['ms']:.0f} | {r['peak_mib']:.0f} |" for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[3, 6], help="numbers of tasks T (at most 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--quick", action="store_true", help="tiny backbone, 32x32, batch 4, 1 round: a smoke run")
    parser.add_argument("--backbone", default=DEMO.model.backbone, help="timm backbone (default: the demo's)")
    parser.add_argument("--batch", type=int, default=DEMO.data.batch_size, help="batch size (default: the demo's)")
    parser.add_argument("--size", type=int, default=DEMO.data.image_size, help="image side (default: the demo's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", default=None, help="methods to run (default: all); EW always runs")
    parser.add_argument("--json", default=None, help="also write the rows as a JSON list to this path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    backbone, size, batch, repeats = ("test_resnet.r160_in1k", 32, 4, 1) if args.quick else \
        (args.backbone, args.size, args.batch, args.repeats)
    names = args.methods or available()
    rows: list[dict] = []
    for num_tasks in args.tasks:
        print(f"T={num_tasks}: {backbone}, {batch}x{size}x{size}, {repeats} timed rounds", flush=True)
        setup = make_setup(num_tasks, backbone, size, batch, torch.device(args.device))
        rows += table(num_tasks, backbone, *measure(setup, repeats, names))
    print("\n".join(markdown(rows)))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
