"""Ray casting against analytic primitives, vectorised over rays in numpy.

No library intersects rays with a handful of analytic solids on the CPU, so it is written
here. Rays and points are channel-first arrays ``(3, ...)`` (each component contiguous);
an origin may also be a single ``(3,)`` point and a direction ``(3, 1)`` (broadcasting).
Every ``intersect_*`` returns the ray parameter ``t`` of the nearest hit with
``t > t_min`` and ``+inf`` on a miss. Directions need not be unit: the renderer casts rays
whose camera-frame z is 1, so ``t`` *is* the z-depth of the hit.

Objects are intersected in their own frame (centre at the origin, axes along the extent),
after moving each ray origin to the ray's point closest to the object centre: then no
quadratic subtracts two large numbers, which keeps float32 exact to ~1e-6 relative.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mtvision.data.synthetic.scene import Plane, SceneObject

__all__ = ["intersect_plane", "intersect_object", "to_local", "object_normals"]

Array = np.ndarray
_INF = np.float32(np.inf)


def intersect_plane(plane: Plane, origin: Array, direction: Array, t_min: float | Array = 1e-4) -> Array:
    """Hit of the plane ``n . x = offset`` (either side)."""
    n = np.asarray(plane.normal, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.float32(plane.offset) - _dot(n, origin)) / _dot(n, direction)
    return np.where(t > t_min, t, _INF)


def intersect_object(obj: SceneObject, origin: Array, direction: Array, t_min: float | Array = 1e-4) -> Array:
    """Nearest hit of ``obj`` along the rays (see the module docstring for the recentring)."""
    o, d = to_local(obj, origin), _rotate(obj.rotation.T, direction)
    o = o.reshape(o.shape + (1,) * (d.ndim - o.ndim))  # a single origin for all rays
    t0 = -_dot(o, d) / _dot(d, d)
    o = o + t0 * d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return t0 + _INTERSECT[obj.shape](o, d, np.asarray(obj.extent, dtype=np.float32), t_min - t0)


def to_local(obj: SceneObject, points: Array) -> Array:
    """World points ``(3, ...)`` in the object's frame."""
    centered = points - np.asarray(obj.center, dtype=np.float32).reshape((3,) + (1,) * (points.ndim - 1))
    return _rotate(obj.rotation.T, centered)


def object_normals(obj: SceneObject, local_points: Array) -> Array:
    """Outward unit normals, in the world frame, at surface points given in the local frame."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = _NORMAL[obj.shape](local_points, np.asarray(obj.extent, dtype=np.float32))
    n = n / np.maximum(np.sqrt(_dot(n, n)), np.float32(1e-12))
    return _rotate(obj.rotation, n)


# --- canonical shapes (local frame, centre at the origin) ----------------------------------

def _sphere(o: Array, d: Array, e: Array, t_min: Array) -> Array:
    a, b, c = _dot(d, d), _dot(o, d), _dot(o, o) - e[0] ** 2
    return _nearest(t_min, *((t, True) for t in _quadratic_hits(a, b, c)))


def _box(o: Array, d: Array, e: Array, t_min: Array) -> Array:
    """Slab test: the ray is inside the box between the last entry and the first exit."""
    e = e.reshape((3,) + (1,) * (o.ndim - 1))
    inv = 1 / d
    near, far = (-e - o) * inv, (e - o) * inv
    t_in = np.minimum(near, far).max(axis=0)
    t_out = np.maximum(near, far).min(axis=0)
    hit = t_out >= np.maximum(t_in, t_min)
    return np.where(hit, np.where(t_in > t_min, t_in, t_out), _INF)


def _cylinder(o: Array, d: Array, e: Array, t_min: Array) -> Array:
    """Side: x^2 + y^2 = r^2 with |z| <= h; caps: z = +-h with x^2 + y^2 <= r^2."""
    r, h = e[0], e[2]
    a, b, c = d[0] ** 2 + d[1] ** 2, o[0] * d[0] + o[1] * d[1], o[0] ** 2 + o[1] ** 2 - r ** 2
    sides = [(t, np.abs(o[2] + t * d[2]) <= h) for t in _quadratic_hits(a, b, c)]
    return _nearest(t_min, *sides, _cap(o, d, r, h), _cap(o, d, r, -h))


def _cone(o: Array, d: Array, e: Array, t_min: Array) -> Array:
    """Side: x^2 + y^2 = k^2 (h - z)^2 with k = r / 2h and |z| <= h; base cap at z = -h."""
    r, h = e[0], e[2]
    k2, w = (r / (2 * h)) ** 2, h - o[2]
    a = d[0] ** 2 + d[1] ** 2 - k2 * d[2] ** 2
    b = o[0] * d[0] + o[1] * d[1] + k2 * w * d[2]
    c = o[0] ** 2 + o[1] ** 2 - k2 * w ** 2
    sides = [(t, np.abs(o[2] + t * d[2]) <= h) for t in _quadratic_hits(a, b, c)]
    return _nearest(t_min, *sides, _cap(o, d, r, -h))


def _quadratic_hits(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    """Both roots of ``a t^2 + 2 b t + c = 0`` (+inf where none), the stable way, so a
    ray nearly parallel to a cone's side (a -> 0) still gets its one finite root."""
    disc = b * b - a * c
    q = -(b + np.copysign(np.sqrt(np.maximum(disc, 0)), b))
    t1, t2 = q / a, c / q
    real = disc >= 0
    return np.where(real, t1, _INF), np.where(real, t2, _INF)


