"""What a task type is: the one unit of extension (DESIGN §2).

A :class:`Task` is an ``nn.Module`` holding its head and knowing everything else about
the task: its loss on the batched targets (see :class:`~mtvision.structures.Batch`), its
metric, how a prediction is post-processed, mapped back onto the user's image, drawn and
written to JSON. Adding a task type means adding one module in this package that
subclasses :class:`Task` and decorates it with :func:`register`.

Heads read the neck's feature pyramid: ``features[i]`` has ``channels`` channels and
stride ``strides[i]`` (finest first, e.g. strides 4, 8, 16, 32).

Example:
    >>> from mtvision.tasks import create_task, available_tasks
    >>> "depth" in available_tasks()
    True
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtvision.structures import ImageFrame, TaskInfo
from mtvision.structures.registry import registrar

TASKS: dict[str, type[Task]] = {}
DISTILL_TEMPERATURE = 2.0  # LwF (Li & Hoiem 2017) softens the old model's class outputs with T = 2
_add_task = registrar(TASKS, "task type")


def register(kind: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator adding a task type to the registry under ``kind``; a taken name is an error."""

    def add(cls: type[Task]) -> type[Task]:
        cls.kind = kind
        return _add_task(kind)(cls)

    return add


def available_tasks() -> list[str]:
    return sorted(TASKS)


def task_type(kind: str) -> type[Task]:
    """The task class of ``kind``: a registered name, or an import path ``"package.module:Class"``.

    An import path loads a task module of the user's (it need not be registered); an unknown
    name lists the valid ones.
    """
    if ":" in kind:
        return _import_task(kind)
    if kind not in TASKS:
        raise ValueError(f"unknown task type {kind!r}; available: {', '.join(available_tasks())} "
                         "or an import path 'package.module:Class'")
    return TASKS[kind]


def _import_task(path: str) -> type[Task]:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"task type {path!r}: cannot import module {module_name!r} ({err}); "
                         "is its folder on PYTHONPATH?") from err
    cls = getattr(module, attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ValueError(f"task type {path!r}: {module_name} has no Task subclass named {attribute!r}")
    return cls


def can_distill(cls: type[Task]) -> bool:
    """Whether the task type defines :meth:`Task.distill_loss` (``train.distill`` accepts it)."""
    return cls.distill_loss is not Task.distill_loss


def soft_cross_entropy(student: Tensor, teacher: Tensor, temperature: float, dim: int = 1) -> Tensor:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))`` over ``dim``, averaged over the rest.

    Hinton et al. 2015's distillation loss as LwF uses it (T = 2 there); the T² keeps the
    gradient's scale independent of T. Equal logits give 0.

    Example:
        >>> x = torch.tensor([[1.0, 2.0, 3.0]])
        >>> float(soft_cross_entropy(x, x, temperature=2.0))
        0.0
    """
    log_student = F.log_softmax(student.float() / temperature, dim=dim)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=dim)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=dim)
    return kl.mean() * temperature ** 2


def create_task(kind: str, name: str, info: TaskInfo, channels: int, strides: list[int], **options: Any) -> Task:
    """Build the task ``kind`` named ``name`` for a dataset task of label space ``info``.

    The task type must consume the kind of target the dataset holds for ``name``; a mismatch
    (a depth head on a segmentation task) is an error naming both.
    """
    cls = task_type(kind)
    if cls.target_kind != info.kind:
        raise ValueError(f"task {name!r}: type {kind!r} trains on {cls.target_kind!r} targets but the dataset "
                         f"labels {name!r} as {info.kind!r}; pick a task type for {info.kind!r} targets")
    return cls(name=name, info=info, channels=channels, strides=strides, **options)


class Metric:
    """Accumulates sufficient statistics so the result is exact over a whole split.

    Subclasses keep summable tensors in ``self.sums`` and per-item tensors that must be
    concatenated (e.g. scores for an AP) in ``self.items``; :meth:`merge` then combines
    metrics from several DDP ranks exactly, whatever the metric.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.items: dict[str, list[Tensor]] = {}

    def update(self, prediction: Any, target: Any) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def add(self, key: str, value: Tensor) -> None:
        value = value.detach().to("cpu", torch.float64)
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def append(self, key: str, value: Tensor) -> None:
        self.items.setdefault(key, []).append(value.detach().cpu())

    def merge(self, other: Metric) -> None:
        for key, value in other.sums.items():
            self.add(key, value)
        for key, values in other.items.items():
            self.items.setdefault(key, []).extend(values)


