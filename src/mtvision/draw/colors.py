"""Colours: one palette for every picture (class ``i`` has the same colour in a semantic
map, a box and a mask), and the colour codes of dense maps (depth, normals, edges).

All functions take and return RGB ``uint8`` numpy arrays ``[H, W, 3]``.

Example:
    >>> import numpy as np
    >>> colorize_labels(np.array([[0, 1], [2, 255]]), 3).shape
    (2, 2, 3)
"""

from __future__ import annotations

import matplotlib
import numpy as np

VOID_COLOR = (0, 0, 0)
DEPTH_CMAP = "turbo_r"  # near = red, far = blue: the colour bar under a depth picture reads left to right


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


def depth_range(depth: np.ndarray) -> float:
    """The far end of the depth colours: the largest valid depth (1 when none is valid)."""
    valid = depth > 0
    return float(depth[valid].max()) if valid.any() else 1.0


def colorize_depth(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """Metric depth -> turbo colours from 0 (red) to ``max_depth`` (blue); invalid (0) pixels black."""
    top = max_depth or depth_range(depth)
    rgb = (matplotlib.colormaps[DEPTH_CMAP](np.clip(depth / top, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)
    rgb[~(depth > 0)] = VOID_COLOR
    return rgb


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Unit normals ``[3, H, W]`` -> RGB via ``(n + 1) / 2``; zero vectors black."""
    rgb = ((np.transpose(normals, (1, 2, 0)) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    rgb[~np.any(normals != 0, axis=0)] = VOID_COLOR
    return rgb


def sphere_normals(size: int) -> np.ndarray:
    """``[3, size, size]`` normals of a sphere seen by the camera (OpenCV frame: x right, y down,
    z forward, so a visible surface has z < 0); zero outside the disc. Drawn with
    :func:`normals_to_rgb` it is the key to the normal colours: each colour sits where a
    surface facing that way would be seen on a ball."""
    v, u = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    inside = u ** 2 + v ** 2 <= 1.0
    z = -np.sqrt(np.clip(1.0 - u ** 2 - v ** 2, 0.0, 1.0))
    return np.where(inside, np.stack([u, v, z]), 0.0)


def gray_to_rgb(values: np.ndarray) -> np.ndarray:
    """A [0, 1] map (edge probability, mask) as a grey RGB picture."""
    return np.repeat((np.clip(values, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha).astype(np.uint8)


def text_color(background: tuple[int, int, int] | np.ndarray) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (ITU-R BT.601 luma), so labels stay readable."""
    r, g, b = (int(c) for c in background)
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
