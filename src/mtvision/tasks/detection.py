"""Object detection, with optional instance masks and keypoints, on the shared pyramid.

Built from torchvision's detection components — an RPN and ``RoIHeads`` with box, mask
and keypoint branches (Mask / Keypoint R-CNN, He et al. 2017) — rather than a detector
written from scratch. What mtvision changes is the plumbing around them:

* image normalisation, resizing and batching stay in mtvision's data pipeline: the
  detector reads the shared FPN features directly (no ``GeneralizedRCNNTransform``);
* one pass serves every task: the same features feed the dense heads;
* partial labels: only the images labelled for this task enter the RPN and RoI heads
  (their feature rows are selected), so unlabelled images contribute no detection loss;
* keypoints are class-agnostic with one fixed set of ``K`` per dataset (one keypoint head,
  as in Keypoint R-CNN); a keypoint a class does not have is simply never visible.

Labels are 0-based in mtvision and shifted by one inside (torchvision's 0 is background).

Example:
    >>> import torch
    >>> from mtvision.structures import TaskInfo
    >>> task = Detection(name="objects", info=TaskInfo(kind="instances", classes=["a", "b"]),
    ...                  channels=16, strides=[4, 8, 16, 32]).eval()
    >>> feats = [torch.randn(1, 16, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    >>> sorted(task(feats, (64, 64))[0])
    ['boxes', 'image_size', 'labels', 'scores']
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, paste_masks_in_image
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

from mtvision.draw import Key, class_key, draw_instances
from mtvision.structures import ImageFrame, Instances, TaskInfo, mask_to_rle, resize_nearest
from mtvision.tasks.base import Metric, Task, register
from mtvision.tasks.detection_metric import DetectionMetric


@register("detection")
class Detection(Task):
    """Boxes (+ masks, + keypoints) with a two-stage R-CNN on the shared FPN.

    Args:
        masks: add the instance-mask branch (Mask R-CNN).
        keypoints: add the keypoint branch; ``K`` comes from ``info.keypoint_names``.
        anchor_scale: anchor side = ``anchor_scale x stride`` per level (torchvision's FPN
            default is 8; 4 suits the small objects of small images).
        score_thresh, nms_thresh, detections_per_img: inference post-processing.
        mask_threshold: probability above which a pasted mask pixel is foreground.
        hidden: width of the box head's two FC layers; mask and keypoint heads use a quarter.
        rois_per_image: RoIs sampled per image for the RoI heads in training (torchvision's
            default 512 is for 800-px images; small images have few objects).
        sampling_ratio: RoIAlign sample points per bin side; 1 quarters the cost of
            torchvision's CPU RoIAlign backward, the detector's bottleneck on CPU.
        proposals: RPN proposals kept per image in training (detectron2's FPN default
            1000; half at inference); images with a few objects need far fewer.
    """

    target_kind = "instances"
    primary_metric = "bbox_ap50"
    # An initial copy of the RPN and RoI heads per scale would more than double the detector,
    # and PAD-Net / MTI-Net supervise dense tasks only; its initial features are still distilled.
    deep_supervision = False

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], masks: bool = False,
                 keypoints: bool = False, anchor_scale: float = 4.0, score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_img: int = 100, mask_threshold: float = 0.5,
                 hidden: int = 128, rois_per_image: int = 64, sampling_ratio: int = 2,
                 proposals: int = 1000) -> None:
        super().__init__(name, info, channels, strides)
        self.with_masks = masks
        self.num_keypoints = len(info.keypoint_names) if keypoints else 0
        if keypoints and not self.num_keypoints:
            raise ValueError(f"task {name!r}: keypoints requested but the dataset names no keypoints")
        self.mask_threshold = mask_threshold
        levels = [str(i) for i in range(len(strides))]
        self.rpn = _rpn(channels, strides, anchor_scale, proposals)
        self.roi_heads = _roi_heads(channels, levels, len(info.classes) + 1, hidden, masks, self.num_keypoints,
                                    rois_per_image, sampling_ratio, score_thresh, nms_thresh, detections_per_img)
        self.metrics_higher_is_better = {m: True for m in _metric_names(masks, bool(self.num_keypoints))}

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> list[dict[str, Tensor]]:
        """Detections per image: boxes XYXY, 0-based labels, scores (+ masks with their 28x28
        box-relative probabilities ``mask_probs``, + keypoints)."""
        return [self.complete(d, image_size) for d in self.detect(features, image_size)]

    def detect(self, features: list[Tensor], image_size: tuple[int, int]) -> list[dict[str, Tensor]]:
        """What a graph computes per image: boxes, 0-based labels, scores (+ 28x28 box-relative
        ``mask_probs``, + ``keypoints`` and ``keypoint_scores``). The ONNX export traces it one
        image at a time (``mtvision.engine.onnx_graph``); :meth:`complete` adds the rest."""
        images, feats = _inputs(features, image_size)
        proposals, _ = self.rpn(images, feats)
        detections, _ = self.roi_heads(feats, proposals, images.image_sizes)
        return [_user_facing(d) for d in detections]

    def forward_train(self, features: list[Tensor], image_size: tuple[int, int], target: list[Instances],
                      present: Tensor) -> tuple[Any, dict[str, Tensor]]:
        """Losses of the labelled images only (their feature rows); no predictions in training.

        In eval mode torchvision's detector computes no loss, so validation gets the batch's
        predictions (like every other task) and no ``"loss"`` entry.
        """
        if not self.training:
            return self(features, image_size), {}
        images, feats = _inputs([f[present] for f in features], image_size)
        targets = [self._torchvision_target(t) for t in target]
        proposals, rpn_losses = self.rpn(images, feats, targets)
        _, roi_losses = self.roi_heads(feats, proposals, images.image_sizes, targets)
        parts = {**rpn_losses, **roi_losses}
        return [], {"loss": sum(parts.values()), **{_PART_NAMES[k]: v.detach() for k, v in parts.items()}}

    def loss(self, prediction: Any, target: Any) -> dict[str, Tensor]:
        raise NotImplementedError("detection losses come from forward_train (the RoI heads sample with targets)")

    def _torchvision_target(self, instances: Instances) -> dict[str, Tensor]:
        """Instances -> torchvision's target dict; crowd and degenerate boxes are left out."""
        boxes = instances.boxes.as_subclass(Tensor).float()
        keep = ~instances.iscrowd.bool() & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        target = {"boxes": boxes[keep], "labels": instances.labels[keep] + 1}
        if self.with_masks:
            if instances.masks is None:
                raise ValueError(f"task {self.name!r} trains masks but an image has instances without masks")
            target["masks"] = instances.masks.as_subclass(Tensor)[keep]
        if self.num_keypoints:
            target["keypoints"] = _keypoint_triplets(instances, self.num_keypoints)[keep]
        return target

    def complete(self, detection: dict[str, Tensor], image_size: tuple[int, int]) -> dict[str, Tensor]:
        """One image's :meth:`detect` output with what needs its resolution: ``image_size`` (the
        frame of the coordinates, for drawing) and the ``masks`` pasted from ``mask_probs``.
        The PyTorch forward and the ONNX predict path both call it: one mask pasting, not two."""
        out = {**detection, "image_size": torch.tensor(image_size)}
        if "mask_probs" in detection:  # kept to paste again at another image's resolution
            out["masks"] = self._paste_masks(detection["mask_probs"], detection["boxes"], image_size)
        return out

    def _paste_masks(self, probs: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
        """``[N, h, w]`` box-relative mask probabilities -> ``[N, H, W]`` boolean image masks."""
        return paste_masks_in_image(probs[:, None], boxes, image_size)[:, 0] > self.mask_threshold

    def make_metric(self) -> Metric:
        return DetectionMetric(self.info, masks=self.with_masks, keypoints=bool(self.num_keypoints))

    def postprocess(self, prediction: list[dict[str, Tensor]]) -> list[dict[str, np.ndarray]]:
        return [{k: v.detach().cpu().numpy() for k, v in p.items()} for p in prediction]

    def to_image_frame(self, output: dict[str, np.ndarray], frame: ImageFrame) -> dict[str, np.ndarray]:
        """Boxes and keypoints through the inverse letterbox; masks pasted again from their
        box-relative probabilities into the mapped boxes at the image's resolution (an enlarged
        model-frame mask would be blocky). ``image_size`` becomes the image's, so :meth:`draw`
        on that image rescales nothing."""
        mapped = {**output, "boxes": frame.boxes_to_original(output["boxes"]), "image_size": np.array(frame.original)}
        if "mask_probs" in output:
            boxes = torch.from_numpy(mapped["boxes"]).float()
            mapped["masks"] = self._paste_masks(torch.from_numpy(output["mask_probs"]), boxes, frame.original).numpy()
        if "keypoints" in output:
            mapped["keypoints"] = frame.points_to_original(output["keypoints"])
        return mapped

    def draw(self, image: np.ndarray, output: dict[str, np.ndarray], min_score: float = 0.3) -> np.ndarray:
        """Detections above ``min_score`` over ``image``, rescaled when it is larger than the model's frame."""
        keep = output["scores"] >= min_score
        sy, sx = (np.array(image.shape[:2]) / output["image_size"]) if "image_size" in output else (1.0, 1.0)
        keypoints = output.get("keypoints")
        return draw_instances(
            image, output["boxes"][keep] * np.array([sx, sy, sx, sy]), output["labels"][keep].tolist(),
            self.info.classes, scores=output["scores"][keep].tolist(),
            masks=resize_nearest(output["masks"][keep], image.shape[:2]) if "masks" in output else None,
            keypoints=keypoints[keep] * np.array([sx, sy]) if keypoints is not None else None,
            skeleton=self.info.skeleton,
        )

    def legend(self, output: dict[str, np.ndarray], min_score: float = 0.3) -> Key:
        """The colours of the classes :meth:`draw` shows, most detected first."""
        return class_key(output["labels"][output["scores"] >= min_score].tolist(), self.info.classes)

    def to_json(self, output: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """One dict per detection: class, score, XYXY box, RLE mask, keypoints [x, y, score]."""
        items = []
        for i in range(len(output["scores"])):
            item: dict[str, Any] = {"class": self.info.classes[int(output["labels"][i])],
                                    "score": round(float(output["scores"][i]), 4),
                                    "box": [round(float(v), 2) for v in output["boxes"][i]]}
            if "masks" in output:
                item["mask"] = mask_to_rle(output["masks"][i])
            if "keypoints" in output:
                item["keypoints"] = [[round(float(x), 2), round(float(y), 2), round(float(s), 3)] for (x, y), s
                                     in zip(output["keypoints"][i], output["keypoint_scores"][i])]
            items.append(item)
        return items


_PART_NAMES = {"loss_objectness": "rpn_objectness", "loss_rpn_box_reg": "rpn_box", "loss_classifier": "cls",
               "loss_box_reg": "box", "loss_mask": "mask", "loss_keypoint": "keypoint"}


def _metric_names(masks: bool, keypoints: bool) -> list[str]:
    kinds = ["bbox"] + (["segm"] if masks else []) + (["kpt"] if keypoints else [])
    return [f"{k}_{m}" for k in kinds for m in ("ap", "ap50", "ap75")]


def _user_facing(detection: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision's detection dict -> mtvision's: 0-based labels, ``[N, 28, 28]`` mask probabilities,
    ``[N, K, 2]`` keypoints with ``[N, K]`` scores."""
    out = {"boxes": detection["boxes"], "labels": detection["labels"] - 1, "scores": detection["scores"]}
    if "masks" in detection:
        out["mask_probs"] = detection["masks"][:, 0]
    if "keypoints" in detection:
        out["keypoints"] = detection["keypoints"][..., :2]
        out["keypoint_scores"] = detection["keypoints_scores"]
    return out


def _inputs(features: list[Tensor], image_size: tuple[int, int]) -> tuple[ImageList, OrderedDict[str, Tensor]]:
    """torchvision's ImageList needs only the padded shape: a zero-cost expanded view."""
    batch = features[0].shape[0]
    canvas = features[0].new_zeros(1).expand(batch, 1, *image_size)
    return ImageList(canvas, [tuple(image_size)] * batch), OrderedDict((str(i), f) for i, f in enumerate(features))


def _keypoint_triplets(instances: Instances, num_keypoints: int) -> Tensor:
    """[N, K, 3] (x, y, visibility) as Keypoint R-CNN expects; missing keypoints = invisible."""
    n = len(instances)
    if instances.keypoints is None:
        return torch.zeros(n, num_keypoints, 3)
    xy = instances.keypoints.as_subclass(Tensor).float()
    return torch.cat([xy, instances.visibility.to(xy.dtype).unsqueeze(-1)], dim=-1)


def _rpn(channels: int, strides: list[int], anchor_scale: float, proposals: int) -> RegionProposalNetwork:
    sizes = tuple((int(anchor_scale * s),) for s in strides)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))
    return RegionProposalNetwork(
        anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
        pre_nms_top_n={"training": 2 * proposals, "testing": proposals},  # per pyramid level
        post_nms_top_n={"training": proposals, "testing": proposals // 2},
        nms_thresh=0.7,
    )


def _roi_heads(channels: int, levels: list[str], num_classes: int, hidden: int, masks: bool, num_keypoints: int,
               rois_per_image: int, sampling_ratio: int, score_thresh: float, nms_thresh: float,
               detections_per_img: int) -> RoIHeads:
    """Light heads: two FC layers for boxes; two narrow convs for masks (14x14 RoIs -> 28x28
    masks) and for keypoints (7x7 RoIs -> 28x28 heatmaps, enough for small objects)."""
    narrow = hidden // 4
    branches: dict[str, Any] = {}
    if masks:
        branches.update(mask_roi_pool=MultiScaleRoIAlign(levels, 14, sampling_ratio),
                        mask_head=MaskRCNNHeads(channels, [narrow] * 2, 1),
                        mask_predictor=MaskRCNNPredictor(narrow, narrow, num_classes))
    if num_keypoints:
        branches.update(keypoint_roi_pool=MultiScaleRoIAlign(levels, 7, sampling_ratio),
                        keypoint_head=KeypointRCNNHeads(channels, [narrow] * 2),
                        keypoint_predictor=KeypointRCNNPredictor(narrow, num_keypoints))
    return RoIHeads(
        MultiScaleRoIAlign(levels, 7, sampling_ratio), TwoMLPHead(channels * 7 * 7, hidden), FastRCNNPredictor(hidden, num_classes),
        fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=rois_per_image, positive_fraction=0.25,
        bbox_reg_weights=None, score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, **branches,
    )
