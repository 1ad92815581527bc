"""Risk modes in the grid core: the policy mapping, the widened buy step and FUSE's close-all."""

from __future__ import annotations

import pytest

from mac.grid.core import (
    BUY,
    FUSE_CLOSE,
    OPEN,
    PENDING_SELL,
    SELL,
    GridState,
    StepContext,
    apply_reject,
    close_all,
    step,
    trading_day,
)
from mac.grid.params import compile_params
from mac.grid.risk_policy import BLOCK_DEGRADED_LAYER0, GridRiskMode, GridRiskPolicy, grid_risk_mode
from settings.grid import default_params
from tests.mac.test_core import DAY0, DAY_MS, P, bar, ind, lot, pool

WIDEN = GridRiskPolicy()
BLOCK0 = GridRiskPolicy(degraded_action="block_layer0")


@pytest.mark.parametrize(
    ("state", "halted", "policy", "expected"),
    [
        ("NORMAL", False, WIDEN, GridRiskMode(True, True, 1.0, False, "")),
        ("DEGRADED", False, WIDEN, GridRiskMode(True, True, 1.5, False, "")),
        ("DEGRADED", False, BLOCK0, GridRiskMode(True, False, 1.0, False, "")),
        ("COOLDOWN", False, WIDEN, GridRiskMode(False, False, 1.0, False, "RISK_COOLDOWN")),
        ("REDUCE_ONLY", False, WIDEN, GridRiskMode(False, False, 1.0, False, "RISK_REDUCE_ONLY")),
        ("FUSE", False, WIDEN, GridRiskMode(False, False, 1.0, True, "RISK_FUSE")),
        ("FUSE", True, WIDEN, GridRiskMode(False, False, 1.0, False, "HALTED")),
        ("NORMAL", True, WIDEN, GridRiskMode(False, False, 1.0, False, "HALTED")),
        ("SOMETHING_NEW", False, WIDEN, GridRiskMode(False, False, 1.0, False, "RISK_SOMETHING_NEW")),
    ],
)
def test_risk_state_maps_to_grid_mode(state, halted, policy, expected):
    assert grid_risk_mode(state, halted, policy) == expected


def test_buy_refusal_names_the_reason():
    assert grid_risk_mode("DEGRADED", False, BLOCK0).buy_refusal(0) == BLOCK_DEGRADED_LAYER0
    assert grid_risk_mode("DEGRADED", False, BLOCK0).buy_refusal(3) == ""
    assert grid_risk_mode("COOLDOWN", False, WIDEN).buy_refusal(3) == "RISK_COOLDOWN"
    assert grid_risk_mode("NORMAL", False, WIDEN).buy_refusal(0) == ""


def test_policy_rejects_a_narrowing_multiplier_and_unknown_keys():
    with pytest.raises(ValueError):
        GridRiskPolicy(degraded_step_multiplier=0.5)
    with pytest.raises(ValueError):
        GridRiskPolicy(degraded_action="widen", surprise=1)


# ------------------------------------------------------------------------------------- widened step


def test_risk_multiplier_widens_the_buy_step_only():
    # a drop of 0.12 % triggers the normal 0.1 % step but not the DEGRADED x1.5 one
    calm = GridState("512890.SH", anchor=1.0)
    _, sigs, _ = step(calm, bar(0.9988), pool(0.5), P, StepContext(ind(), True))
    assert [s.side for s in sigs] == [BUY]
    _, sigs, _ = step(calm, bar(0.9988), pool(0.5), P, StepContext(ind(), True, buy_step_multiplier=1.5))
    assert sigs == ()
    _, sigs, _ = step(calm, bar(0.9984), pool(0.5), P, StepContext(ind(), True, buy_step_multiplier=1.5))
    assert [s.side for s in sigs] == [BUY]


def test_risk_multiplier_never_changes_sells():
    held = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0)
    _, normal, _ = step(held, bar(1.0041), pool(0.1), P, StepContext(ind(), True))
    _, wide, _ = step(held, bar(1.0041), pool(0.1), P, StepContext(ind(), True, buy_step_multiplier=3.0))
    assert [(s.side, s.shares) for s in normal] == [(s.side, s.shares) for s in wide] == [(SELL, 20_000)]


# ------------------------------------------------------------------------------------------ close all


def test_close_all_sells_every_lot_bought_before_today_one_order_each():
    today = trading_day(DAY0)
    state = GridState(
        "512890.SH",
        lots=(lot("GA", 1.0), lot("GB", 0.99), lot("GC", 0.98, day=today)),
        anchor=0.98,
    )
    state, sigs = close_all(state, bar(0.9), P)
    assert [(s.side, s.reason, s.release_client_order_ids, s.shares) for s in sigs] == [
        (SELL, FUSE_CLOSE, ("GA",), 20_000),
        (SELL, FUSE_CLOSE, ("GB",), 20_000),
    ]
    assert all(s.price_milli == 900 - P.limit_offset_ticks for s in sigs)
    assert [x.status for x in state.lots] == [PENDING_SELL, PENDING_SELL, OPEN]  # GC: T+1
    assert len({s.client_order_id for s in sigs}) == 2 and len(state.orders) == 2
    # the next day GC goes too, and nothing already pending is sold twice
    state, sigs = close_all(state, bar(0.9, DAY0 + DAY_MS), P)
    assert [s.release_client_order_ids for s in sigs] == [("GC",)]
    state, sigs = close_all(state, bar(0.9, DAY0 + DAY_MS + 60_000), P)
    assert sigs == ()


def test_close_all_keeps_the_base_position_within_the_sellable_volume():
    params = compile_params(default_params("512890.SH", base_position_shares=50_000))
    state = GridState("512890.SH", lots=(lot("GA", 1.0), lot("GB", 1.0), lot("GC", 1.0)), anchor=1.0)
    # the venue holds 90,000, all sellable, where the books say 50,000 base + 60,000 in lots: only two
    # 20,000 lots may go, or the position would end under the base
    state, sigs = close_all(state, bar(0.9), params, sellable_volume=90_000, position_volume=90_000)
    assert sum(s.shares for s in sigs) == 40_000
    # the pending 40,000 count against the same budget on the next bar
    _, sigs = close_all(state, bar(0.9, DAY0 + 60_000), params, sellable_volume=90_000, position_volume=90_000)
    assert sigs == ()


def test_close_all_rejected_sell_returns_the_lot_and_the_anchor():
    state = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0)
    closed, sigs = close_all(state, bar(0.9), P)
    assert closed.anchor == 0.9  # flat: the grid restarts from the close, not the pre-crash anchor
    back = apply_reject(closed, sigs[0].client_order_id)
    assert back.lots[0].status == OPEN and back.anchor == 1.0 and back.orders == ()


def test_close_all_ids_do_not_collide_with_a_take_profit_on_the_same_bar():
    state = GridState("512890.SH", lots=(lot("GA", 0.9), lot("GB", 1.0)), anchor=1.0)
    state, sigs, _ = step(state, bar(0.91), pool(0.1), P, ind())
    tp = [s for s in sigs if s.side == SELL]
    assert [s.release_client_order_ids for s in tp] == [("GA",)]
    state, sigs = close_all(state, bar(0.91), P)
    assert [s.release_client_order_ids for s in sigs] == [("GB",)]
    assert sigs[0].client_order_id != tp[0].client_order_id


def test_close_all_sends_nothing_on_a_bar_that_closes_a_session():
    close_bar = trading_day(DAY0) * DAY_MS - 8 * 3_600_000 + 15 * 3_600_000  # 15:00 CST
    state = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0)
    assert close_all(state, bar(0.9, close_bar), P)[1] == ()
