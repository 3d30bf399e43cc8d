"""Monocular metric depth: one positive value in metres per pixel; target 0 = invalid.

Output activation: ``softplus(x) + min_depth``. It is positive and smooth, and linear
for large inputs, so an L1 loss in metres gives gradients of the same size at every
depth. ``exp`` (a log-depth output) would multiply the L1 gradient by the depth itself,
letting far pixels dominate, and overflows float16 (AMP) above ``e^11``.

Losses (``loss=``), both over valid pixels only:

* ``"l1"``: mean ``|d - d*|`` in metres;
* ``"silog"``: scale-invariant log error of Eigen, Puhrsch & Fergus, "Depth Map
  Prediction from a Single Image using a Multi-Scale Deep Network", NeurIPS 2014:
  with ``g = log d - log d*`` over the ``n`` valid pixels of an image,
  ``sqrt(mean(g^2) - lambda * mean(g)^2)``, averaged over images; the square root and
  ``lambda = 0.85`` follow BTS (Lee et al. 2019) and AdaBins (Bhat et al. 2021), which
  also multiply by 10 -- left out here, since scaling task losses is the balancing
  layer's job.

Metrics over every valid pixel of the split (sums of per-pixel terms, exact under DDP):
``abs_err`` mean ``|d - d*|`` (m), ``abs_rel`` mean ``|d - d*| / d*``, ``rmse``
``sqrt(mean (d - d*)^2)`` (m), ``delta1`` fraction with ``max(d/d*, d*/d) < 1.25``.

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = Depth("depth", TaskInfo(kind="depth"), 8, [4], loss="silog")
    >>> bool((task([torch.zeros(1, 8, 4, 4)], (16, 16)) > 0).all())
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mtvision.draw import DEPTH_CMAP, ColorBar, Key, colorize_depth, depth_range
from mtvision.structures import DepthMap, TaskInfo
from mtvision.tasks._metrics import SplitMetric, masked_mean
from mtvision.tasks.base import Metric, register
from mtvision.tasks.dense_head import DenseTask, constant_map, fit, per_image
from mtvision.tasks.kinds import single_channel, target_kind

LOSSES = ("l1", "silog")


def decode_depth(array: np.ndarray, info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> DepthMap:
    """Metres = stored value / ``scale`` (e.g. 1000 for millimetre PNGs); 0 stays invalid."""
    metres = single_channel(array, "depth").astype(np.float32) / np.float32(scale)
    return DepthMap(torch.from_numpy(metres))


target_kind("depth", dense=True, decode=decode_depth)


@register("depth")
class Depth(DenseTask):
    """Dense head with one softplus output channel (metres)."""

    target_kind = "depth"
    primary_metric = "abs_rel"
    metrics_higher_is_better = {"abs_err": False, "abs_rel": False, "rmse": False, "delta1": True}

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], *, hidden: int = 32,
                 loss: str = "l1", silog_lambda: float = 0.85, min_depth: float = 1e-3) -> None:
        if loss not in LOSSES:
            raise ValueError(f"task {name!r}: loss={loss!r} is not one of {LOSSES}")
        super().__init__(name, info, channels, strides, out_channels=1, hidden=hidden)
        self.loss_kind = loss
        self.silog_lambda = silog_lambda
        self.min_depth = min_depth  # keeps log(d) finite for silog and d/d* defined

    def activate(self, raw: Tensor) -> Tensor:
        return F.softplus(raw) + self.min_depth

    def loss(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        prediction, valid = prediction.float(), target > 0
        if self.loss_kind == "l1":
            return {"loss": masked_mean((prediction - target).abs(), valid)}
        return {"loss": silog(prediction, target, valid, self.silog_lambda)}

    def distill_loss(self, prediction: Tensor, teacher: Tensor) -> Tensor:
        """L1 to the old depth (metres) at every pixel: the old prediction is the target."""
        return (prediction.float() - teacher.float()).abs().mean()

    def baseline_statistics(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Sum and count of the valid (> 0) depths."""
        valid = target[target > 0].double()
        return valid.sum().reshape(1), torch.tensor(float(len(valid)))

    def constant_prediction(self, mean: Tensor, target: Tensor) -> Tensor:
        """The mean depth everywhere."""
        return constant_map(mean.float()[:1], target)

    def make_metric(self) -> Metric:
        return DepthMetric()

    def postprocess(self, prediction: Tensor) -> list[np.ndarray]:
        """One ``[H, W]`` float32 depth map in metres per image."""
        return per_image(prediction[:, 0])

    def draw(self, image: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The depth map in turbo colours (near red, far blue), at the image's size."""
        return fit(colorize_depth(output), image.shape[:2])

    def legend(self, output: np.ndarray) -> Key:
        """The colour bar of :meth:`draw`: 0 m (red) to the farthest predicted depth (blue)."""
        return ColorBar(DEPTH_CMAP, 0.0, depth_range(output), "depth (m)")

    def to_json(self, output: np.ndarray) -> dict[str, Any]:
        return {"min": float(output.min()), "max": float(output.max()), "mean": float(output.mean())}


def silog(prediction: Tensor, target: Tensor, valid: Tensor, variance_focus: float) -> Tensor:
    """Eigen et al. 2014 scale-invariant log loss per image (BTS form), mean over images.

    ``lambda < 1`` keeps the radicand >= ``(1 - lambda) mean(g^2) >= 0``; the clamp only
    guards the square root's infinite slope at an exact zero.
    """
    g = torch.where(valid, prediction.log() - target.clamp_min(1e-12).log(), torch.zeros_like(prediction))
    n = valid.sum(dim=(1, 2, 3))
    mean_g = g.sum(dim=(1, 2, 3)) / n.clamp_min(1)
    mean_g2 = g.square().sum(dim=(1, 2, 3)) / n.clamp_min(1)
    per_image_loss = (mean_g2 - variance_focus * mean_g.square()).clamp_min(1e-12).sqrt()
    return masked_mean(per_image_loss, n > 0)


class DepthMetric(SplitMetric):
    """Sums of per-pixel errors over valid pixels; ratios taken once at the end."""

    keys = ("abs_err", "abs_rel", "rmse", "delta1")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        valid = target > 0
        d, t = prediction[valid].double(), target[valid].double()  # float64: sums over millions of pixels
        error = (d - t).abs()
        self.add("count", valid.sum())
        self.add("abs_err", error.sum())
        self.add("abs_rel", (error / t).sum())
        self.add("sq_err", error.square().sum())
        self.add("delta1", (torch.maximum(d / t, t / d) < 1.25).sum())

    def result(self) -> dict[str, float]:
        n = self.sums["count"]  # 0 valid pixels -> NaN, "not measured"
        return {
            "abs_err": float(self.sums["abs_err"] / n),
            "abs_rel": float(self.sums["abs_rel"] / n),
            "rmse": float((self.sums["sq_err"] / n).sqrt()),
            "delta1": float(self.sums["delta1"] / n),
        }
