"""How fast the synthetic scenes render, with every target, on ONE core.

The target is 200 images/s at 128x128, so that a data loader never starves a small model.
Each size is timed ``--repeat`` times and the fastest run is shown (as ``timeit`` does: on a
shared machine the slower runs measure the other processes); its CPU time is printed too.

    .venv/bin/python benchmarks/synthetic_speed.py --num 300 --sizes 128 256
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from mtvision.data.synthetic import render_scene  # noqa: E402


def measure(size: int, num: int, max_objects: int) -> tuple[float, float]:
    """Wall and CPU seconds per image over ``num`` scenes."""
    wall, cpu = time.perf_counter(), time.process_time()
    for seed in range(num):
        render_scene(seed, size, max_objects)
    return (time.perf_counter() - wall) / num, (time.process_time() - cpu) / num


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=300, help="scenes rendered per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square image sides")
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size; the fastest is shown")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'size':>9}  {'images/s':>9}  {'ms/image':>9}  {'cpu ms/image':>12}")
    for size in args.sizes:
        measure(size, 5, args.max_objects)  # warm-up
        wall, cpu = min(measure(size, args.num, args.max_objects) for _ in range(args.repeat))
        print(f"{size:>4}x{size:<4}  {1 / wall:>9.0f}  {wall * 1e3:>9.2f}  {cpu * 1e3:>12.2f}")


if __name__ == "__main__":
    main()
