"""An exported ``.onnx`` run through onnxruntime, answering like :class:`~mtvision.models.MultiTaskModel`.

:class:`OnnxModel` rebuilds each task from the file's metadata (for its post-processing,
drawing and JSON only: the weights are in the graph), runs the graph and hands every task its
prediction in the same form the PyTorch model gives it — batched tensors for dense tasks, one
dict per image for detection, completed by the task's own ``complete`` (mask pasting). So
``Task.postprocess``, ``to_image_frame``, ``draw`` and ``to_json`` are the same code on both
paths, and ``predict`` on a ``.onnx`` writes what ``predict`` on a ``.pt`` writes.

Example:
    >>> OnnxModel("missing.onnx")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no ONNX model at missing.onnx; export one with `mtvision export WEIGHTS`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from mtvision.engine.onnx_graph import is_per_image
from mtvision.engine.onnx_metadata import ExportMetadata
from mtvision.tasks import Task, create_task

__all__ = ["BATCH_INDEX", "OnnxModel"]

BATCH_INDEX = "batch_index"
Outputs = dict[str, list[Any]]


class OnnxModel:
    """An exported model: ``tasks`` (name -> Task, for post-processing) and :meth:`predict`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX model at {self.path}; export one with `mtvision export WEIGHTS`")
        self.session = _session(self.path, threads)
        self.meta = ExportMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        self.tasks: dict[str, Task] = {name: create_task(m.kind, name, m.info, m.channels, m.strides,
                                                         **m.options).eval() for name, m in self.meta.tasks.items()}

    @property
    def image_size(self) -> tuple[int, int]:
        return self.meta.image_size

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every graph output for normalised ``[B, 3, H, W]`` float32 images; a fixed-batch
        export is fed in chunks of its batch, the last one zero-padded (rows of padding dropped)."""
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"{self.path} takes {self.image_size} images, got {tuple(images.shape[-2:])}; "
                             "letterbox them first (build_transforms('none', size, train=False))")
        fixed = self.meta.batch
        if fixed is None or len(images) == fixed:
            return self._run(images)
        chunks = [self._run(_pad(images[i:i + fixed], fixed)) for i in range(0, len(images), fixed)]
        return _join(chunks, fixed, len(images))

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {"images": np.ascontiguousarray(images, np.float32)})))

    def raw(self, images: Tensor | np.ndarray) -> dict[str, Any]:
        """Each task's prediction in the PyTorch model's form (what ``Task.postprocess`` takes)."""
        array = images.detach().cpu().float().numpy() if isinstance(images, Tensor) else images
        outputs = self.run(array)
        return {name: self._prediction(name, task, outputs, len(array)) for name, task in self.tasks.items()}

    def _prediction(self, name: str, task: Task, outputs: dict[str, np.ndarray], batch: int) -> Any:
        if not is_per_image(task):
            return torch.from_numpy(outputs[name])
        index = outputs[f"{name}.{BATCH_INDEX}"]
        keys = [k for k in self.meta.tasks[name].outputs if k != BATCH_INDEX]
        return [task.complete({k: torch.from_numpy(outputs[f"{name}.{k}"][index == i]) for k in keys}, self.image_size)
                for i in range(batch)]

    @torch.no_grad()
    def predict(self, images: Tensor | np.ndarray) -> Outputs:
        """Every task's post-processed outputs, like :func:`mtvision.engine.predict.predict`."""
        return {name: self.tasks[name].postprocess(prediction) for name, prediction in self.raw(images).items()}


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types, one per failure
        raise ValueError(f"onnxruntime {ort.__version__} cannot load {path}: {err}") from err


def _pad(images: np.ndarray, batch: int) -> np.ndarray:
    missing = batch - len(images)
    return images if missing == 0 else np.concatenate([images, np.zeros((missing, *images.shape[1:]), images.dtype)])


def _join(chunks: list[dict[str, np.ndarray]], batch: int, total: int) -> dict[str, np.ndarray]:
    """Chunked outputs as one batch of ``total``: batched outputs cut to ``total`` rows, flat ones
    (a ``batch_index`` beside them) re-indexed, the padding images' rows dropped."""
    flat = [n.removesuffix(BATCH_INDEX) for n in chunks[0] if n.endswith("." + BATCH_INDEX)]
    joined = {}
    for name in chunks[0]:
        parts = [c[name] + k * batch if name.endswith("." + BATCH_INDEX) else c[name] for k, c in enumerate(chunks)]
        joined[name] = np.concatenate(parts) if name.startswith(tuple(flat)) else np.concatenate(parts)[:total]
    for prefix in flat:
        keep = joined[prefix + BATCH_INDEX] < total
        joined.update({n: v[keep] for n, v in joined.items() if n.startswith(prefix)})
    return joined
