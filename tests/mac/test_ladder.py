"""The ladder helpers agree with ``core.step``: a buy is decided exactly at/below the trigger price."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mac.grid.core import BUY, OPEN, PENDING_SELL, SELL, GridState, Lot, PoolView, StepContext, step
from mac.grid.indicators import IndicatorValues
from mac.grid.ladder import (
    buy_step,
    buy_trigger_price,
    cooling_bars_left,
    is_breaker_on,
    next_buy,
    take_profit_price,
    trend_of,
)
from mac.grid.params import compile_params
from settings.grid import default_params
from shared_schema.models import Bar
from shared_schema.types import CST, datetime_to_ms

BAR_T = datetime_to_ms(datetime(2026, 1, 6, 10, 0, tzinfo=CST))
POOL_FEN = 10_000_000_00  # a big pool, so the pool rules never refuse the test's buy


def _params(code: str):
    # No reserve, so a layer-0 buy is allowed at any utilisation; the trigger is what we test.
    return compile_params(default_params(code, reserve_ratio=Decimal(0)))


def _state(code: str, anchor: float, n_lots: int, penalty_on: bool) -> GridState:
    lots = tuple(
        Lot(f"L{i}", 100, Decimal("1000"), 1000.0, OPEN, i, 0, 100) for i in range(n_lots)
    )  # bought far above: they never reach take-profit here
    return GridState(code=code, lots=lots, anchor=anchor, penalty_on=penalty_on)


def _decides_buy(code: str, price: float, anchor: float, atr: float, slope: float, n: int, penalty: bool) -> bool:
    cp = _params(code)
    state = _state(code, anchor, n, penalty)
    # Utilisation inside the 85-90 band: the hysteresis keeps whatever state the grid had.
    view = PoolView.of(int(POOL_FEN * 0.87), POOL_FEN)
    ind = IndicatorValues(atr=atr, slope=slope, atr_avg=atr, rsi=50.0, usable_index=10_000)
    bar = Bar(t=BAR_T, o=price, h=price, l=price, c=price)
    new, signals, _events = step(state, bar, view, cp, StepContext(indicators=ind, precomputed=True))
    assert new.penalty_on is penalty
    return any(s.side == BUY for s in signals)


@settings(max_examples=150, deadline=None)
@given(
    code=st.sampled_from(["159201.SZ", "512890.SH"]),
    anchor_milli=st.integers(500, 3000),
    atr_rel=st.floats(0.0, 0.02),
    slope=st.sampled_from([-0.001, 0.0, 0.0004]),
    n=st.integers(0, 8),
    penalty=st.booleans(),
)
def test_step_buys_at_the_trigger_and_not_one_tick_above(code, anchor_milli, atr_rel, slope, n, penalty):
    anchor = anchor_milli / 1000
    atr = anchor * atr_rel
    cp = _params(code)
    trigger = buy_trigger_price(anchor, atr, slope, n, cp, penalty, close=anchor)
    assert trigger is not None
    assert _decides_buy(code, trigger, anchor, atr, slope, n, penalty)
    assert not _decides_buy(code, round(trigger + 0.001, 3), anchor, atr, slope, n, penalty)
    below = round(trigger - 0.003, 3)
    assert _decides_buy(code, below, anchor, atr, slope, n, penalty)


def test_trigger_is_close_to_anchor_times_one_minus_step():
    cp = _params("512890.SH")
    anchor, atr = 1.150, 0.004
    trigger = buy_trigger_price(anchor, atr, 0.0, 2, cp, False)
    approx = anchor * (1 - buy_step(anchor, atr, 0.0, 2, cp, False))
    assert abs(trigger - approx) <= 0.0011


def test_penalty_widens_the_step_by_its_multiplier():
    cp = _params("159201.SZ")
    plain = buy_step(1.3, 0.003, -0.0002, 3, cp, False)
    assert buy_step(1.3, 0.003, -0.0002, 3, cp, True) == pytest.approx(plain * cp.penalty_multiplier)
    off = buy_trigger_price(1.3, 0.003, -0.0002, 3, cp, False)
    on = buy_trigger_price(1.3, 0.003, -0.0002, 3, cp, True)
    assert on < off


def test_step_floor_and_trend_multipliers():
    cp = _params("512890.SH")
    assert buy_step(1.0, 0.0, 0.0, 0, cp, False) == cp.grid_step_floor
    assert buy_step(1.0, 0.0, 0.01, 0, cp, False) == pytest.approx(cp.grid_step_floor * cp.up_step_mult)
    assert buy_step(1.0, 0.0, 0.0, 4, cp, False) == pytest.approx(cp.grid_step_floor + 4 * cp.layer_step_bonus)


def test_take_profit_follows_the_trend():
    cp = _params("159201.SZ")
    flat = take_profit_price(1.0, 0.0, cp)
    assert flat == pytest.approx(1 + cp.sell_profit_threshold * cp.sell_threshold_factor)
    assert take_profit_price(1.0, 0.01, cp) > flat > take_profit_price(1.0, -0.01, cp)


def test_take_profit_price_is_where_step_sells():
    code = "512890.SH"
    cp = _params(code)
    lot = Lot("L0", 1000, Decimal("1100"), 1.1, OPEN, 0, 0, 1000)
    state = GridState(code=code, lots=(lot,), anchor=1.1)
    tp = take_profit_price(1.1, 0.0, cp)
    price = round(-(-tp * 1000 // 1) / 1000, 3)  # first tick at or above
    ind = IndicatorValues(atr=0.001, slope=0.0, atr_avg=0.001, rsi=50.0, usable_index=500)
    bar = Bar(t=BAR_T, o=price, h=price, l=price, c=price)
    _, signals, _ = step(state, bar, None, cp, StepContext(indicators=ind, precomputed=True))
    assert any(s.side == SELL for s in signals)


def test_breaker_trend_and_cooling():
    cp = _params("159201.SZ")
    assert is_breaker_on(0.003, 0.001, cp) and not is_breaker_on(0.002, 0.001, cp)
    assert not is_breaker_on(None, 0.001, cp)
    assert [trend_of(s) for s in (0.1, -0.1, 0.0, None)] == ["UP", "DOWN", "FLAT", "FLAT"]
    assert cooling_bars_left(0, 105, 100, 50.0, cp) == cp.cooling_bars - 5
    assert cooling_bars_left(0, 105, 100, 20.0, cp) == 0  # oversold: 5 bars are enough
    assert cooling_bars_left(1, 101, 100, 50.0, cp) == 0  # lots open: no cooling
    assert cooling_bars_left(0, 101, 100, 50.0, _params("512890.SH")) == 0  # symbol without cooling


def test_next_buy_from_a_node_view_ignores_lots_being_sold():
    cp = _params("512890.SH")
    lots = [{"status": OPEN}, {"status": PENDING_SELL}, {"status": OPEN}]
    nb = next_buy(1.2, {"atr": 0.002, "slope": -0.0001, "atr_avg": 0.002, "close": 1.19}, lots, cp, True)
    assert nb.n_lots == 2
    assert nb.trigger == nb.trigger_with_penalty < nb.trigger_without_penalty
    assert nb.trend == "DOWN" and not nb.breaker_on
    empty = next_buy(None, {}, [], cp, False)
    assert empty.trigger is None
