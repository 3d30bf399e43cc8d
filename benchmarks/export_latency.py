"""Deploy-time latency: PyTorch eager vs onnxruntime (CPU), the joint model vs one model per task.

The deploy-time version of ``mtvision compare``'s cost table. For each trunk (the demo's
``test_resnet.r160_in1k`` and a ``resnet18``), the demo's seven tasks on 64-px scenes are
built once as one joint model and once as seven single-task models (random weights; the
detector is held at 100 detections per image so its work does not depend on them), each exported with ``mtvision.engine.export.export_onnx`` exactly
as ``mtvision export`` does (any batch size, parity checked). Each is timed at batch 1 and at
the demo's training batch (32), PyTorch and onnxruntime alternating run by run so that load
from other jobs on the machine hits both alike; the median is reported. Both runtimes get the
same number of threads (default 1: the machine is shared).

    python benchmarks/export_latency.py                    # the table of docs/export.md
    python benchmarks/export_latency.py --trunks resnet18 --batches 1 --repeats 5
    python benchmarks/export_latency.py --tasks classes lighting semseg depth normals edges   # without the detector
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mtvision.data.dataset import collate
from mtvision.data.synthetic import render_scene, synthetic_tasks
from mtvision.engine.export import ExportSettings, export_onnx
from mtvision.engine.onnx_runtime import OnnxModel
from mtvision.models import MultiTaskModel, TaskSpec, build_model

KINDS = {"classes": "classification", "lighting": "classification", "semseg": "semantic_segmentation",
         "depth": "depth", "normals": "normals", "edges": "edges", "objects": "detection"}
# The demo's detector, forced to its worst case of 100 detections per image (score_thresh 0): the
# detector's cost grows with its detections, which random weights would otherwise decide per model.
DEMO_DETECTION = {"masks": True, "keypoints": True, "proposals": 100, "rois_per_image": 32, "sampling_ratio": 1,
                  "score_thresh": 0.0, "detections_per_img": 100}
NECK = {"test_resnet.r160_in1k": 64, "resnet18": 64}  # the demo's neck width


def specs(tasks: list[str]) -> dict[str, TaskSpec]:
    infos = synthetic_tasks()
    return {n: TaskSpec(KINDS[n], infos[n], DEMO_DETECTION if n == "objects" else {}) for n in tasks}


def model_of(trunk: str, tasks: list[str]) -> MultiTaskModel:
    torch.manual_seed(0)
    return build_model(trunk, specs(tasks), pretrained=False, neck_channels=NECK[trunk]).eval()


def median_ms(runs: list[float]) -> float:
    return 1000 * statistics.median(runs)


def time_pair(pt: Callable[[], object], ort: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of each, alternating runs (one warm-up each first)."""
    pt(), ort()
    a, b = [], []
    for _ in range(repeats):
        for fn, store in ((pt, a), (ort, b)):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return median_ms(a), median_ms(b)


def measure(trunk: str, tasks: list[str], images: torch.Tensor, batches: list[int], repeats: int, threads: int,
            folder: Path) -> dict[int, tuple[float, float]]:
    """{batch: (PyTorch ms, onnxruntime ms)} of the model of ``tasks`` on ``trunk``."""
    model = model_of(trunk, tasks)
    path = folder / f"{trunk}-{'+'.join(tasks)}.onnx"
    export_onnx(model, specs(tasks), path, images[:2], ExportSettings(batch=None, threads=threads))
    runtime = OnnxModel(path, threads=threads)
    out = {}
    for batch in batches:
        x = images[torch.arange(batch) % len(images)]
        array = x.numpy()

        def pt() -> object:
            with torch.no_grad():
                return model(x)

        out[batch] = time_pair(pt, lambda: runtime.run(array), repeats if batch == 1 else 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", nargs="+", default=["test_resnet.r160_in1k", "resnet18"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs at batch 1 (3 at larger batches)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", nargs="+", default=list(KINDS), choices=list(KINDS), help="the joint model's tasks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = collate([render_scene(seed, size=(64, 64)) for seed in range(4)]).images
    print(f"# export latency, {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
          f"{args.threads} thread(s), 64 px, median of alternating runs")
    print("| trunk | model | batch | PyTorch ms | onnxruntime ms | ORT / PyTorch |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for trunk in args.trunks:
            results = {"joint": measure(trunk, args.tasks, images, args.batches, args.repeats, args.threads,
                                        Path(tmp))}
            for task in args.tasks:
                results[task] = measure(trunk, [task], images, args.batches, args.repeats, args.threads, Path(tmp))
            for name, by_batch in results.items():
                for batch, (pt, ort) in by_batch.items():
                    print(f"| {trunk} | {name} | {batch} | {pt:.1f} | {ort:.1f} | {ort / pt:.2f} |", flush=True)
            for batch in args.batches:
                separate = [sum(results[t][batch][i] for t in args.tasks) for i in (0, 1)]
                joint = results["joint"][batch]
                print(f"| {trunk} | {len(args.tasks)} separate (sum) | {batch} | {separate[0]:.1f} | {separate[1]:.1f} | "
                      f"{separate[1] / separate[0]:.2f} |")
                print(f"| {trunk} | **joint / separate** | {batch} | {joint[0] / separate[0]:.2f} | "
                      f"{joint[1] / separate[1]:.2f} | |", flush=True)


if __name__ == "__main__":
    main()
