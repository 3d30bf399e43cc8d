"""Ground truth of the instance, semantic and edge tasks, read off a rendered surface-id map.

Keypoints (``K = 6``, one definition for every shape so that a detector needs one head):

* 0 ``top``: top centre (a sphere's pole, a box's top face or cylinder's cap centre, a cone's apex);
* 1 ``bottom``: bottom centre, on the floor (a sphere's contact point);
* 2 ``base_left`` / 3 ``base_right``: the base corners left / right of ``base_near`` (box), or
  the left / right rim points of a round base (cylinder, cone);
* 4 ``base_near`` / 5 ``base_far``: the base corner or rim point nearest to / farthest from
  the camera. Spheres have no base: their slots 2-5 are always undefined.

The base points are named relative to the camera because the shapes are symmetric: no
detector could tell a box's "corner 0" from its "corner 2". On a round base, left and right
are the rim points where a horizontal line of sight from the camera is tangent, i.e. the
base's extreme left/right as seen. A horizontal flip mirrors the scene about a vertical
plane through the camera, which swaps left and right and keeps near, far, top and bottom:
hence :data:`FLIP_IDX`. ``bottom`` lies under the object and is therefore always occluded.

Visibility (COCO code): 0 slot undefined for the shape or projecting outside the image,
1 occluded, 2 visible. Occlusion is decided exactly, by casting the camera ray through the
keypoint itself against every primitive: a hit nearer than the keypoint by more than 0.1 %
occludes it. (A pixel-centre depth test would wrongly hide corners that lie on silhouettes.)

Edges are the 4-neighbour boundaries of the surface-id map (objects, floor, each wall, sky):
every primitive is convex and objects never interpenetrate, so every depth discontinuity
lies on such a boundary, while a relative-depth threshold would also fire inside a floor
seen at a grazing angle. Both pixels of a differing pair are marked.
"""

from __future__ import annotations

import math

import numpy as np

from mtvision.data.synthetic.geometry import intersect_object, intersect_plane
from mtvision.data.synthetic.render import first_object_id
from mtvision.data.synthetic.scene import SHAPES, Camera, SceneObject, SceneSpec

__all__ = ["KEYPOINT_NAMES", "SKELETON", "FLIP_IDX", "SEMANTIC_CLASSES", "MIN_PIXELS",
           "semantic_map", "edge_map", "instance_masks", "keypoints", "keypoints_3d"]

KEYPOINT_NAMES: list[str] = ["top", "bottom", "base_left", "base_right", "base_near", "base_far"]
SKELETON: list[tuple[int, int]] = [(0, 1), (2, 4), (4, 3), (3, 5), (5, 2)]  # vertical axis + base ring
FLIP_IDX: list[int] = [0, 1, 3, 2, 4, 5]
SEMANTIC_CLASSES: list[str] = ["background", "floor", "wall", *SHAPES]
MIN_PIXELS = 4  # instances with fewer visible pixels are dropped: nothing learnable is left of them
_OCCLUSION_TOLERANCE = 1e-3  # relative depth


def semantic_map(spec: SceneSpec, segment: np.ndarray) -> np.ndarray:
    """``(H, W)`` int64 index into :data:`SEMANTIC_CLASSES`, via a surface-id lookup table."""
    shapes = [SEMANTIC_CLASSES.index(obj.shape) for obj in spec.objects]
    table = np.array([0, 1, *[2] * len(spec.walls), *shapes], dtype=np.int64)
    return table[segment]


