"""The built-in synthetic scenes (DESIGN §5): a room of primitives ray-cast with exact ground truth.

* :mod:`~mtvision.data.synthetic.scene` — what a scene holds and how one is drawn from a seed;
* :mod:`~mtvision.data.synthetic.geometry` / :mod:`~mtvision.data.synthetic.render` — ray casting and shading;
* :mod:`~mtvision.data.synthetic.targets` — instance, semantic and edge truth read off the render;
* :mod:`~mtvision.data.synthetic.scenes` — a scene as a :class:`~mtvision.structures.Sample`, and the dataset;
* :mod:`~mtvision.data.synthetic.combined_writer` — tensor samples written out in the combined format.
"""

from mtvision.data.synthetic import scenes as _scenes
from mtvision.data.synthetic.scenes import *  # noqa: F403  (the public API of the room is scenes's)

__all__ = _scenes.__all__
