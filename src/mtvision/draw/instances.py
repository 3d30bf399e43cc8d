"""Objects on a picture: masks, boxes, keypoints with their skeleton, and box labels that do
not cover each other.

torchvision's ``draw_bounding_boxes`` writes each label at its box's top-left corner, so
the labels of overlapping boxes print on top of one another. Here labels are placed one
by one, most confident first, at the first free spot among a few around the box (above
it, inside its top, below it, inside its bottom, on either side), then slid down the box
until free; only when nothing is free does a label overlap another.

Example:
    >>> import numpy as np
    >>> boxes = np.array([[2, 20, 60, 60], [4, 22, 62, 62]], dtype=float)  # nearly the same box
    >>> spots = place_labels(boxes, [(30, 10), (30, 10)], (64, 64))
    >>> spots[0] != spots[1] and not overlaps((*spots[0], 30, 10), (*spots[1], 30, 10))
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

from mtvision.draw.colors import palette, text_color
from mtvision.draw.text import font, font_size_for, text_size

Rect = tuple[float, float, float, float]  # x, y, width, height


def draw_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    scores: Sequence[float] | None = None,
    masks: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    visibility: np.ndarray | None = None,
    skeleton: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Boxes with class (and score) labels placed apart, masks, and keypoints joined by the skeleton.

    Keypoints with visibility 0 are not drawn; ``masks`` are ``[N, H, W]`` bool.
    """
    canvas = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # a writable copy
    colors = [tuple(int(c) for c in palette(len(class_names))[i]) for i in labels]
    if masks is not None and len(masks):
        canvas = draw_segmentation_masks(canvas, torch.as_tensor(masks, dtype=torch.bool), 0.45, colors)
    if len(boxes):
        width = max(1, min(image.shape[:2]) // 150)
        canvas = draw_bounding_boxes(canvas, torch.as_tensor(boxes, dtype=torch.float32), colors=colors, width=width)
    if keypoints is not None and len(keypoints):
        vis = torch.ones(keypoints.shape[:2], dtype=torch.bool) if visibility is None else torch.as_tensor(visibility) > 0
        canvas = draw_keypoints(canvas, torch.as_tensor(keypoints, dtype=torch.float32), list(skeleton) or None,
                                colors="yellow", radius=2, width=1, visibility=vis)
    picture = canvas.permute(1, 2, 0).numpy()
    if len(boxes):
        names = [class_names[i] if scores is None else f"{class_names[i]} {s:.2f}"
                 for i, s in zip(labels, scores if scores is not None else [0.0] * len(labels))]
        picture = draw_box_labels(picture, np.asarray(boxes, dtype=float), names, colors, scores)
    return picture


def draw_box_labels(picture: np.ndarray, boxes: np.ndarray, names: Sequence[str],
                    colors: Sequence[tuple[int, int, int]], scores: Sequence[float] | None = None) -> np.ndarray:
    """Each name on a tag of its box's colour, at a spot :func:`place_labels` keeps free."""
    size = font_size_for(min(picture.shape[:2]))
    sizes = [(w + 4, h + 3) for w, h in (text_size(name, size) for name in names)]
    order = np.argsort(-np.asarray(scores), kind="stable") if scores is not None else np.arange(len(names))
    spots = place_labels(boxes[order], [sizes[i] for i in order], picture.shape[:2])
    image = Image.fromarray(picture)
    pen = ImageDraw.Draw(image)
    for i, (x, y) in zip(order, spots):
        w, h = sizes[i]
        pen.rectangle((x, y, x + w - 1, y + h - 1), fill=colors[i])
        pen.text((x + 2, y + 1), names[i], fill=text_color(colors[i]), font=font(size))
    return np.asarray(image)


def place_labels(boxes: np.ndarray, sizes: Sequence[tuple[int, int]], shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners for labels of ``sizes`` (w, h) next to ``boxes`` (XYXY), in order, apart.

    Greedy: each label takes the first candidate inside the picture that overlaps no label
    placed before it; with none free it takes the first candidate (an overlap beats a
    label drawn off the picture).
    """
    placed: list[Rect] = []
    spots = []
    for (x1, y1, x2, y2), (w, h) in zip(boxes, sizes):
        candidates = [_clamp(x, y, w, h, shape) for x, y in _candidates(x1, y1, x2, y2, w, h)]
        free = next((c for c in candidates if not any(overlaps((*c, w, h), p) for p in placed)), candidates[0])
        placed.append((*free, w, h))
        spots.append(free)
    return spots


def overlaps(a: Rect, b: Rect) -> bool:
    """Whether two ``(x, y, w, h)`` rectangles share any pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _candidates(x1: float, y1: float, x2: float, y2: float, w: int, h: int) -> list[tuple[float, float]]:
    """Spots around a box, the most natural first (above its top-left, as every detector draws)."""
    corners = [(x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h), (x2 - w, y1 - h), (x2 - w, y1),
               (x2 - w, y2), (x2, y1), (x1 - w, y1)]
    slide = [(x1, y) for y in np.arange(y1 + h, y2 - h, h)]  # down the box's left side
    return corners + slide


def _clamp(x: float, y: float, w: int, h: int, shape: tuple[int, int]) -> tuple[int, int]:
    """The spot moved inside the picture (a label cut by the border cannot be read)."""
    height, width = shape
    return int(min(max(x, 0), max(width - w, 0))), int(min(max(y, 0), max(height - h, 0)))
