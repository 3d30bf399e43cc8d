"""The built-in synthetic scenes (DESIGN §5): a room of primitives ray-cast with exact ground truth.

* :mod:`~mtvision.data.synthetic.scene` — what a scene holds and how one is drawn from a seed;
* :mod:`~mtvision.data.synthetic.geometry` / :mod:`~mtvision.data.synthetic.render` — ray casting and shading;
* :mod:`~mtvision.data.synthetic.targets` — instance, semantic and edge truth read off the render;
* :mod:`~mtvision.data.synthetic.scenes` — a scene as a :class:`~mtvision.structures.Sample`, and the dataset;
* :mod:`~mtvision.data.synthetic.combined_writer` — tensor samples written out in the combined format.
"""

from mtvision.data.synthetic.scenes import (
                                            FLIP_IDX,
                                            KEYPOINT_NAMES,
                                            LIGHTING_CLASSES,
                                            MIN_PIXELS,
                                            SEMANTIC_CLASSES,
                                            SHAPES,
                                            SKELETON,
                                            Camera,
                                            Light,
                                            Plane,
                                            SceneObject,
                                            SceneSpec,
                                            SyntheticDataset,
                                            render,
                                            render_scene,
                                            sample_scene,
                                            synthetic_tasks,
)

__all__ = ["SHAPES", "SEMANTIC_CLASSES", "LIGHTING_CLASSES", "KEYPOINT_NAMES", "SKELETON", "FLIP_IDX", "MIN_PIXELS",
           "Camera", "Light", "Plane", "SceneObject", "SceneSpec", "sample_scene", "synthetic_tasks",
           "render", "render_scene", "SyntheticDataset"]
