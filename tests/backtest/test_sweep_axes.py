"""The sweep's axis grammar: exact decimal ranges, typed values, and clear refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtest.sweep_axes import (
    MAX_POINTS,
    Axis,
    SweepError,
    apply_point,
    axes_from_options,
    combine_axes,
    grid_points,
    parse_axis,
    sweepable_fields,
)
from settings.grid import default_params


def test_range_includes_a_stop_on_the_grid_with_exact_decimal_values():
    axis = parse_axis("atr_grid_factor=0.26:0.40:0.02")

    assert axis == Axis("atr_grid_factor", (0.26, 0.28, 0.30, 0.32, 0.34, 0.36, 0.38, 0.40))
    assert 0.1 + 0.2 != 0.3 and 0.3 in axis.values  # a float accumulator would have drifted off 0.3


def test_range_stops_at_the_last_value_below_a_stop_off_the_grid():
    assert parse_axis("grid_step_floor=0.0008:0.0013:0.0002").values == (0.0008, 0.001, 0.0012)


def test_a_long_range_has_no_drift_at_its_end():
    values = parse_axis("sell_profit_threshold=0.001:0.1:0.001").values

    assert len(values) == 100 and values[-1] == 0.1 and values[69] == 0.07


def test_values_take_the_fields_types():
    assert parse_axis("layers=7,9").values == (7, 9)
    assert all(type(v) is int for v in parse_axis("layers=7:9:1").values)
    assert parse_axis("cooling=true,false").values == (True, False)
    assert parse_axis("commission_rate=0.0001,0.00025").values == (Decimal("0.0001"), Decimal("0.00025"))
    assert parse_axis("grid_step_floor=0.0008, 0.001").values == (0.0008, 0.001)


def test_unknown_name_is_refused_with_the_valid_names():
    with pytest.raises(SweepError) as err:
        parse_axis("atr_grid_facter=0.3")

    message = str(err.value)
    assert "'atr_grid_facter'" in message and "atr_grid_factor" in message and "grid_step_floor" in message


def test_code_mode_and_tuples_are_not_axes():
    fields = sweepable_fields()

    assert {"code", "mode", "weights", "no_trade_minutes"}.isdisjoint(fields)
    assert {"atr_grid_factor", "layers", "cooling", "reserve_ratio"} <= set(fields)
    with pytest.raises(SweepError, match="unknown grid parameter 'weights'"):
        parse_axis("weights=1,2")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("atr_grid_factor", "expected NAME="),
        ("atr_grid_factor=", "expected NAME="),
        ("atr_grid_factor=0.2:0.4", "START:STOP:STEP"),
        ("atr_grid_factor=0.2:0.4:0", "STEP must be positive"),
        ("atr_grid_factor=0.2:0.4:-0.1", "STEP must be positive"),
        ("atr_grid_factor=0.4:0.2:0.1", "STOP is below START"),
        ("atr_grid_factor=0:1:1e-30", r"values \(at most"),
        ("atr_grid_factor=nan", "not a finite number"),
        ("atr_grid_factor=0.3,Infinity", "not a finite number"),
        ("atr_grid_factor=0.3,abc", "'abc' is not a number"),
        ("atr_grid_factor=0.3,,0.4", "'' is not a number"),
        ("atr_grid_factor=0.3,0.30", "listed twice"),
        ("layers=7.5", "not a whole number"),
        ("cooling=maybe", "not true or false"),
        ("cooling=0:1:1", "is a switch"),
    ],
)
def test_malformed_axes_are_refused_with_a_reason(spec, reason):
    with pytest.raises(SweepError, match=reason):
        parse_axis(spec)


def test_axes_are_checked_together():
    with pytest.raises(SweepError, match="swept twice: atr_grid_factor"):
        combine_axes([parse_axis("atr_grid_factor=0.3"), parse_axis("atr_grid_factor=0.4")])
    with pytest.raises(SweepError, match="nothing to sweep"):
        combine_axes([])
    big = parse_axis(f"nominal_cap=1:{MAX_POINTS}:1")
    with pytest.raises(SweepError, match="points \\(at most"):
        combine_axes([big, parse_axis("layers=8,9")])


def test_points_vary_the_last_axis_fastest():
    points = grid_points([parse_axis("atr_grid_factor=0.3,0.4"), parse_axis("cooling=true,false")])

    assert points == [
        (("atr_grid_factor", 0.3), ("cooling", True)),
        (("atr_grid_factor", 0.3), ("cooling", False)),
        (("atr_grid_factor", 0.4), ("cooling", True)),
        (("atr_grid_factor", 0.4), ("cooling", False)),
    ]


def test_a_point_sets_its_values_on_every_symbol_and_keeps_the_rest():
    base = {c: default_params(c, "reference") for c in ("512890.SH", "159201.SZ")}

    params = apply_point(base, (("atr_grid_factor", 0.3), ("cooling", False)))

    assert all(p.atr_grid_factor == 0.3 and not p.cooling for p in params.values())
    assert params["159201.SZ"].grid_step_floor == base["159201.SZ"].grid_step_floor
    assert params["512890.SH"].mode == "reference"


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ((("penalty_release", 0.95),), "penalty_release must not exceed penalty_trigger"),
        ((("layers", 5),), "weights must have one entry per layer"),
        ((("atr_period", 0),), "greater than or equal to 1"),
    ],
)
def test_a_point_the_model_refuses_fails_with_its_reason(point, reason):
    base = {"512890.SH": default_params("512890.SH", "reference")}

    with pytest.raises(SweepError, match=reason) as err:
        apply_point(base, point)
    assert str(err.value).startswith("512890.SH at ")


def test_factors_and_floors_are_shorthands_with_their_old_defaults_only_alone():
    bare = axes_from_options([], None, None)
    assert [a.name for a in bare] == ["atr_grid_factor", "grid_step_floor"]
    assert bare[0].values == (0.24, 0.28, 0.32, 0.36, 0.40)
    assert bare[1].values == (0.0008, 0.001, 0.0012, 0.0015)

    assert [a.values for a in axes_from_options([], "0.3,0.32", "0.001")] == [(0.3, 0.32), (0.001,)]
    only_grid = axes_from_options(["cooling=true,false"], None, None)
    assert [a.name for a in only_grid] == ["cooling"]
    mixed = axes_from_options(["cooling=true,false"], "0.3", None)
    assert [a.name for a in mixed] == ["atr_grid_factor", "cooling"]
    with pytest.raises(SweepError, match="swept twice"):
        axes_from_options(["atr_grid_factor=0.3"], "0.3", None)
