"""Measured cost against closed forms: FLOPs, parameters, memory; sanity of the timers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from mtvision.analysis.efficiency import (
    checkpoint_megabytes,
    count_parameters,
    describe_device,
    flops_per_image,
    latency_ms,
    peak_inference_memory_mb,
    throughput,
    train_step_cost,
)

MB = 2**20


def small_net(bias: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1, bias=bias),
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 10, bias=bias),
    )


def test_flops_of_a_small_conv_net_by_closed_form() -> None:
    # FLOPs = 2 · MACs; torch counts convolutions and matrix products only (no bias, no ReLU):
    conv1 = 2 * 3 * 8 * 3**2 * 16 * 16  # 2·Cin·Cout·k²·H·W = 110 592
    conv2 = 2 * 8 * 4 * 1**2 * 16 * 16  # 16 384
    linear = 2 * (4 * 16 * 16) * 10  # 2·in·out = 20 480
    assert flops_per_image(small_net(), (16, 16)) == conv1 + conv2 + linear == 147_456
    assert flops_per_image(small_net(bias=False), (16, 16)) == 147_456


def test_flops_count_one_image_and_restore_training_mode() -> None:
    net = nn.Conv2d(1, 2, 3, padding=1).train()
    assert flops_per_image(net, (10, 20), channels=1) == 2 * 1 * 2 * 9 * 10 * 20
    assert net.training


def test_parameter_count_by_hand_sum() -> None:
    # conv1 3·8·3² + 8 = 224; conv2 8·4 + 4 = 36; linear 1024·10 + 10 = 10 250
    assert count_parameters(small_net()) == 224 + 36 + 10_250 == 10_510
    shared = nn.Linear(5, 5)
    assert count_parameters(nn.Sequential(shared, shared)) == 30  # a shared layer counts once


def test_checkpoint_megabytes_is_file_size_in_mib(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(512, 512).state_dict(), path)
    assert checkpoint_megabytes(path) == os.path.getsize(path) / MB
    assert checkpoint_megabytes(path) >= (512 * 512 + 512) * 4 / MB


def test_latency_and_throughput_are_positive_and_consistent() -> None:
    net = small_net()
    single = latency_ms(net, (16, 16), "cpu", batch=1, warmup=2, repeats=5)
    batched = [latency_ms(net, (16, 16), "cpu", batch=16, warmup=2, repeats=7) for _ in range(2)]
    rate = throughput(net, (16, 16), "cpu", batch=16, warmup=2, repeats=7)
    assert all(math.isfinite(x) and x > 0 for x in (single, *batched, rate))
    # Separate measurements on a shared CPU: a generous band around both latencies, still
    # narrow enough to catch a missing batch factor (16x) or a unit slip (1000x).
    expected = [16 * 1000 / ms for ms in batched]
    assert min(expected) / 4 < rate < max(expected) * 4


def test_describe_device_reports_cpu_threads() -> None:
    assert describe_device("cpu") == f"cpu, {torch.get_num_threads()} threads"


def test_peak_inference_memory_on_cpu_covers_the_largest_activation() -> None:
    # Largest activation: the first conv's output, 1 × 64 × 64 × 64 float32 = 1 MiB (ReLU's
    # output of the same size is alive at the same time as it, the 1-channel output is small).
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 1, 1))
    largest = 64 * 64 * 64 * 4 / MB
    peak = peak_inference_memory_mb(net, (64, 64), "cpu")
    assert largest <= peak < 20 * largest


def test_train_step_cost_counts_the_gradients_it_allocates() -> None:
    # Gradients are freed at the end of each step, so the measured step allocates the
    # 1024 × 1024 weight's gradient (4 MiB) anew.
    layer = nn.Linear(1024, 1024)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    inputs = torch.randn(8, 1024)

    def step() -> None:
        layer(inputs).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    median_ms, peak_mb = train_step_cost(step, "cpu", warmup=1, repeats=3)
    gradient = 1024 * 1024 * 4 / MB
    assert math.isfinite(median_ms) and median_ms > 0
    assert gradient <= peak_mb < 20 * gradient


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_and_name() -> None:
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 1, 1)).cuda()
    peak = peak_inference_memory_mb(net, (64, 64), "cuda")
    assert 1.0 <= peak < 20.0
    assert describe_device("cuda") == torch.cuda.get_device_name()
    assert latency_ms(net, (64, 64), "cuda", repeats=3) > 0
