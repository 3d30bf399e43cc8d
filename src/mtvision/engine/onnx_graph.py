"""The PyTorch modules the ONNX export traces, and the tracing itself.

A model splits into two graphs because torchvision's detector cannot be exported for a batch
(see ``docs/export.md``): the TorchScript exporter unrolls its per-image Python loops and
bakes the traced batch's proposal counts into ``Split`` nodes (pytorch/vision#2311), and the
dynamo exporter cannot trace it at all (vision#9306, #9321). So:

* :class:`BatchGraph` runs the architecture and every head whose output is one batched
  tensor (classification, dense maps) for any batch size, and also returns the pyramid of
  every per-image task (detection) as extra outputs;
* :class:`PerImageGraph` runs one per-image task (its ``detect``) on one image's pyramid.

:mod:`mtvision.engine.onnx_loop` then puts the second inside the first as an ONNX ``Loop``
over the batch, so the file is still one graph. A task is per-image when it has a
``detect(features, image_size)`` / ``complete(output, image_size)`` pair (detection).

Example:
    >>> import torch
    >>> from mtvision.models import build_model
    >>> graph = BatchGraph(build_model("test_resnet.r160_in1k", tasks={}, neck_channels=8), (32, 32))
    >>> graph.output_names
    []
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from mtvision.models import MultiTaskModel
from mtvision.tasks import Task

__all__ = ["BatchGraph", "ExportError", "PerImageGraph", "feature_name", "is_per_image", "trace_to_onnx"]


class ExportError(ValueError):
    """The exporter cannot turn a module into ONNX; the message names the operator and the opset."""


def is_per_image(task: Task) -> bool:
    """Whether ``task`` predicts a variable-length output per image (exported one image at a time)."""
    return callable(getattr(task, "detect", None)) and callable(getattr(task, "complete", None))


def feature_name(task: str, level: int) -> str:
    """Name of the batch graph's output that carries level ``level`` of ``task``'s pyramid."""
    return f"{task}.features.{level}"


class BatchGraph(nn.Module):
    """Images -> one output per batched task, then every per-image task's pyramid levels."""

    def __init__(self, model: MultiTaskModel, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.image_size = tuple(image_size)  # fixed: every input is letterboxed to it
        self.batched = [name for name, task in model.tasks.items() if not is_per_image(task)]
        self.per_image = [name for name, task in model.tasks.items() if is_per_image(task)]
        self.levels = len(model.tasks[self.per_image[0]].strides) if self.per_image else 0

    @property
    def output_names(self) -> list[str]:
        return self.batched + [feature_name(n, i) for n in self.per_image for i in range(self.levels)]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        pyramids = self.model.architecture.decode(self.model.features(images)).pyramids
        outputs = [self.model.tasks[name](pyramids[name], self.image_size) for name in self.batched]
        return tuple(outputs + [level for name in self.per_image for level in pyramids[name]])


class PerImageGraph(nn.Module):
    """One image's pyramid (``[1, C, h, w]`` per level) -> ``task.detect``'s tensors, in ``keys`` order."""

    def __init__(self, task: Task, image_size: tuple[int, int], keys: list[str]) -> None:
        super().__init__()
        self.task = task
        self.image_size = tuple(image_size)
        self.keys = keys

    def forward(self, *levels: Tensor) -> tuple[Tensor, ...]:
        output = self.task.detect(list(levels), self.image_size)[0]
        return tuple(output[key] for key in self.keys)


def trace_to_onnx(module: nn.Module, example: tuple[Tensor, ...], input_names: list[str],
                  output_names: list[str], dynamic: dict[str, dict[int, str]], opset: int) -> onnx.ModelProto:
    """``module`` through the TorchScript exporter (``dynamo=False``) into an in-memory model.

    Not dynamo: it needs ``onnxscript`` (not a dependency) and fails on torchvision detection.
    The exporter's deprecation and tracer warnings are silenced: the parity check that follows
    every export is what says whether the trace is right.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module.eval(), example, buffer, dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                              do_constant_folding=True)
        except Exception as err:  # the exporter's message names the operator (aten::...) that blocks it
            raise ExportError(f"{type(module).__name__} does not export to ONNX opset {opset}: {err}") from err
    return onnx.load_from_string(buffer.getvalue())


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` as one self-contained file (no external data: the models here are small)."""
    onnx.save_model(model, str(path))
