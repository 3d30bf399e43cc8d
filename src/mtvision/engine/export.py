"""Export a trained model to one ``.onnx`` that answers every task, checked against PyTorch.

Steps (``docs/export.md`` says why each one is so):

1. trace the batch graph (architecture, every classification and dense head; any batch size
   with ``batch=None``) and each per-image task (detection) on one image, with the
   TorchScript exporter (:mod:`mtvision.engine.onnx_graph`);
2. splice each per-image graph into the batch graph as an ONNX ``Loop`` over the images
   (:mod:`mtvision.engine.onnx_loop`): one file, one graph, one ``session.run``;
3. optionally store the weights in float16 (``half``), write the metadata
   (:mod:`mtvision.engine.onnx_metadata`);
4. write it to a temporary file beside ``out``, run it with onnxruntime on real images next to
   PyTorch (:mod:`mtvision.engine.onnx_parity`), and only when every check passes move it to
   ``out`` (``os.replace``): a failed export leaves nothing behind.

Example:
    >>> check_opset(9)
    Traceback (most recent call last):
    ...
    ValueError: --opset 9: mtvision exports opsets 11 to 20 (Loop, RoiAlign and the TorchScript exporter's range); try --opset 17
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import Tensor

from mtvision.engine.onnx_graph import BatchGraph, PerImageGraph, feature_name, save, trace_to_onnx
from mtvision.engine.onnx_loop import loop_per_image
from mtvision.engine.onnx_metadata import ExportMetadata, TaskMeta
from mtvision.engine.onnx_parity import FLOAT32, HALF, Check, compare, failures
from mtvision.engine.onnx_runtime import BATCH_INDEX, OnnxModel
from mtvision.models import MultiTaskModel, TaskSpec

__all__ = [
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportResult",
    "ExportSettings",
    "ParityError",
    "build_onnx",
    "check_opset",
    "export_onnx",
]

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 11, 20, 17


class ParityError(RuntimeError):
    """The exported graph disagrees with PyTorch beyond tolerance; no file was written."""


@dataclass(frozen=True)
class ExportSettings:
    """How to export: ``batch`` images per run (``None``: any number), ``opset``, float16 weights."""

    batch: int | None = 1
    opset: int = DEFAULT_OPSET
    half: bool = False
    threads: int | None = None  # onnxruntime threads of the parity run


@dataclass
class ExportResult:
    """The written file and the parity checks that let it be written."""

    path: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"--opset {opset}: mtvision exports opsets {MIN_OPSET} to {MAX_OPSET} (Loop, RoiAlign and "
                         f"the TorchScript exporter's range); try --opset {DEFAULT_OPSET}")


def export_onnx(model: MultiTaskModel, specs: Mapping[str, TaskSpec], out: Path, images: Tensor,
                settings: ExportSettings = ExportSettings(), model_info: Mapping[str, Any] | None = None) -> ExportResult:
    """Export ``model`` to ``out`` after checking it on ``images`` (normalised, letterboxed ``[B, 3, H, W]``).

    ``specs`` are the tasks as configured (type, label space, options): the metadata a runtime
    rebuilds the tasks from. Raises :class:`ParityError` (nothing written) when onnxruntime
    disagrees with PyTorch beyond :data:`~mtvision.engine.onnx_parity.FLOAT32` (``HALF``).
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist; create it or pick another path")
    check_opset(settings.opset)
    model = model.eval().cpu()
    graph = build_onnx(model, images, settings)
    meta = ExportMetadata(tasks=_task_metas(model, specs, graph), image_size=tuple(images.shape[-2:]),
                          model=dict(model_info or {}), batch=settings.batch, half=settings.half)
    helper.set_model_props(graph, meta.to_props())
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        save(graph, Path(temp))
        checks = parity(model, OnnxModel(temp, settings.threads), images, settings)
        if failures(checks):
            raise ParityError(f"exported graph disagrees with PyTorch beyond tolerance; {out} not written:\n"
                              + "\n".join(str(c) for c in checks))
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return ExportResult(out, checks)