def edge_map(segment: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8, 1 where a 4-neighbour hit another surface (module docstring)."""
    edges = np.zeros(segment.shape, dtype=bool)
    across = segment[:, 1:] != segment[:, :-1]
    down = segment[1:, :] != segment[:-1, :]
    edges[:, 1:] |= across
    edges[:, :-1] |= across
    edges[1:, :] |= down
    edges[:-1, :] |= down
    return edges.astype(np.uint8)


def instance_masks(spec: SceneSpec, segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``spec.objects`` of the instances kept (>= :data:`MIN_PIXELS` visible
    pixels) and their ``(N, H, W)`` uint8 visible masks."""
    first = first_object_id(spec)
    counts = np.bincount(segment.ravel(), minlength=first + len(spec.objects))[first:]
    kept = np.flatnonzero(counts >= MIN_PIXELS)
    return kept, (segment[None] == (kept + first)[:, None, None]).astype(np.uint8)


def keypoints(spec: SceneSpec, objects: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(N, K, 2)`` (0 where visibility is 0) and visibility ``(N, K)``
    of the keypoints of ``spec.objects[i]`` for ``i`` in ``objects``."""
    k = len(KEYPOINT_NAMES)
    if len(objects) == 0:
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.int64)
    points, defined = zip(*(keypoints_3d(spec.objects[i], spec.camera) for i in objects))
    world = np.concatenate(points, axis=1)  # (3, N * K)
    cam = spec.camera.rotation @ (world - np.asarray(spec.camera.position)[:, None])
    f, cx, cy = spec.camera.intrinsics(size)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([f * cam[0] / cam[2] + cx, f * cam[1] / cam[2] + cy], axis=1)
    inside = (cam[2] > 1e-6) & (uv >= 0).all(1) & (uv[:, 0] < size[1]) & (uv[:, 1] < size[0])
    inside &= np.concatenate(defined)
    occluded = _occluded(spec, world, cam[2]) & inside
    visibility = np.where(inside, np.where(occluded, 1, 2), 0).reshape(-1, k)
    uv = np.where(inside[:, None], uv, 0).reshape(-1, k, 2)
    return uv.astype(np.float32), visibility.astype(np.int64)


def _occluded(spec: SceneSpec, world: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Whether something lies in front of each world point along its camera ray."""
    origin = np.asarray(spec.camera.position, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        rays = ((world - origin[:, None]) / depth).astype(np.float32)  # camera-frame z = 1: t is z-depth
    nearest = np.full(depth.shape, np.inf, dtype=np.float32)
    for plane in (spec.floor, *spec.walls):
        np.minimum(nearest, intersect_plane(plane, origin, rays), out=nearest)
    for obj in spec.objects:
        np.minimum(nearest, intersect_object(obj, origin, rays), out=nearest)
    return nearest < depth * (1 - _OCCLUSION_TOLERANCE)


def keypoints_3d(obj: SceneObject, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World points ``(3, K)`` of one object and which of its slots are defined ``(K,)``."""
    center = np.asarray(obj.center, dtype=float)
    up = np.array([0.0, 0.0, obj.extent[2]])
    if obj.shape == "sphere":
        base = np.zeros((4, 3))
    else:
        base = (_box_base if obj.shape == "box" else _round_base)(obj, camera) - up
    points = np.concatenate([(center + up)[None], (center - up)[None], center + base]).T
    return points, np.array([True, True] + [obj.shape != "sphere"] * 4)


def _view_axes(obj: SceneObject, camera: Camera) -> tuple[np.ndarray, np.ndarray, float]:
    """Horizontal unit vectors from the object towards the camera and to the camera's
    right, and the horizontal distance to the camera (straight below it: the view's back)."""
    towards = np.array([camera.position[0] - obj.center[0], camera.position[1] - obj.center[1], 0.0])
    distance = float(np.linalg.norm(towards))
    if distance < 1e-9:
        towards, distance = np.array([-camera.rotation[2, 0], -camera.rotation[2, 1], 0.0]), 0.0
    towards /= np.linalg.norm(towards)
    return towards, np.array([-towards[1], towards[0], 0.0]), distance


def _box_base(obj: SceneObject, camera: Camera) -> np.ndarray:
    """Offsets ``(4, 3)`` of the box's bottom corners in slot order (left, right, near, far)."""
    a, b, _ = obj.extent
    corners = np.array([[a, b, 0.0], [-a, b, 0.0], [-a, -b, 0.0], [a, -b, 0.0]]) @ obj.rotation.T  # cyclic
    towards, right, _ = _view_axes(obj, camera)
    near = int(np.argmax(corners @ towards))
    sides = [(near + 1) % 4, (near + 3) % 4]
    left, right_ = sorted(sides, key=lambda i: float(corners[i] @ right))
    return corners[[left, right_, near, (near + 2) % 4]]


def _round_base(obj: SceneObject, camera: Camera) -> np.ndarray:
    """Offsets ``(4, 3)`` of the rim points in slot order: the horizontal tangent points of
    the lines of sight (left, right), then the nearest and the farthest rim point."""
    r = obj.extent[0]
    towards, right, distance = _view_axes(obj, camera)
    cos = min(r / distance, 1.0) if distance > 0 else 1.0
    sin = math.sqrt(1 - cos * cos)
    return r * np.stack([cos * towards - sin * right, cos * towards + sin * right, towards, -towards])
