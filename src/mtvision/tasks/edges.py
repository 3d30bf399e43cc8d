"""Edge detection: a per-pixel edge probability, trained against a 0/1 edge map.

Loss: class-balanced BCE of HED (Xie & Tu, "Holistically-Nested Edge Detection", ICCV
2015): edges are a few percent of pixels, so positives are weighted by ``#neg / #pos``
of the batch (``pos_weight`` of BCE-with-logits; HED's ``beta`` and ``1 - beta`` up to a
common factor), averaged over all pixels.

Metric: ODS F-score, the F-measure at the one threshold that is best over the whole split
(Arbelaez et al., BSDS, TPAMI 2011). For each threshold of a fixed grid
``k / (num_thresholds + 1)`` we sum TP, FP and FN counts over the split (exact under DDP)
and report the best ``ods_f`` and its ``ods_threshold`` (the lowest threshold reaching
it). ``ods_threshold`` is informative, not a score: it is deliberately absent from
``metrics_higher_is_better``.

Matching is pixel-exact by default (``tolerance=0``); BSDS matches edges within a
distance instead. ``tolerance=r`` approximates that with max-pool dilations of radius r
(Chebyshev distance): a predicted pixel is correct if a target edge lies within r, and a
target pixel is found if a prediction above the threshold lies within r. Unlike BSDS
there is no one-to-one matching and no thinning (NMS) of the prediction.

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = Edges("edges", TaskInfo(kind="edges"), 8, [4])
    >>> task([torch.zeros(1, 8, 4, 4)], (16, 16)).shape
    torch.Size([1, 1, 16, 16])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision import tv_tensors

from mtvision.draw import ColorBar, Key, blend, gray_to_rgb
from mtvision.structures import TaskInfo
from mtvision.tasks._metrics import SplitMetric, f_score, safe_div
from mtvision.tasks.base import Metric, register
from mtvision.tasks.dense_head import DenseTask, constant_map, fit, per_image
from mtvision.tasks.edge_bsds import DEFAULT_THRESHOLDS, EdgeODS, f_measure, image_counts
from mtvision.tasks.kinds import single_channel, target_kind


def decode_edges(array: np.ndarray, info: TaskInfo, size: tuple[int, int], scale: float = 1.0) -> tv_tensors.Mask:
    """Any stored value > 0 is an edge: a uint8 ``Mask [1, H, W]`` of 0/1."""
    return tv_tensors.Mask(torch.from_numpy((single_channel(array, "edges") > 0).astype(np.uint8))[None])


target_kind("edges", dense=True, decode=decode_edges)


@register("edges")
class Edges(DenseTask):
    """Dense head with one edge logit per pixel."""

    target_kind = "edges"
    primary_metric = "ods_f"
    metrics_higher_is_better = {"ods_f": True}

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], *, hidden: int = 32,
                 tolerance: int = 0, num_thresholds: int = 99, threshold: float = 0.5,
                 bsds_max_dist: float = 0.0075, bsds_thresholds: int = DEFAULT_THRESHOLDS) -> None:
        super().__init__(name, info, channels, strides, out_channels=1, hidden=hidden)
        self.tolerance = tolerance  # metric matching radius in pixels
        self.num_thresholds = num_thresholds  # ODS grid size
        self.threshold = threshold  # edge / no edge in to_json
        self.bsds_max_dist = bsds_max_dist  # test metric's matching radius / image diagonal: 0.0075 PASCAL-Context, 0.011 NYUD-v2
        self.bsds_thresholds = bsds_thresholds

    def loss(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """HED class-balanced BCE; with no positive pixel the weight is irrelevant (1)."""
        target = target.float()
        positives = target.sum()
        pos_weight = (target.numel() - positives) / positives.clamp_min(1)
        return {"loss": F.binary_cross_entropy_with_logits(prediction.float(), target, pos_weight=pos_weight)}

    def distill_loss(self, prediction: Tensor, teacher: Tensor) -> Tensor:
        """BCE to the old edge probabilities at every pixel (unweighted: soft targets have no class count)."""
        return F.binary_cross_entropy_with_logits(prediction.float(), teacher.float().sigmoid())

    def baseline_statistics(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Edge pixels and all pixels: the edge rate."""
        return target.double().sum().reshape(1), torch.tensor(float(target.numel()))

    def constant_prediction(self, mean: Tensor, target: Tensor) -> Tensor:
        """The logit of the edge rate everywhere: every ODS threshold below it predicts "edge"."""
        return constant_map(torch.logit(mean.float()[:1].clamp(1e-6, 1 - 1e-6)), target)

    def make_metric(self) -> Metric:
        return ODSMetric(self.num_thresholds, self.tolerance)

    @property
    def test_metrics_higher_is_better(self) -> dict[str, bool]:
        return {**self.metrics_higher_is_better, "bsds_ods_f": True, "bsds_ois_f": True}

    def make_test_metric(self) -> Metric:
        """The fast pixel F-score plus the literature's BSDS ODS / OIS F (thinned, matched within
        ``bsds_max_dist`` × diagonal): comparable with NYUD-v2 / PASCAL-Context tables, too slow
        to select checkpoints with every epoch."""
        return BSDSMetric(self.num_thresholds, self.tolerance, self.bsds_thresholds, self.bsds_max_dist)

    def postprocess(self, prediction: Tensor) -> list[np.ndarray]:
        """One ``[H, W]`` float32 edge probability map per image."""
        return per_image(prediction[:, 0].float().sigmoid())

    def draw(self, image: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Edges in white (brightness = probability) over the darkened image."""
        edges = fit(gray_to_rgb(output), image.shape[:2])
        return np.maximum(blend(image, np.zeros_like(image), 0.6), edges)

    def legend(self, output: np.ndarray) -> Key:
        """Brightness is the edge probability."""
        return ColorBar("gray", 0.0, 1.0, "edge probability")

    def to_json(self, output: np.ndarray) -> dict[str, Any]:
        return {"edge_fraction": round(float((output >= self.threshold).mean()), 4)}


class ODSMetric(SplitMetric):
    """Histograms of probabilities against a threshold grid; F per threshold at the end.

    Bucketing each probability by how many grid thresholds it reaches turns "count per
    threshold" into one ``bincount`` per update plus a reversed cumulative sum at the end.
    """

    keys = ("ods_f", "ods_threshold")

    def __init__(self, num_thresholds: int, tolerance: int) -> None:
        super().__init__()
        self.thresholds = torch.arange(1, num_thresholds + 1, dtype=torch.float64) / (num_thresholds + 1)
        self.tolerance = tolerance

    def update(self, prediction: Tensor, target: Tensor) -> None:
        probs, edge = prediction.float().sigmoid(), target.bool()
        near_edge, near_prob = edge, probs
        if self.tolerance > 0:  # dilating probabilities dilates every thresholded map at once
            near_edge = _dilate(edge.float(), self.tolerance).bool()
            near_prob = _dilate(probs, self.tolerance)
        self.add("pred_on_edge", self._histogram(probs[near_edge]))
        self.add("pred_off_edge", self._histogram(probs[~near_edge]))
        self.add("edge_found", self._histogram(near_prob[edge]))
        self.add("edges", edge.sum())

    def _histogram(self, probs: Tensor) -> Tensor:
        """Counts by number of thresholds reached (``probs >= t``), length ``len(grid) + 1``."""
        grid = self.thresholds.to(probs.device, probs.dtype)
        reached = torch.bucketize(probs, grid, right=True)
        return torch.bincount(reached, minlength=len(grid) + 1)

    def result(self) -> dict[str, float]:
        tp_pred, fp = _at_least(self.sums["pred_on_edge"]), _at_least(self.sums["pred_off_edge"])
        tp_edge = _at_least(self.sums["edge_found"])
        f = f_score(safe_div(tp_pred, tp_pred + fp), safe_div(tp_edge, self.sums["edges"]))
        best = int(f.argmax())
        return {"ods_f": float(f[best]), "ods_threshold": float(self.thresholds[best])}


class BSDSMetric(ODSMetric):
    """:class:`ODSMetric` plus BSDS's counts per image (:mod:`mtvision.tasks.edge_bsds`), summed so
    that ranks merge exactly."""

    keys = ("ods_f", "ods_threshold", "bsds_ods_f", "bsds_ois_f")

    def __init__(self, num_thresholds: int, tolerance: int, bsds_thresholds: int, max_dist: float) -> None:
        super().__init__(num_thresholds, tolerance)
        self.bsds = EdgeODS(bsds_thresholds, max_dist)  # its grid and radius; the sums live in self.sums

    def update(self, prediction: Tensor, target: Tensor) -> None:
        super().update(prediction, target)
        probabilities = prediction.detach().float().sigmoid()[:, 0].cpu().numpy()
        for probs, edges in zip(probabilities, target.bool()[:, 0].cpu().numpy()):
            counts = image_counts(probs, edges, self.bsds.thresholds, self.bsds.max_dist)
            self.add("bsds_counts", torch.from_numpy(counts))
            self.add("bsds_ois_counts", torch.from_numpy(counts[:, int(np.argmax(f_measure(counts)[2]))]))
            self.add("bsds_images", torch.tensor(1.0))

    def result(self) -> dict[str, float]:
        ods = EdgeODS(self.bsds.thresholds, self.bsds.max_dist)
        ods.counts, ods.ois_counts = self.sums["bsds_counts"].numpy(), self.sums["bsds_ois_counts"].numpy()
        ods.images = int(self.sums["bsds_images"])
        scores = ods.compute()
        return {**super().result(), "bsds_ods_f": scores["ods_f"], "bsds_ois_f": scores["ois_f"]}


def _at_least(histogram: Tensor) -> Tensor:
    """Count of values reaching threshold ``k`` for each ``k``: reversed cumsum, bucket 0 dropped."""
    return histogram.flip(0).cumsum(0).flip(0)[1:]


def _dilate(maps: Tensor, radius: int) -> Tensor:
    """Grey-level dilation of ``[B, 1, H, W]`` maps by a ``(2r+1)^2`` square."""
    return F.max_pool2d(maps, kernel_size=2 * radius + 1, stride=1, padding=radius)
