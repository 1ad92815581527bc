"""Realistic mode's opt-in ``anchor_follows_up``: while the grid is flat the anchor rises with the close and
never falls; with a lot or an order open it keeps reference-grid.md's anchor; reference mode refuses it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from mac.grid.core import apply_fill, initial_state, step
from mac.grid.indicators import IndicatorValues
from mac.grid.ladder import next_buy
from mac.grid.params import compile_params
from mac.grid.rules import anchor_follows_up
from mac.grid.state import BUY, GRID_BUY, PendingOrder
from marketdata.bar import BarTuple
from settings.grid import default_params

T0 = 1_704_160_800_000  # 2024-01-02 10:00 China time: inside a session
CODE = "512890.SH"


def _params(on: bool):
    # a wide floor keeps every small dip below short of the buy trigger
    return compile_params(default_params(CODE, anchor_follows_up=on, grid_step_floor=0.02))


def _run(cp, closes, state=None, day=0):
    """``step`` on one bar per close (precomputed, quiet indicators), ``day`` days after T0; the anchors
    after each bar."""
    state = state or initial_state(cp)
    anchors, signals = [], []
    for i, c in enumerate(closes):
        bar = BarTuple(T0 + 86_400_000 * day + 60_000 * i, c, c, c, c)
        state, sigs, _ = step(state, bar, None, cp, IndicatorValues(0.001, 0.0, 0.01, 50.0, i))
        anchors.append(state.anchor)
        signals.extend(sigs)
    return state, anchors, signals


def test_flat_anchor_rises_with_the_close_and_never_falls():
    _, anchors, signals = _run(_params(True), [1.0, 1.01, 1.005, 1.02, 1.015, 1.03])
    assert anchors == [1.0, 1.01, 1.01, 1.02, 1.02, 1.03]
    assert not signals


def test_default_off_keeps_the_first_anchor():
    _, anchors, signals = _run(_params(False), [1.0, 1.01, 1.005, 1.02, 1.015, 1.03])
    assert anchors == [1.0] * 6 and not signals
    assert default_params(CODE).anchor_follows_up is False


def test_the_first_buy_after_a_rise_triggers_from_the_raised_anchor():
    dip = 0.998  # 1.03 * (1 - 0.02) = 1.0094 >= 0.998, but 1.0 * (1 - 0.02) = 0.98 < 0.998
    _, anchors, signals = _run(_params(True), [1.0, 1.03, dip])
    assert [s.side for s in signals] == [BUY] and anchors[-1] == dip
    _, _, off = _run(_params(False), [1.0, 1.03, dip])
    assert not off


def test_not_flat_the_anchor_stays():
    cp = _params(True)
    state, _, signals = _run(cp, [1.0, 1.03, 0.998])
    # a pending buy: not flat
    state, anchors, _ = _run(cp, [1.0, 1.001, 1.002], state)
    assert anchors == [0.998] * 3
    # the buy filled: an OPEN lot (below its take-profit) keeps the anchor too
    state = apply_fill(state, signals[0].client_order_id, signals[0].shares, 0.998, True, cp)
    assert state.lots and not state.orders
    _, anchors, sells = _run(cp, [0.999, 1.0, 1.001], state)
    assert anchors == [0.998] * 3 and not sells


def test_a_pending_order_alone_is_not_flat():
    cp = _params(True)
    state = replace(initial_state(cp), anchor=1.0)
    assert anchor_follows_up(cp, state)
    order = PendingOrder("G2890B1", BUY, 1000, 100, (), GRID_BUY, T0, 1.0, 0, 1.0, None)
    assert not anchor_follows_up(cp, replace(state, orders=(order,)))
    assert not anchor_follows_up(_params(False), state)


def test_the_dashboard_ladder_follows_the_state_anchor():
    cp = _params(True)
    ind = {"atr": 0.001, "slope": 0.0, "atr_avg": 0.01, "close": 1.03}
    before, _, _ = _run(cp, [1.0])
    after, _, _ = _run(cp, [1.0, 1.03])
    low = next_buy(before.anchor, ind, before.lots, cp, False).trigger
    high = next_buy(after.anchor, ind, after.lots, cp, False).trigger
    assert low is not None and high is not None and high > low
    assert high <= 1.03 * (1 - 0.02) + 1e-12


def test_reference_mode_refuses_the_rule():
    with pytest.raises(ValidationError, match="realistic-mode rule"):
        default_params(CODE, "reference", anchor_follows_up=True)
    # model_copy skips the validator: compiling refuses it as well
    sneaked = default_params(CODE, anchor_follows_up=True).model_copy(update={"mode": "reference"})
    with pytest.raises(ValueError, match="realistic-mode rule"):
        compile_params(sneaked)


def test_outcomes_keep_their_anchor_bookkeeping_with_the_rule_on():
    """A rejected buy restores the raised anchor; a flattening sell pending holds the anchor, a rejected one
    restores the anchor it found, and once it fills the flat grid's anchor follows the price again."""
    from mac.grid.core import apply_reject

    cp = _params(True)
    state, _, signals = _run(cp, [1.0, 1.03, 0.998])
    assert apply_reject(state, signals[0].client_order_id).anchor == 1.03
    state = apply_fill(state, signals[0].client_order_id, signals[0].shares, 0.998, True, cp)
    # the next day (T+1): take-profit at 0.998 * 1.004 = 1.002; the sell leaves nothing held, so the
    # anchor moves to its close, and stays there while the sell is pending
    state, anchors, sells = _run(cp, [1.003, 1.01, 1.02], state, day=1)
    assert [s.side for s in sells] == ["SELL"] and anchors == [1.003] * 3
    rejected = apply_reject(state, sells[0].client_order_id)
    assert rejected.anchor == 0.998 and rejected.lots[0].status == "OPEN"
    filled = apply_fill(state, sells[0].client_order_id, sells[0].shares, 1.003, True, cp)
    assert not filled.lots and not filled.orders
    _, anchors, _ = _run(cp, [1.0, 1.02, 1.01], filled, day=1)
    assert anchors == [1.003, 1.02, 1.02]
