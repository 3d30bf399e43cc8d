"""Outer outlines of a binary mask as polygons, for formats that hold polygons only (YOLO segment).

Traced by contourpy (matplotlib's marching-squares engine) at level 0.5 of the mask padded
with one empty pixel: each outline runs halfway between inside and outside pixel centres, so
pycocotools rasterises it back to the same pixels (marching squares only cuts each corner by
half a pixel), and a region that touches the image border still closes. Holes are dropped: a
list of polygons cannot mark a ring as a hole (pycocotools and Ultralytics fill every ring).

Example:
    >>> import numpy as np
    >>> mask = np.zeros((4, 5), np.uint8)
    >>> mask[1:3, 1:4] = 1
    >>> mask_outlines(mask)  # pixels 1-3 of rows 1-2 span x 1..4, y 1..3
    [[1.0, 1.5, 1.5, 1.0, 2.5, 1.0, 3.5, 1.0, 4.0, 1.5, 4.0, 2.5, 3.5, 3.0, 2.5, 3.0, 1.5, 3.0, 1.0, 2.5]]
"""

from __future__ import annotations

import numpy as np
from contourpy import FillType, contour_generator

from mtvision.structures import Polygons


def mask_outlines(mask: np.ndarray) -> Polygons:
    """One flat ``[x0, y0, x1, y1, ...]`` outline per region of the ``[H, W]`` mask, in pixel-edge
    coordinates (pixel ``(i, j)`` spans ``[j, j + 1) x [i, i + 1)``); ``[]`` for an empty mask."""
    padded = np.pad(mask.astype(bool), 1).astype(np.float64)
    regions, starts = contour_generator(z=padded, fill_type=FillType.OuterOffset).filled(0.5, 1.5)
    # Padded index k is pixel k - 1, whose centre lies at k - 0.5; each ring repeats its first point last.
    return [(points[ring[0]:ring[1] - 1] - 0.5).ravel().tolist() for points, ring in zip(regions, starts)]
