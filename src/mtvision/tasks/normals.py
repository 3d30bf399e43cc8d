"""Surface normals: a unit vector per pixel (camera frame, see ``mtvision.structures``).

The head's 3 outputs are L2-normalised, so predictions are unit vectors by construction.
Loss: ``1 - cos(n, n*)`` averaged over valid pixels (a zero target vector is invalid),
the cosine loss of e.g. PAD-Net / MTI-Net; it is bounded and smooth, unlike the angle.

Metrics, the standard set since Fouhey et al. (ICCV 2013) and Eigen & Fergus (ICCV 2015),
over every valid pixel of the split: ``mean_angle`` and ``median_angle`` (degrees), and
``within_11_25`` / ``within_22_5`` / ``within_30``, the *fraction* (0-1, like every
mtvision rate) of pixels with an error below that many degrees. Angles are
``atan2(|n x n*|, n . n*)``, accurate at small angles where ``acos`` of a float32 cosine
is not. The median comes from a histogram of 0.01-degree bins summed over the split
(exact under DDP); it is the bin centre, so it is exact to +-0.005 degrees, and for an
even pixel count it averages the two middle ranks.

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = Normals("normals", TaskInfo(kind="normals"), 8, [4])
    >>> out = task([torch.randn(1, 8, 4, 4)], (16, 16))
    >>> torch.allclose(out.norm(dim=1), torch.ones(1, 16, 16), atol=1e-5)
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mtvision.draw import Key, SphereKey, normals_to_rgb
from mtvision.structures import ImageFrame, NormalMap, TaskInfo, unit_vectors, vector_length
from mtvision.tasks._metrics import SplitMetric, masked_mean
from mtvision.tasks.base import Metric, register
from mtvision.tasks.dense_head import DenseTask, constant_map, fit, per_image
from mtvision.tasks.kinds import target_kind

BIN_DEGREES = 0.01  # median resolution
THRESHOLDS = (11.25, 22.5, 30.0)


def _within_key(threshold: float) -> str:
    """``within_11_25`` for 11.25°: no dot, so the name is safe in CSV headers and dotted config keys."""
    return "within_" + f"{threshold:g}".replace(".", "_")


def decode_normals(array: np.ndarray, info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> NormalMap:
    """``.npy`` floats as they are; 8/16-bit PNGs map ``[0, max]`` to ``[-1, 1]`` and are
    renormalised, an all-zero pixel meaning "no normal" (Pillow decodes 16-bit RGB PNGs at
    8-bit precision, so store precise normals as ``.npy``)."""
    chw = array if array.shape[0] == 3 and array.ndim == 3 else np.moveaxis(array, -1, 0)
    if chw.ndim != 3 or chw.shape[0] != 3:
        raise ValueError(f"normal map must have 3 channels, got shape {array.shape}")
    if np.issubdtype(chw.dtype, np.floating):
        return NormalMap(torch.from_numpy(chw.astype(np.float32)))
    vectors = torch.from_numpy(chw.astype(np.float32) / np.iinfo(chw.dtype).max * 2 - 1)
    return NormalMap(unit_vectors(vectors, dim=0) * torch.from_numpy(np.any(chw != 0, axis=0))[None])


target_kind("normals", dense=True, decode=decode_normals)


@register("normals")
class Normals(DenseTask):
    """Dense head with 3 outputs, L2-normalised over the channel axis."""

    target_kind = "normals"
    primary_metric = "mean_angle"
    metrics_higher_is_better = {"mean_angle": False, "median_angle": False,
                                **{_within_key(t): True for t in THRESHOLDS}}

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], *, hidden: int = 32) -> None:
        super().__init__(name, info, channels, strides, out_channels=3, hidden=hidden)

    def activate(self, raw: Tensor) -> Tensor:
        return unit_vectors(raw, dim=1)

    def loss(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        cosine = (prediction.float() * unit_vectors(target.float(), dim=1)).sum(dim=1)
        return {"loss": masked_mean(1 - cosine, valid_pixels(target))}

    def distill_loss(self, prediction: Tensor, teacher: Tensor) -> Tensor:
        """1 - cosine to the old unit normals at every pixel (the task's own loss, old normals as target)."""
        return (1 - (prediction.float() * teacher.float()).sum(dim=1)).mean()

    def baseline_statistics(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """The sum of the normal vectors: only its direction is used."""
        return target.double().sum(dim=(0, 2, 3)), torch.tensor(1.0)

    def constant_prediction(self, mean: Tensor, target: Tensor) -> Tensor:
        """The mean normal direction everywhere."""
        return constant_map(F.normalize(mean.float(), dim=0), target)

    def make_metric(self) -> Metric:
        return AngleMetric()

    def postprocess(self, prediction: Tensor) -> list[np.ndarray]:
        """One ``[3, H, W]`` float32 unit-normal map per image."""
        return per_image(prediction)

    def to_image_frame(self, output: np.ndarray, frame: ImageFrame) -> np.ndarray:
        """Bilinear like every continuous map, then renormalised: a blend of two unit vectors
        is shorter than 1, and users rely on unit normals."""
        return unit_vectors(torch.from_numpy(super().to_image_frame(output, frame)), dim=0).numpy()

    def draw(self, image: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Normals as colours ``(n + 1) / 2``, at the image's size."""
        return fit(normals_to_rgb(output), image.shape[:2])

    def legend(self, output: np.ndarray) -> Key:
        """A ball in the same colours: a surface has the colour of the ball where it faces the same way."""
        return SphereKey()

    def to_json(self, output: np.ndarray) -> dict[str, Any]:
        """The mean direction (unit vector) of the predicted normals."""
        mean = output.reshape(3, -1).mean(axis=1)
        return {"mean_normal": [round(float(v), 4) for v in mean / max(float(np.linalg.norm(mean)), 1e-12)]}


def valid_pixels(normals: Tensor) -> Tensor:
    """``[B, H, W]`` true where the ``[B, 3, H, W]`` normal is not the zero vector."""
    return normals.ne(0).any(dim=1)


def angle_degrees(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-pixel angle in degrees between ``[B, 3, H, W]`` vector maps (any lengths)."""
    prediction, target = prediction.float(), target.float()
    sine = vector_length(torch.linalg.cross(prediction, target, dim=1), dim=1)
    return torch.rad2deg(torch.atan2(sine, (prediction * target).sum(dim=1)))


class AngleMetric(SplitMetric):
    """Angle sum, threshold counts and a fine angle histogram, all summed over the split."""

    keys = ("mean_angle", "median_angle", *(_within_key(t) for t in THRESHOLDS))
    bins = round(180 / BIN_DEGREES)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        angles = angle_degrees(prediction, target)[valid_pixels(target)]
        index = (angles / BIN_DEGREES).long().clamp(0, self.bins - 1)
        self.add("histogram", torch.bincount(index, minlength=self.bins))
        self.add("count", torch.tensor(len(angles)))
        self.add("angle_sum", angles.double().sum())
        for t in THRESHOLDS:
            self.add(_within_key(t), (angles < t).sum())

    def result(self) -> dict[str, float]:
        n = self.sums["count"]
        within = {_within_key(t): float(self.sums[_within_key(t)] / n) for t in THRESHOLDS}
        return {"mean_angle": float(self.sums["angle_sum"] / n), "median_angle": self._median(), **within}

    def _median(self) -> float:
        """Average of the values at ranks floor((n+1)/2) and ceil((n+1)/2) (1-based), from bins."""
        cumulative, n = self.sums["histogram"].cumsum(0), int(self.sums["count"])
        if n == 0:
            return float("nan")
        ranks = torch.tensor([math.floor((n + 1) / 2), math.ceil((n + 1) / 2)], dtype=cumulative.dtype)
        bins = torch.searchsorted(cumulative, ranks)  # first bin whose cumulative count reaches the rank
        return float(((bins.double() + 0.5) * BIN_DEGREES).mean())
