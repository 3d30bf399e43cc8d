"""What a synthetic scene contains, and how one is drawn at random from a seed.

Sampling is kept apart from rendering (:mod:`mtvision.data.synthetic_render`) so that a
scene can also be written by hand (one sphere at a known place) and its rendered ground
truth checked against closed forms.

World frame: metres, z up, the floor is the plane ``z = 0``. Objects rest on the floor in a
room whose back wall is at ``y = 5`` and side walls at ``x = ±7``; the camera stands at
negative ``y`` looking at the middle of the room from above. Every vector is a plain tuple
so that specs compare, print and pickle as values.

Example:
    >>> spec = sample_scene(7)
    >>> 1 <= len(spec.objects) <= 4 and spec.objects[0].shape in SHAPES
    True
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["SHAPES", "LIGHTING_CLASSES", "Camera", "SceneObject", "Light", "Plane", "SceneSpec",
           "sample_scene", "lighting_label", "cross"]

Vec = tuple[float, float, float]

SHAPES: list[str] = ["sphere", "box", "cylinder", "cone"]
# Where the key light comes from, seen from the camera. Left and right are one class on
# purpose: a horizontal flip (the most common augmentation) must not change the label.
LIGHTING_CLASSES: list[str] = ["front_lit", "side_lit", "back_lit"]
_LIGHT_AZIMUTHS = ((0.0, 30.0), (60.0, 120.0), (150.0, 180.0))  # degrees from the camera side, per class


@dataclass(frozen=True)
class Camera:
    """A pinhole camera without roll, looking from ``position`` at ``target``.

    The focal length is set by ``fov_deg`` across the *shorter* image side, the principal
    point is the image centre and pixel ``(row i, col j)`` has its centre at ``(j + .5, i + .5)``,
    so one scene renders the same content at any resolution or aspect ratio.
    """

    position: Vec
    target: Vec
    fov_deg: float = 55.0

    def __post_init__(self) -> None:
        if math.hypot(self.target[0] - self.position[0], self.target[1] - self.position[1]) < 1e-6:
            raise ValueError(f"Camera at {self.position} looks straight up or down at {self.target}, which leaves "
                             "its roll undefined: move the target sideways")

    @cached_property
    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; rows are the camera's x (right), y (down), z (forward)."""
        forward = _unit(np.subtract(self.target, self.position))
        right = _unit(cross(forward, np.array([0.0, 0.0, 1.0])))
        return np.stack([right, cross(forward, right), forward])

    def intrinsics(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """``(f, cx, cy)`` in pixels for an image of ``(height, width)``."""
        h, w = size
        return 0.5 * min(h, w) / math.tan(math.radians(self.fov_deg) / 2), w / 2, h / 2


@dataclass(frozen=True)
class SceneObject:
    """A solid resting in the scene: its own frame is ``center`` plus a yaw about world z.

    ``extent`` holds the half sizes along the local axes: ``(r, r, r)`` for a sphere,
    ``(a, b, h)`` for a box, ``(r, r, h)`` for a cylinder (|z| <= h) and for a cone (base
    disc of radius r at z = -h, apex at z = +h).
    """

    shape: str
    center: Vec
    extent: Vec
    yaw: float = 0.0
    color: Vec = (0.8, 0.2, 0.2)
    texture: str = "plain"  # "plain", "checker" (solid 3D checker) or "stripes" (horizontal bands)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"SceneObject.shape must be one of {SHAPES}, got {self.shape!r}")

    @cached_property
    def rotation(self) -> np.ndarray:
        """Local-to-world rotation (yaw about z)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    @property
    def radius(self) -> float:
        """Radius of a sphere around ``center`` that holds the whole object (for culling)."""
        return float(np.linalg.norm(self.extent))

    @property
    def footprint(self) -> float:
        """Radius of a circle around the centre that holds the object's floor footprint."""
        a, b, _ = self.extent
        return math.hypot(a, b) if self.shape == "box" else a


@dataclass(frozen=True)
class Light:
    """A directional light; ``direction`` is the unit vector *towards* the light."""

    direction: Vec
    intensity: float = 0.8
    shadows: bool = True


@dataclass(frozen=True)
class Plane:
    """An infinite plane ``{x : normal . x = offset}``; ``normal`` faces into the room."""

    normal: Vec
    offset: float
    color: Vec = (0.6, 0.6, 0.6)
    texture: str = "checker"  # "checker" over the plane or "stripes" (vertical bands)
    tile: float = 1.0  # texture period in metres


@dataclass(frozen=True)
class SceneSpec:
    """Everything the renderer needs. ``lights[0]`` is the key light: it casts shadows and
    defines the ``"lighting"`` label. Walls never cast shadows (the light is in the room)."""

    camera: Camera
    objects: tuple[SceneObject, ...]
    lights: tuple[Light, ...]
    floor: Plane = Plane((0.0, 0.0, 1.0), 0.0)
    walls: tuple[Plane, ...] = ()
    ambient: float = 0.3
    sky: Vec = (0.62, 0.75, 0.9)


def lighting_label(spec: SceneSpec) -> int:
    """Index into :data:`LIGHTING_CLASSES`: the key light's azimuth from the camera side
    (< 45 deg front, < 135 deg side, else back; a light straight overhead counts as side), read
    off the spec so that hand-made scenes get it too."""
    light = np.asarray(spec.lights[0].direction, dtype=float)
    to_camera = np.subtract(spec.camera.position, spec.camera.target)
    cos = np.dot(_unit(light[:2]), _unit(to_camera[:2]))
    angle = math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))
    return 0 if angle < 45 else 1 if angle < 135 else 2