def build_onnx(model: MultiTaskModel, images: Tensor, settings: ExportSettings) -> onnx.ModelProto:
    """The whole model as one ONNX graph (per-image tasks inside a Loop), before metadata."""
    image_size = (int(images.shape[-2]), int(images.shape[-1]))
    example = _batch_of(images, settings.batch or 2)
    batch_graph = BatchGraph(model, image_size)
    names = batch_graph.output_names
    dynamic = {n: {0: "batch"} for n in ["images", *names]} if settings.batch is None else {}
    graph = trace_to_onnx(batch_graph, (example,), ["images"], names, dynamic, settings.opset)
    with torch.no_grad():
        pyramids = model.architecture.decode(model.features(images)).pyramids
    for name in batch_graph.per_image:
        i = _busiest(model, name, pyramids[name], image_size)
        graph = _add_per_image(graph, model, name, [level[i:i + 1] for level in pyramids[name]], image_size,
                               settings.opset)
    return half_weights(graph) if settings.half else graph


@torch.no_grad()
def _busiest(model: MultiTaskModel, name: str, pyramid: list[Tensor], image_size: tuple[int, int]) -> int:
    """The image with the most detections: the per-image trace then runs every branch (masks,
    keypoints) on real rows rather than on an empty tensor."""
    counts = [len(next(iter(output.values()))) for output in model.tasks[name].detect(pyramid, image_size)]
    return max(range(len(counts)), key=counts.__getitem__)


def _add_per_image(graph: onnx.ModelProto, model: MultiTaskModel, name: str, levels: list[Tensor],
                   image_size: tuple[int, int], opset: int) -> onnx.ModelProto:
    """Trace task ``name``'s ``detect`` on one image's pyramid and loop it over the batch."""
    task = model.tasks[name]
    with torch.no_grad():
        sample = task.detect(levels, image_size)[0]
    keys = list(sample)
    inputs = [f"level{i}" for i in range(len(levels))]
    one = trace_to_onnx(PerImageGraph(task, image_size, keys), tuple(levels), inputs, keys,
                        {k: {0: "rows"} for k in keys}, opset)
    signatures = {k: (helper.np_dtype_to_tensor_dtype(v.numpy().dtype), list(v.shape[1:])) for k, v in sample.items()}
    feeds = {level: feature_name(name, i) for i, level in enumerate(inputs)}
    return loop_per_image(graph, one, feeds, signatures, prefix=f"{name}.")


def half_weights(graph: onnx.ModelProto) -> onnx.ModelProto:
    """Float32 initializers stored as float16 and cast back on load: half the file, float32 compute.

    Compute stays float32 because onnxruntime's CPU provider has no float16 kernels for most
    operators (Conv, RoiAlign); the cost is the rounding of the weights, measured in docs/export.md.
    """
    casts, kept = [], []
    for init in graph.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < 16:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + ".fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    nodes = casts + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    return graph


def parity(model: MultiTaskModel, runtime: OnnxModel, images: Tensor, settings: ExportSettings) -> list[Check]:
    """PyTorch and onnxruntime on the same images, every task compared (:func:`onnx_parity.compare`)."""
    with torch.no_grad():
        raw = model(images)
        post = {name: model.tasks[name].postprocess(p) for name, p in raw.items()}
    onnx_raw = runtime.raw(images)
    onnx_post = {name: runtime.tasks[name].postprocess(p) for name, p in onnx_raw.items()}
    return compare(raw, onnx_raw, post, onnx_post, HALF if settings.half else FLOAT32)


def _task_metas(model: MultiTaskModel, specs: Mapping[str, TaskSpec], graph: onnx.ModelProto) -> dict[str, TaskMeta]:
    outputs = [o.name for o in graph.graph.output]
    metas = {}
    for name, task in model.tasks.items():
        mine = [o.removeprefix(f"{name}.") for o in outputs if o.startswith(f"{name}.")]
        spec = specs[name]
        metas[name] = TaskMeta(spec.kind, spec.info, dict(spec.options), task.channels, list(task.strides),
                               mine if BATCH_INDEX in mine else [name])
    return metas


def _batch_of(images: Tensor, size: int) -> Tensor:
    """``size`` images from ``images``, repeated when there are fewer."""
    return images[torch.arange(size) % len(images)]
