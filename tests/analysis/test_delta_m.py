"""Δm against hand-computed numbers, its error cases, and the seed summary."""

from __future__ import annotations

import statistics

import pytest

from mtvision.analysis.delta_m import DeltaM, delta_m, relative_change, summarise

DIRECTIONS = {"seg": {"miou": True, "pixel_acc": True}, "depth": {"rmse": False, "abs_rel": False}}
SINGLE = {"seg/miou": 0.40, "seg/pixel_acc": 0.80, "depth/rmse": 0.50, "depth/abs_rel": 0.20}
MULTI = {"seg/miou": 0.50, "seg/pixel_acc": 0.72, "depth/rmse": 0.45, "depth/abs_rel": 0.21}


def test_two_tasks_mixed_directions_by_hand() -> None:
    # seg   miou      ↑  (0.50 − 0.40) / 0.40 = +25 %
    #       pixel_acc ↑  (0.72 − 0.80) / 0.80 = −10 %      → seg   = (25 − 10) / 2 = 7.5 %
    # depth rmse      ↓ −(0.45 − 0.50) / 0.50 = +10 %
    #       abs_rel   ↓ −(0.21 − 0.20) / 0.20 =  −5 %      → depth = (10 − 5) / 2  = 2.5 %
    # Δm = (7.5 + 2.5) / 2 = 5.0 %
    result = delta_m(MULTI, SINGLE, DIRECTIONS)
    assert isinstance(result, DeltaM)
    assert result.per_task == pytest.approx({"seg": 7.5, "depth": 2.5})
    assert result.mean == pytest.approx(5.0)


def test_each_task_weighs_the_same_whatever_its_metric_count() -> None:
    # seg keeps one metric (+25 %), depth two (mean 2.5 %): Δm = (25 + 2.5) / 2, not (25 + 10 − 5) / 3.
    directions = {"seg": {"miou": True}, "depth": DIRECTIONS["depth"]}
    assert delta_m(MULTI, SINGLE, directions).mean == pytest.approx(13.75)


def test_metrics_missing_from_one_side_or_from_directions_do_not_count() -> None:
    multi = {**MULTI, "seg/boundary_f": 0.9}  # not in single
    single = {**SINGLE, "depth/delta1": 0.8, "seg/extra": 1.0}  # not in multi / not in directions
    directions = {**DIRECTIONS, "seg": {**DIRECTIONS["seg"], "boundary_f": True}}
    assert delta_m(multi, single, directions).mean == pytest.approx(5.0)


def test_relative_change_sign_follows_direction() -> None:
    assert relative_change(0.6, 0.5, higher_is_better=True) == pytest.approx(20.0)
    assert relative_change(0.6, 0.5, higher_is_better=False) == pytest.approx(-20.0)
    assert relative_change(-1.5, -1.0, higher_is_better=True) == pytest.approx(50.0)  # as the formula reads
    with pytest.raises(ZeroDivisionError):
        relative_change(1.0, 0.0, higher_is_better=True)


def test_task_without_shared_metric_is_named() -> None:
    with pytest.raises(ValueError, match=r"'normals'.*normals/mean_angle"):
        delta_m(MULTI, SINGLE, {**DIRECTIONS, "normals": {"mean_angle": False}})
    with pytest.raises(ValueError, match="'depth'"):
        delta_m({k: v for k, v in MULTI.items() if not k.startswith("depth")}, SINGLE, DIRECTIONS)


def test_zero_single_task_metric_is_named() -> None:
    with pytest.raises(ValueError, match="'depth/rmse'"):
        delta_m(MULTI, {**SINGLE, "depth/rmse": 0.0}, DIRECTIONS)


def test_no_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="no task"):
        delta_m(MULTI, SINGLE, {})


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0], [0.3, -1.2, 5.5, 2.25], [7.0, 7.0]])
def test_summarise_matches_statistics(values: list[float]) -> None:
    mean, std = summarise(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert std == pytest.approx(statistics.stdev(values))


def test_summarise_one_value_and_none() -> None:
    assert summarise([3.5]) == (3.5, 0.0)
    with pytest.raises(ValueError):
        summarise([])
