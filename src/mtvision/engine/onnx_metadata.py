"""What an exported ``.onnx`` says about itself, in its ``metadata_props``, so a deployment needs
the file alone: the tasks (type, label space, options), the input (size, normalisation,
letterbox rule), what every output means, and the mtvision version that wrote it.

Every value is a JSON string under a ``mtvision.`` key (ONNX metadata is string -> string);
``onnx.load(path).metadata_props`` or onnxruntime's ``get_modelmeta().custom_metadata_map``
read it without mtvision.

Example:
    >>> from mtvision.structures import TaskInfo
    >>> meta = ExportMetadata(tasks={"depth": TaskMeta("depth", TaskInfo(kind="depth"), {}, 8, [4])},
    ...                       image_size=(64, 64), model={"backbone": "resnet18"})
    >>> ExportMetadata.from_props(meta.to_props()).tasks["depth"].info.kind
    'depth'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from mtvision import __version__
from mtvision.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mtvision.engine.checkpoint import infos_from_plain, infos_to_plain
from mtvision.structures import TaskInfo

__all__ = ["FORMAT_VERSION", "LETTERBOX_RULE", "OUTPUT_SEMANTICS", "ExportMetadata", "TaskMeta"]

FORMAT_VERSION = 1
LETTERBOX_RULE = ("resize keeping the aspect ratio by min(H/h, W/w), round each side, pad with 0 "
                  "(after normalisation) centred: top = (H - h') // 2, left = (W - w') // 2; outputs refer to "
                  "the padded input, undo with x = (x' - left) / (w'/w), y = (y' - top) / (h'/h)")
#: what each task type's outputs hold (keys: task type; the output names are in ``outputs``)
OUTPUT_SEMANTICS: dict[str, str] = {
    "classification": "[B, C] logits (softmax for single-label, sigmoid for multi-label)",
    "semantic_segmentation": "[B, C, H, W] logits at input resolution; argmax over C = class index",
    "depth": "[B, 1, H, W] depth in metres (softplus + min_depth), at input resolution",
    "normals": "[B, 3, H, W] unit surface normals, OpenCV camera frame: x right, y down, z forward",
    "edges": "[B, 1, H, W] edge logits (sigmoid = probability)",
    "detection": ("flat over the batch, one row per detection: batch_index [N] (image of the row), boxes [N, 4] "
                  "XYXY input pixels, labels [N] 0-based, scores [N]; with masks mask_probs [N, 28, 28] "
                  "probabilities inside the box (paste into the box, threshold mask_threshold); with keypoints "
                  "keypoints [N, K, 2] (x, y) input pixels and keypoint_scores [N, K]"),
}


@dataclass(frozen=True)
class TaskMeta:
    """One task as the runtime rebuilds it: ``create_task(kind, name, info, channels, strides, **options)``."""

    kind: str
    info: TaskInfo
    options: dict[str, Any]
    channels: int
    strides: list[int]
    outputs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportMetadata:
    """Everything a runtime needs beside the graph; :meth:`to_props` / :meth:`from_props` round-trip."""

    tasks: dict[str, TaskMeta]
    image_size: tuple[int, int]
    model: dict[str, Any]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    batch: int | None = None  # None: any batch size
    half: bool = False
    version: str = __version__

    def to_props(self) -> dict[str, str]:
        tasks = {name: {**dataclasses.asdict(t), "info": infos_to_plain({name: t.info})[name],
                        "semantics": OUTPUT_SEMANTICS.get(t.kind, "see the task type's forward")}
                 for name, t in self.tasks.items()}
        inputs = {"name": "images", "size": list(self.image_size), "layout": "NCHW float32 RGB",
                  "scale": 1 / 255, "mean": list(self.mean), "std": list(self.std), "batch": self.batch,
                  "letterbox": LETTERBOX_RULE}
        props = {"tasks": tasks, "input": inputs, "model": {**self.model, "half": self.half},
                 "format_version": FORMAT_VERSION, "version": self.version}
        return {f"mtvision.{key}": json.dumps(value) for key, value in props.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "the model") -> ExportMetadata:
        """Inverse of :meth:`to_props`; a file without mtvision metadata is an error naming ``source``."""
        if "mtvision.tasks" not in props:
            raise ValueError(f"{source} has no mtvision metadata (metadata_props 'mtvision.tasks'); "
                             "export it with `mtvision export WEIGHTS`")
        tasks = json.loads(props["mtvision.tasks"])
        inputs, model = json.loads(props["mtvision.input"]), json.loads(props["mtvision.model"])
        infos = infos_from_plain({name: t["info"] for name, t in tasks.items()})
        metas = {name: TaskMeta(t["kind"], infos[name], t["options"], t["channels"], t["strides"], t["outputs"])
                 for name, t in tasks.items()}
        half = model.pop("half", False)
        return cls(metas, tuple(inputs["size"]), model, tuple(inputs["mean"]), tuple(inputs["std"]), inputs["batch"],
                   half, json.loads(props["mtvision.version"]))