def sample_scene(seed: int, max_objects: int = 4, walls: bool = True) -> SceneSpec:
    """Draw a random scene of 1 to ``max_objects`` objects (none if it is 0: empty negatives);
    independent of the image size, so one seed is one scene at every resolution."""
    if max_objects < 0:
        raise ValueError(f"max_objects must be >= 0, got {max_objects}")
    rng = np.random.default_rng(seed)
    camera = _sample_camera(rng)
    objects = _sample_objects(rng, camera, int(rng.integers(min(1, max_objects), max_objects + 1)))
    floor_color = _hsv(rng, s=(0.0, 0.2), v=(0.45, 0.7))
    wall_color = _hsv(rng, s=(0.05, 0.25), v=(0.6, 0.85))
    room = tuple(Plane(n, off, wall_color, "stripes", float(rng.uniform(0.4, 1.2)))
                 for n, off in (((0.0, -1.0, 0.0), -5.0), ((1.0, 0.0, 0.0), -7.0), ((-1.0, 0.0, 0.0), -7.0)))
    return SceneSpec(camera=camera, objects=objects, lights=_sample_lights(rng, camera),
                     floor=Plane((0.0, 0.0, 1.0), 0.0, floor_color, "checker", float(rng.uniform(0.6, 1.4))),
                     walls=room if walls else (), ambient=float(rng.uniform(0.2, 0.35)))


def _sample_camera(rng: np.random.Generator) -> Camera:
    """Look at the middle of the floor from 5.5-8 m, 25-45 deg above, within 25 deg of -y."""
    target = (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 1.0)), 0.0)
    dist, elev, azim = rng.uniform(5.5, 8.0), math.radians(rng.uniform(25, 45)), math.radians(rng.uniform(-25, 25))
    offset = dist * np.array([math.cos(elev) * math.sin(azim), -math.cos(elev) * math.cos(azim), math.sin(elev)])
    return Camera(_vec(np.add(target, offset)), target, float(rng.uniform(50, 60)))


def _sample_objects(rng: np.random.Generator, camera: Camera, count: int) -> tuple[SceneObject, ...]:
    """Place up to ``count`` objects on the visible floor without overlaps (rejection
    sampling: an object that finds no free place in 20 tries is left out)."""
    placed: list[SceneObject] = []
    for _ in range(count):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        extent, yaw = _sample_extent(rng, shape), float(rng.uniform(0, math.pi))
        color, texture = _hsv(rng, s=(0.5, 0.95), v=(0.55, 0.95)), ("plain", "checker", "stripes")[int(rng.integers(3))]
        for _ in range(20):
            obj = SceneObject(shape, (*_floor_point(rng, camera), extent[2]), extent, yaw, color, texture)
            if _fits(obj, placed):
                placed.append(obj)
                break
    return tuple(placed)


def _sample_extent(rng: np.random.Generator, shape: str) -> Vec:
    """Half sizes that make objects 10-40 % of the image at the sampled distances."""
    if shape == "sphere":
        return (r := float(rng.uniform(0.4, 0.8)), r, r)
    if shape == "box":
        return _vec(rng.uniform((0.3, 0.3, 0.25), (0.7, 0.7, 0.7)))
    r, h = float(rng.uniform(0.3, 0.65)), float(rng.uniform(0.35, 0.8))
    return (r, r, h)


def _floor_point(rng: np.random.Generator, camera: Camera) -> tuple[float, float]:
    """A floor point seen in the central square of the view, from just above its middle row
    to near its bottom (a camera 25+ deg above the horizon with a 60- deg view sees floor there)."""
    f, _, _ = camera.intrinsics((1, 1))
    a, b = rng.uniform(0.15, 0.85), rng.uniform(0.45, 0.88)
    d = camera.rotation.T @ np.array([(a - 0.5) / f, (b - 0.5) / f, 1.0])
    p = np.asarray(camera.position) - camera.position[2] / d[2] * d
    return float(p[0]), float(p[1])


def _fits(obj: SceneObject, placed: list[SceneObject]) -> bool:
    """Inside the room and 10 cm away from every object placed before."""
    x, y, _ = obj.center
    r = obj.footprint
    return abs(x) < 7 - r and y < 5 - r and all(
        math.dist((x, y), o.center[:2]) > r + o.footprint + 0.1 for o in placed)


def _sample_lights(rng: np.random.Generator, camera: Camera) -> tuple[Light, ...]:
    """A key light in one of the :data:`LIGHTING_CLASSES` azimuth bands, plus a weak
    shadowless fill from the camera so that faces turned from the key light are not black."""
    lo, hi = _LIGHT_AZIMUTHS[int(rng.integers(len(_LIGHT_AZIMUTHS)))]
    azim = math.radians(rng.uniform(lo, hi)) * (1 if rng.random() < 0.5 else -1)
    elev = math.radians(rng.uniform(30, 60))
    back = _unit(np.subtract(camera.position, camera.target)[:2])
    c, s = math.cos(azim), math.sin(azim)
    horizontal = np.array([c * back[0] - s * back[1], s * back[0] + c * back[1]]) * math.cos(elev)
    key = Light(_vec((*horizontal, math.sin(elev))), float(rng.uniform(0.75, 0.95)), shadows=True)
    fill = Light(_vec(_unit(np.subtract(camera.position, camera.target))), 0.15, shadows=False)
    return key, fill


def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (``np.cross`` costs 20x more for a single pair)."""
    return np.array([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]], dtype=u.dtype)


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> Vec:
    return colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(*s)), float(rng.uniform(*v)))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return np.asarray(v, dtype=float) / (norm if norm > 0 else 1.0)


def _vec(v: np.ndarray) -> Vec:
    return float(v[0]), float(v[1]), float(v[2])
