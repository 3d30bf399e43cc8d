"""Pictures of predictions and annotations, shared by the data preview, every task's ``draw``
and the prediction composites: numpy ``uint8 [H, W, 3]`` in and out.

* :mod:`~mtvision.draw.colors` — one palette (class ``i`` has one colour everywhere) and the
  colour codes of depth, normals and edges;
* :mod:`~mtvision.draw.instances` — masks, boxes, keypoints, and box labels placed apart;
* :mod:`~mtvision.draw.keys` — legends, colour bars and the normals' ball, drawn under a panel;
* :mod:`~mtvision.draw.layout` — titled panels in a grid of bounded width.

Example:
    >>> import numpy as np
    >>> picture = compose([Panel(np.zeros((32, 32, 3), np.uint8), "input"),
    ...                    Panel(np.zeros((32, 32, 3), np.uint8), "depth", ColorBar("turbo_r", 0, 5, "depth (m)"))])
    >>> picture.shape[1] == 8 + 2 * (32 + 8)  # a border, then two cells and their gaps
    True
"""

from __future__ import annotations

import numpy as np
from PIL import Image as _Image

from mtvision.draw.colors import (
    DEPTH_CMAP,
    VOID_COLOR,
    blend,
    colorize_depth,
    colorize_labels,
    depth_range,
    gray_to_rgb,
    normals_to_rgb,
    palette,
    sphere_normals,
    text_color,
)
from mtvision.draw.instances import draw_box_labels, draw_instances, place_labels
from mtvision.draw.keys import ClassKey, ColorBar, Key, SphereKey, class_key, render_key
from mtvision.draw.layout import Panel, compose, fit_longest, tile
from mtvision.draw.text import caption

__all__ = ["DEPTH_CMAP", "VOID_COLOR", "blend", "colorize_depth", "colorize_labels", "depth_range", "gray_to_rgb",
           "normals_to_rgb", "palette", "sphere_normals", "text_color", "draw_box_labels", "draw_instances",
           "place_labels", "ClassKey", "ColorBar", "Key", "SphereKey", "class_key", "render_key", "Panel", "compose",
           "fit_longest", "tile", "caption", "save_png"]


def save_png(picture: np.ndarray, path: str) -> None:
    """Write an RGB ``uint8`` array as a PNG."""
    _Image.fromarray(picture).save(path)
