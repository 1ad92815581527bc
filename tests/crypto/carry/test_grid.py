"""The optional grid layer: ADX filter, a neutral grid with hysteresis, the range exit as its stop, the 30 %
cap, and the live engine refusing it."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest

from crypto.carry import tape as tp
from crypto.carry.backtest import run_backtest
from crypto.carry.config import CarryConfig, CarryConfigError, GridConfig, StrategyConfig, load_config
from crypto.carry.grid import adx, plan_grid, simulate_grid


def test_adx_high_on_a_trend_low_on_a_range() -> None:
    hours = 200
    trend = np.linspace(100, 200, hours)
    rng_path = 100 + np.sin(np.arange(hours) / 2.0)
    for series, lo, hi in ((trend, 50, 101), (rng_path, 0, 25)):
        a = adx(series + 0.5, series - 0.5, series)
        assert np.isnan(a[:20]).all()
        assert lo <= np.nanmean(a[60:]) <= hi


def test_grid_earns_on_an_oscillation_inside_its_range() -> None:
    minutes = np.arange(60 * 24 * 20)
    mark = 100.0 * (1 + 0.03 * np.sin(minutes / 20.0))  # +-3 % inside a +-5 % range, no trend
    g = simulate_grid(mark, 10_000, 0.3, 2, 10, 0.05, 25, 0.0002, 0.0005)
    assert g.grids >= 1 and g.trades > 20 and g.stops <= g.grids
    assert g.equity[-1] > g.equity[0]  # each round trip buys one spacing below where it sells
    assert g.max_margin <= 10_000 * 0.3 + 1e-6


def test_leaving_the_range_is_the_stop() -> None:
    chop = 100.0 * (1 + 0.004 * np.sin(np.arange(60 * 40) / 7.0))  # 40 hours of chop: ADX low, a grid starts
    mark = np.concatenate((chop, np.linspace(chop[-1], 80, 600), np.full(600, 80.0)))
    g = simulate_grid(mark, 10_000, 0.3, 2, 10, 0.05, 25, 0.0002, 0.0005)
    assert g.grids >= 1 and g.stops >= 1
    assert g.max_margin <= 10_000 * 0.3 + 1e-6
    # Flat after the stop: the equity does not move with the price any more.
    assert g.equity[-1] == g.equity[-300]


def test_equal_size_per_level_within_the_cap() -> None:
    plan = plan_grid(50_000, 10_000, 0.3, 3, 10, 0.05)
    assert plan.half * plan.qty * plan.upper / 3 <= 10_000 * 0.3 + 1e-6
    assert [plan.level(k) for k in (-1, 0, 1)] == [plan.center + plan.spacing, plan.center,
                                                  plan.center - plan.spacing]


def test_grid_layer_in_the_backtest_and_its_cap_validated(tmp_path) -> None:
    cfg = CarryConfig(strategy=StrategyConfig(grid=GridConfig(enabled=True)))
    m = run_backtest(tp.synth(days=30, seed=2), cfg).metrics
    assert m["grid_runs"] >= 1 and m["grid_max_margin"] <= 10_000 * 0.3
    bad = tmp_path / "c.json"
    bad.write_text('{"strategy": {"grid": {"enabled": true, "capital_fraction": "0.4"}}}')
    with pytest.raises(CarryConfigError):
        load_config(bad)


def test_live_engine_refuses_the_grid_layer(make_engine) -> None:
    from crypto.carry.shell import EngineFault

    with pytest.raises(EngineFault, match="GRID_LAYER_BACKTEST_ONLY"):
        make_engine(cfg=CarryConfig(strategy=StrategyConfig(grid=GridConfig(enabled=True, capital_fraction=D("0.2")))))
