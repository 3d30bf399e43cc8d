"""What the pictures show: a composite of bounded size, titles above (never over) their
pictures, box labels apart, and the key to every colour code under its panel."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mtvision.data.synthetic import synthetic_tasks
from mtvision.draw import (
    ClassKey,
    ColorBar,
    Panel,
    SphereKey,
    compose,
    draw_instances,
    fit_longest,
    palette,
    place_labels,
    render_key,
)
from mtvision.draw.instances import overlaps
from mtvision.draw.keys import PAPER
from mtvision.engine.predict import PANEL_SIDE, draw_image
from mtvision.tasks import create_task

RNG = np.random.default_rng(0)


def _photo(h: int, w: int) -> np.ndarray:
    """Noise: no run of white pixels, so any white in a composite is the paper around it."""
    return RNG.integers(0, 200, (h, w, 3), dtype=np.uint8)


def _find(grid: np.ndarray, picture: np.ndarray) -> tuple[int, int]:
    """Where ``picture`` lies, unchanged, inside ``grid`` (its top-left corner)."""
    h, w = picture.shape[:2]
    for y, x in zip(*np.nonzero(np.all(grid == picture[0, 0], axis=-1))):
        if np.array_equal(grid[y:y + h, x:x + w], picture):
            return int(y), int(x)
    raise AssertionError("picture not found unchanged in the composite")


def test_eight_photo_panels_wrap_into_a_grid_of_sane_size() -> None:
    shown = fit_longest(_photo(375, 500), PANEL_SIDE)
    assert shown.shape == (192, 256, 3)
    grid = compose([Panel(shown, f"task {i}") for i in range(8)])
    assert grid.shape[1] <= 1400 and grid.shape[0] < grid.shape[1]  # was 8 x 500 = 4,000 px wide, one row
    assert grid.shape[1] == 8 + 4 * (256 + 8)  # four columns: two rows of four


def test_titles_sit_above_their_pictures_not_over_them() -> None:
    pictures = [_photo(64, 64) for _ in range(3)]
    grid = compose([Panel(p, "classes\nsphere 0.90") for p in pictures], columns=3)
    for picture in pictures:
        y, x = _find(grid, picture)  # the picture is intact: no title was drawn over it
        band = grid[:y, x:x + 64]
        ink = np.nonzero(np.any(band != PAPER, axis=-1))[0]
        assert len(ink) and ink.max() < y  # the title's two lines are drawn, above the picture


def test_labels_of_overlapping_boxes_do_not_cover_each_other() -> None:
    boxes = np.array([[10, 30, 90, 90], [12, 32, 92, 92], [14, 28, 88, 94], [60, 40, 120, 100]], dtype=float)
    sizes = [(50, 14)] * len(boxes)
    spots = place_labels(boxes, sizes, (128, 128))
    rects = [(*s, *size) for s, size in zip(spots, sizes)]
    assert not any(overlaps(a, b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert all(0 <= x <= 128 - 50 and 0 <= y <= 128 - 14 for x, y in spots)  # inside the picture
    picture = draw_instances(np.zeros((128, 128, 3), np.uint8), boxes, [0, 1, 0, 1], ["car", "bike"],
                             scores=[0.9, 0.8, 0.7, 0.6])
    car = palette(2)[0]
    assert np.all(picture == car, axis=-1).sum() > 2 * 12 * 30  # both cars tagged in their colour


def test_every_key_is_drawn_at_the_panel_width() -> None:
    keys = [ClassKey(("floor", "wall"), ((174, 199, 232), (255, 127, 14))), ColorBar("turbo_r", 0, 9.7, "depth (m)"),
            SphereKey(), ClassKey((), (), more=0)]
    for key in keys:
        strip = render_key(key, 256)
        assert strip.shape[1] == 256 and 15 < strip.shape[0] < 90 and (strip != PAPER).any()
    bar = render_key(ColorBar("turbo_r", 0, 9.7, "depth (m)"), 256)
    assert bar[8, 7].astype(int).tolist() == pytest.approx([122, 4, 2], abs=12)  # turbo_r starts dark red (near)


def _model() -> SimpleNamespace:
    infos = synthetic_tasks()
    kinds = {"classes": "classification", "semseg": "semantic_segmentation", "depth": "depth",
             "normals": "normals", "edges": "edges", "objects": "detection"}
    tasks = {name: create_task(kind, name, infos[name], 16, [4, 8, 16, 32]) for name, kind in kinds.items()}
    return SimpleNamespace(tasks=tasks)


def _outputs(size: int) -> dict[str, list[object]]:
    semseg = np.zeros((size, size), np.int64)
    semseg[size // 2:] = 1
    depth = np.linspace(0.5, 6.0, size * size, dtype=np.float32).reshape(size, size)
    normals = np.zeros((3, size, size), np.float32)
    normals[2] = -1.0
    boxes = np.array([[8, 8, 40, 40], [10, 10, 42, 42]], np.float32)
    return {"classes": [{"probs": np.array([0.9, 0.2, 0.7, 0.1]), "labels": [0, 2]}], "semseg": [semseg],
            "depth": [depth], "normals": [normals], "edges": [depth / 6.0],
            "objects": [{"boxes": boxes, "labels": np.array([0, 1]), "scores": np.array([0.9, 0.8]),
                         "image_size": np.array([size, size])}]}


def test_prediction_composite_has_a_key_under_every_coloured_panel() -> None:
    model, image = _model(), _photo(64, 64)
    grid = draw_image(model, image, _outputs(64), 0)
    assert grid.shape[1] <= 1400
    shown = fit_longest(image, PANEL_SIDE)
    assert shown.shape == (256, 256, 3)
    y, x = _find(grid, shown)  # the input, enlarged to the panel size before the tasks draw
    picture_bottom = y + 256
    infos = synthetic_tasks()
    semseg_colors = palette(len(infos["semseg"].classes))[:2]
    object_colors = palette(len(infos["objects"].classes))[:2]
    below = grid[picture_bottom:picture_bottom + 80]  # the key band of the first row
    for color in [*semseg_colors, *object_colors]:
        assert np.all(below == color, axis=-1).sum() >= 100, color  # a swatch of each class shown
    assert _has_colour_bars(grid)


def _has_colour_bars(grid: np.ndarray) -> bool:
    """A row of 200+ pixels that changes colour along its length: a gradient bar."""
    for row in grid:
        changes = np.any(np.diff(row.astype(int), axis=0) != 0, axis=-1)
        runs = np.convolve(changes, np.ones(200, int), "valid")
        if (runs >= 150).any() and len(np.unique(row, axis=0)) > 100:
            return True
    return False