def _cap(o: Array, d: Array, r: Array, z: Array) -> tuple[Array, Array]:
    """Hit of the disc of radius ``r`` in the plane at height ``z``."""
    t = (z - o[2]) / d[2]
    return t, (o[0] + t * d[0]) ** 2 + (o[1] + t * d[1]) ** 2 <= r * r


def _nearest(t_min: Array, *candidates: tuple[Array, Array | bool]) -> Array:
    """The smallest candidate ``t`` that is valid and beyond ``t_min``."""
    best = np.full(np.broadcast_shapes(*(t.shape for t, _ in candidates)), _INF, dtype=np.float32)
    for t, ok in candidates:
        np.minimum(best, np.where(ok & (t > t_min), t, _INF), out=best)
    return best


def _sphere_normal(p: Array, e: Array) -> Array:
    return p


def _box_normal(p: Array, e: Array) -> Array:
    """The face whose slab the point is most outside of (relative to the half size)."""
    axis = np.argmax(np.abs(p) / e.reshape(3, 1), axis=0)
    return np.where(np.arange(3).reshape(3, 1) == axis, np.sign(p), np.float32(0))


def _cylinder_normal(p: Array, e: Array) -> Array:
    radial = np.sqrt(p[0] ** 2 + p[1] ** 2)
    on_cap = np.abs(p[2]) / e[2] > radial / e[0]
    zero = np.zeros_like(p[0])
    return np.where(on_cap, np.stack([zero, zero, np.sign(p[2])]), np.stack([p[0], p[1], zero]))


def _cone_normal(p: Array, e: Array) -> Array:
    """Base cap if the point is nearer the base plane than the side, else the side's gradient."""
    r, h = e[0], e[2]
    k = r / (2 * h)
    radial = np.sqrt(p[0] ** 2 + p[1] ** 2)
    on_base = np.abs(p[2] + h) < np.abs(radial - k * (h - p[2]))
    zero = np.zeros_like(p[0])
    radial = np.maximum(radial, np.float32(1e-12))  # the apex itself
    side = np.stack([p[0] / radial, p[1] / radial, np.full_like(radial, k)])
    return np.where(on_base, np.stack([zero, zero, zero - 1]), side)


_INTERSECT: dict[str, Callable[[Array, Array, Array, Array], Array]] = {
    "sphere": _sphere, "box": _box, "cylinder": _cylinder, "cone": _cone}
_NORMAL: dict[str, Callable[[Array, Array], Array]] = {
    "sphere": _sphere_normal, "box": _box_normal, "cylinder": _cylinder_normal, "cone": _cone_normal}


def _dot(u: Array, v: Array) -> Array:
    """Dot product over the leading (component) axis, broadcasting the rest."""
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _rotate(m: np.ndarray, v: Array) -> Array:
    """``m @ v`` for a 3x3 matrix and channel-first vectors, staying in float32."""
    return (m.astype(np.float32) @ v.reshape(3, -1)).reshape(v.shape)
