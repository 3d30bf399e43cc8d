"""Measured cost of a model called as ``model(images)``: parameters, FLOPs, checkpoint
size, latency, throughput and peak memory — the efficiency columns of ``mtvision compare``
(one multi-task model against the separate single-task models it replaces).

Everything here is measured, not estimated from the architecture:

- FLOPs are torch's own count (``torch.utils.flop_counter.FlopCounterMode``) of one image in
  eval mode: 2 × multiply-accumulates of convolutions and matrix products; biases,
  activations, normalisation and pooling are not counted, as in most papers' "FLOPs".
- Times are medians of wall-clock runs after warm-up (CUDA is synchronised before every
  clock read). CPU timings depend on ``torch.get_num_threads()``: report them with
  ``describe_device``, e.g. "cpu, 2 threads".
- Peak memory is the most bytes allocated during the call above what was allocated when it
  began (so the weights and the input are not counted, activations, gradients, workspaces
  and outputs are): on CUDA from the caching allocator's statistics, on CPU from the
  profiler's allocation events (``profile_memory=True``), which count tensor bytes only —
  not Python objects, the allocator's slack or the process's resident size.

Example:
    >>> import torch
    >>> conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    >>> count_parameters(conv), flops_per_image(conv, (16, 16))  # 2·3·8·3²·16·16
    (216, 110592.0)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.profiler import DeviceType, ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

MB = 2**20


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (shared parameters counted once, as ``parameters()`` yields them)."""
    return sum(p.numel() for p in module.parameters())


def flops_per_image(model: nn.Module, image_size: tuple[int, int], channels: int = 3) -> float:
    """FLOPs of ``model`` on one ``channels × H × W`` image, as torch counts them (2 · MACs)."""
    images = _images(model, image_size, channels, batch=1, device=None)
    with _inference(model), FlopCounterMode(display=False) as counter:
        model(images)
    return float(counter.get_total_flops())


def checkpoint_megabytes(path: str | os.PathLike[str]) -> float:
    """Size of a checkpoint file in MiB (bytes / 2**20)."""
    return os.path.getsize(path) / MB


def describe_device(device: torch.device | str) -> str:
    """What a timing was measured on: the CUDA device's name, or "cpu, N threads"."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}, {torch.get_num_threads()} threads"


def latency_ms(
    model: nn.Module,
    image_size: tuple[int, int],
    device: torch.device | str,
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    channels: int = 3,
) -> float:
    """Median wall time in milliseconds of one inference forward on a batch (eval, no_grad)."""
    images = _images(model, image_size, channels, batch, device)
    with _inference(model):
        return _median_ms(lambda: model(images), torch.device(device), warmup, repeats)


def throughput(
    model: nn.Module,
    image_size: tuple[int, int],
    device: torch.device | str,
    batch: int,
    warmup: int = 3,
    repeats: int = 10,
    channels: int = 3,
) -> float:
    """Images per second at batch size ``batch``: ``batch`` / median batch latency."""
    return batch * 1000.0 / latency_ms(model, image_size, device, batch, warmup, repeats, channels)


def peak_inference_memory_mb(
    model: nn.Module, image_size: tuple[int, int], device: torch.device | str, batch: int = 1, channels: int = 3
) -> float:
    """Peak MiB allocated by one inference forward above what existed before (see the module docstring)."""
    images = _images(model, image_size, channels, batch, device)
    with _inference(model):
        return _peak_mb(lambda: model(images), torch.device(device))


def train_step_cost(
    step: Callable[[], None], device: torch.device | str, warmup: int = 1, repeats: int = 3
) -> tuple[float, float]:
    """Median milliseconds of ``step()`` and the peak MiB one step allocates above what existed before it.

    Memory is measured on one extra step after the timed ones, so the profiler's overhead
    stays out of the times; warm-up steps let lazily created state (optimizer moments,
    cuDNN plans) exist before either.
    """
    device = torch.device(device)
    median = _median_ms(step, device, warmup, repeats)
    return median, _peak_mb(step, device)


def _images(
    model: nn.Module, image_size: tuple[int, int], channels: int, batch: int, device: torch.device | str | None
) -> torch.Tensor:
    if device is None:
        device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    return torch.randn(batch, channels, *image_size, device=device)


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the duration; the model's training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _median_ms(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        return _cuda_peak_mb(fn, device)
    return _cpu_peak_mb(fn)


def _cuda_peak_mb(fn: Callable[[], object], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / MB


def _cpu_peak_mb(fn: Callable[[], object]) -> float:
    """Peak of the running sum of the profiler's CPU allocation (+) and free (−) events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # The raw kineto events keep one event per allocation and free; ``prof.events()``
    # folds most of them into their operators' net totals, which hides the peak.
    events = prof.profiler.kineto_results.events()
    changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    running = itertools.accumulate(nbytes for _, nbytes in changes)
    return max(0, max(running, default=0)) / MB