class Task(nn.Module):
    """Base class of every task type; subclasses build ``self.head`` in ``__init__``.

    ``metrics_higher_is_better`` lists every metric the task reports with its direction
    (Δm and best-checkpoint selection need it); ``primary_metric`` is the one used for
    "best" when the config does not name another.
    """

    kind: ClassVar[str] = ""
    target_kind: ClassVar[str] = ""  # the DatasetRecord target kind it consumes
    primary_metric: ClassVar[str] = ""
    metrics_higher_is_better: ClassVar[dict[str, bool]] = {}
    #: decoder architectures (PAD-Net, MTI-Net) may supervise initial features with a copy
    #: of this head reading a one-level pyramid; False where a copy costs too much (detection)
    deep_supervision: ClassVar[bool] = True

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int]) -> None:
        super().__init__()
        self.name = name
        self.info = info
        self.channels = channels
        self.strides = list(strides)

    # --- model side -----------------------------------------------------------------
    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> Any:
        """Prediction for the whole batch (raw: logits, maps...)."""
        raise NotImplementedError

    def forward_train(self, features: list[Tensor], image_size: tuple[int, int], target: Any,
                      present: Tensor) -> tuple[Any, dict[str, Tensor]]:
        """Prediction and losses; only images where ``present`` is true count.

        The default computes the head on the whole batch and the loss on the present rows;
        instance tasks override it to run their head on the present images only.
        """
        prediction = self(features, image_size)
        return prediction, self.loss(select(prediction, present), target)

    def loss(self, prediction: Any, target: Any) -> dict[str, Tensor]:
        """Loss parts; key ``"loss"`` is the task loss the balancing layer sees."""
        raise NotImplementedError

    def make_metric(self) -> Metric:
        raise NotImplementedError

    def distill_loss(self, prediction: Any, teacher: Any) -> Tensor:
        """The loss of ``prediction`` against an older model's prediction of the same images, both raw
        outputs of :meth:`forward`: Learning without Forgetting's soft targets (Li & Hoiem, TPAMI 2017).

        A task type without one cannot be named in ``train.distill.tasks`` (the config check asks
        :func:`can_distill`)."""
        raise NotImplementedError(f"task type {self.kind!r} has no distillation loss")

    @property
    def test_metrics_higher_is_better(self) -> dict[str, bool]:
        """The directions of what :meth:`make_test_metric` reports (by default the validation metrics)."""
        return self.metrics_higher_is_better

    def make_test_metric(self) -> Metric:
        """The metric a test split is scored with once (``mtvision compare``); by default the
        validation one. A task overrides it where the literature's metric is too slow to
        select checkpoints with every epoch (edges: BSDS ODS-F)."""
        return self.make_metric()

    # --- constant baseline ----------------------------------------------------------
    def baseline_statistics(self, target: Any) -> tuple[Tensor, Tensor] | None:
        """``(sum, count)`` of a batch of targets, from which :meth:`constant_prediction`
        fits the best constant output; ``None`` (the default) when no constant is meaningful."""
        return None

    def constant_prediction(self, mean: Tensor, target: Any) -> Any:
        """The constant raw prediction for the images of ``target``, given the split's
        ``sum / count`` of :meth:`baseline_statistics`, in the head's output format."""
        raise NotImplementedError

    # --- output side ----------------------------------------------------------------
    def postprocess(self, prediction: Any) -> list[Any]:
        """Per-image outputs in a user-facing form (probabilities, metres, unit vectors)."""
        raise NotImplementedError

    def to_image_frame(self, output: Any, frame: ImageFrame) -> Any:
        """One postprocessed output moved from the model's input onto the user's image.

        Outputs are computed on the letterboxed input, whose padding and scale mean nothing
        to the user; ``frame`` says where their image sat in it. No default: a task that
        silently kept the input frame would hand back misplaced coordinates.
        """
        raise NotImplementedError

    def draw(self, image: np.ndarray, output: Any) -> np.ndarray:
        """An RGB uint8 ``[H, W, 3]`` picture of one output, over or beside ``image``."""
        raise NotImplementedError

    def to_json(self, output: Any) -> Any:
        """One image's output as JSON-ready Python values."""
        raise NotImplementedError


def select(prediction: Any, present: Tensor) -> Any:
    """Rows of a batched prediction (tensor or dict of tensors) where ``present`` is true."""
    if isinstance(prediction, Tensor):
        return prediction[present]
    if isinstance(prediction, dict):
        return {k: select(v, present) for k, v in prediction.items()}
    if isinstance(prediction, list):
        return [p for p, keep in zip(prediction, present.tolist()) if keep]
    raise TypeError(f"cannot select rows of a {type(prediction).__name__}")
