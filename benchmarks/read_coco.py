"""Time ``mtvision.data.formats.coco.read`` against ``pycocotools.coco.COCO()`` on one file.

Generates a synthetic COCO keypoints file (every annotation has an 8-point polygon, a box
and 17 keypoints, like COCO person_keypoints) in a temporary folder, then loads it with
both readers, each in a fresh process so that neither inherits the other's heap, best of
``--repeat`` runs each. The full default size (100k images, 1M annotations) writes ~0.6 GB
of JSON and needs about 10 GB of RAM; try ``--images 10000 --annotations 100000`` first.

Example:
    python benchmarks/read_coco.py --images 10000 --annotations 100000
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pycocotools.coco import COCO

from mtvision.data.formats import coco

KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]


def synthetic_coco(n_images: int, n_annotations: int, seed: int = 0) -> dict:
    """A COCO dict with polygons + keypoints; annotations spread uniformly over images."""
    rng = random.Random(seed)
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480}
              for i in range(n_images)]
    annotations = []
    for n in range(n_annotations):
        x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 350), rng.uniform(10, 140), rng.uniform(10, 130)
        poly = [round(v, 2) for v in (x, y, x + w / 2, y - 0, x + w, y, x + w, y + h / 2, x + w, y + h,
                                      x + w / 2, y + h, x, y + h, x, y + h / 2)]
        kps = []
        for _ in KEYPOINTS:
            v = rng.choice((0, 1, 2))
            kps += [0, 0, 0] if v == 0 else [round(x + rng.uniform(0, w), 2), round(y + rng.uniform(0, h), 2), v]
        annotations.append({"id": n + 1, "image_id": rng.randint(1, n_images), "category_id": 1,
                            "segmentation": [poly], "area": round(w * h, 2),
                            "bbox": [round(v, 2) for v in (x, y, w, h)],
                            "iscrowd": 0, "keypoints": kps, "num_keypoints": sum(1 for v in kps[2::3] if v)})
    skeleton = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9]]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": KEYPOINTS,
                            "skeleton": skeleton}]}


def best_time(load: Callable[[], object], repeat: int) -> tuple[float, ...]:
    """Best (wall, CPU, CPU + a full ``gc.collect()``) seconds over ``repeat`` loads.

    CPU time is the fair measure on a shared machine. The third number adds the first full
    garbage collection after the load: a reader that keeps the collector out of the load
    (as mtvision's does) leaves its objects to be walked once by the next full collection,
    so that cost is shown rather than hidden.
    """
    best: tuple[float, ...] = (float("inf"),) * 3
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = load()
        times = (time.perf_counter() - wall, time.process_time() - cpu)
        gc.collect()
        best = tuple(map(min, best, (*times, time.process_time() - cpu)))
        del result
    return best


def measure(reader: str, path: Path, repeat: int) -> tuple[float, ...]:
    """Times of one reader, measured in this process."""
    if reader == "mtvision":
        return best_time(lambda: coco.read(path), repeat)
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        return best_time(lambda: COCO(str(path)), repeat)


def in_fresh_process(reader: str, path: Path, repeat: int) -> tuple[float, ...]:
    command = [sys.executable, __file__, "--measure", reader, "--file", str(path), "--repeat", str(repeat)]
    return tuple(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))


def compare(path: Path, repeat: int) -> None:
    ours, theirs = (in_fresh_process(reader, path, repeat) for reader in ("mtvision", "pycocotools"))
    print(f"{'':24}{'wall s':>8}{'CPU s':>8}{'CPU+gc s':>10}")
    for name, t in (("mtvision coco.read", ours), ("pycocotools COCO()", theirs)):
        print(f"{name:<24}{t[0]:8.2f}{t[1]:8.2f}{t[2]:10.2f}")
    ratios = [a / b for a, b in zip(ours, theirs)]
    print(f"{'ratio (ours / theirs)':<24}{ratios[0]:8.2f}{ratios[1]:8.2f}{ratios[2]:10.2f}")
    print("CPU+gc: CPU time of the load plus the first full gc.collect() after it, which walks what the reader kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--file", type=Path, help="time this COCO file instead of generating one")
    parser.add_argument("--measure", choices=["mtvision", "pycocotools"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file, args.repeat)))
    elif args.file:
        compare(args.file, args.repeat)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "person_keypoints_bench.json"
            start = time.perf_counter()
            path.write_text(json.dumps(synthetic_coco(args.images, args.annotations)))
            print(f"generated {args.images} images / {args.annotations} annotations, "
                  f"{path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s")
            compare(path, args.repeat)

if __name__ == "__main__":
    main()
