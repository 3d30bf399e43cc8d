"""Drawing primitives shared by the data preview and every task's ``draw``.

Thin wrappers over ``torchvision.utils`` (boxes, masks, keypoints) and matplotlib
colormaps (depth), so that every picture mtvision writes uses the same colours: class
``i`` has the same colour in a semantic map, a box and a mask.

All functions take and return RGB ``uint8`` numpy arrays ``[H, W, 3]``.

Example:
    >>> import numpy as np
    >>> colorize_labels(np.array([[0, 1], [2, 255]]), 3).shape
    (2, 2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from PIL import Image as PILImage
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

VOID_COLOR = (0, 0, 0)


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (tab20, then HSV), stable for a given class index."""
    base = (np.array(matplotlib.colormaps["tab20"].colors) * 255).astype(np.uint8)
    if n <= len(base):
        return base[:n]
    extra = matplotlib.colormaps["hsv"](np.linspace(0, 1, n - len(base), endpoint=False))[:, :3]
    return np.concatenate([base, (extra * 255).astype(np.uint8)])


def colorize_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class-index map -> colours; indices outside ``[0, num_classes)`` (void) are black."""
    colors = np.concatenate([palette(num_classes), np.array([VOID_COLOR], dtype=np.uint8)])
    index = np.where((labels >= 0) & (labels < num_classes), labels, num_classes)
    return colors[index]


def colorize_depth(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """Metric depth -> turbo colours (near = red... far = blue); invalid (0) pixels black."""
    valid = depth > 0
    top = max_depth or (float(depth[valid].max()) if valid.any() else 1.0)
    scaled = np.clip(1.0 - depth / top, 0.0, 1.0)
    rgb = (matplotlib.colormaps["turbo"](scaled)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = VOID_COLOR
    return rgb


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Unit normals ``[3, H, W]`` -> RGB via ``(n + 1) / 2``; zero vectors black."""
    rgb = ((np.transpose(normals, (1, 2, 0)) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    rgb[~np.any(normals != 0, axis=0)] = VOID_COLOR
    return rgb


def gray_to_rgb(values: np.ndarray) -> np.ndarray:
    """A [0, 1] map (edge probability, mask) as a grey RGB picture."""
    return np.repeat((np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha).astype(np.uint8)


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
    """Boxes with class (and score), masks, and keypoints joined by the skeleton.

    Keypoints with visibility 0 are not drawn; ``masks`` are ``[N, H, W]`` bool.
    """
    canvas = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    colors = [tuple(int(c) for c in palette(len(class_names))[i]) for i in labels]
    if masks is not None and len(masks):
        canvas = draw_segmentation_masks(canvas, torch.as_tensor(masks, dtype=torch.bool), 0.45, colors)
    if len(boxes):
        names = [class_names[i] if scores is None else f"{class_names[i]} {s:.2f}" for i, s in
                 zip(labels, scores if scores is not None else [0.0] * len(labels))]
        canvas = draw_bounding_boxes(canvas, torch.as_tensor(boxes, dtype=torch.float32), names, colors, width=1)
    if keypoints is not None and len(keypoints):
        vis = torch.ones(keypoints.shape[:2], dtype=torch.bool) if visibility is None else torch.as_tensor(visibility) > 0
        canvas = draw_keypoints(canvas, torch.as_tensor(keypoints, dtype=torch.float32), list(skeleton) or None,
                                colors="yellow", radius=2, width=1, visibility=vis)
    return canvas.permute(1, 2, 0).numpy()


def tile(pictures: Sequence[np.ndarray], titles: Sequence[str] | None = None, columns: int = 4) -> np.ndarray:
    """Lay pictures out in a grid (all resized to the first one's size)."""
    h, w = pictures[0].shape[:2]
    cells = [np.asarray(PILImage.fromarray(p).resize((w, h), PILImage.NEAREST)) for p in pictures]
    cells += [np.zeros_like(cells[0])] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
    grid = np.concatenate(rows, axis=0)
    if titles:
        grid = _label_cells(grid, titles, h, w, columns)
    return grid


def _label_cells(grid: np.ndarray, titles: Sequence[str], h: int, w: int, columns: int) -> np.ndarray:
    from PIL import ImageDraw

    picture = PILImage.fromarray(grid)
    pen = ImageDraw.Draw(picture)
    for i, title in enumerate(titles):
        x, y = (i % columns) * w, (i // columns) * h
        pen.text((x + 2, y + 1), title, fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(picture)


def save_png(picture: np.ndarray, path: str) -> None:
    PILImage.fromarray(picture).save(path)
