from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.synth import generate
from mac.grid.core import (
    BUY,
    OPEN,
    PENDING_BUY,
    PENDING_SELL,
    SELL,
    EventKind,
    GridState,
    Lot,
    PendingOrder,
    PoolView,
    StepContext,
    apply_fill,
    apply_reject,
    close_all,
    initial_state,
    make_client_order_id,
    step,
    trading_day,
    unplaced_sell_shares,
)
from mac.grid.indicators import IndicatorValues
from mac.grid.params import compile_params
from marketdata.bar import BarTuple
from settings.grid import GridParams, default_params

POOL = 30_000_000  # fen
P = compile_params(default_params("512890.SH"))
DAY0 = 1_704_335_460_000  # 2024-01-04 09:31 CST
DAY_MS = 86_400_000


def ind(u: int = 100, atr: float = 0.0005, slope: float = 0.0, rsi: float = 50.0) -> IndicatorValues:
    return IndicatorValues(atr, slope, 0.001, rsi, u)


def bar(price: float, t: int = DAY0) -> BarTuple:
    return BarTuple(t, price, price, price, price)


def pool(util: float, committed: int | None = None) -> PoolView:
    c = round(util * POOL) if committed is None else committed
    return PoolView.of(c, POOL)


def lot(coid: str, price: float, shares: int = 20000, day: int | None = None, status: str = OPEN) -> Lot:
    return Lot(
        coid,
        shares,
        Decimal(repr(price)) * shares,
        price,
        status,
        0,
        trading_day(DAY0) - 1 if day is None else day,
    )


# ----------------------------------------------------------------------------------------- purity


def test_grid_core_imports_no_io_library():
    forbidden = {"os", "io", "pathlib", "json", "pandas", "numpy", "time", "datetime", "socket", "threading",
                 "subprocess", "shutil", "tempfile", "asyncio", "logging", "random", "sqlite3", "filelock"}  # fmt: skip
    for path in Path("mac/grid").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path} imports {name}"
            if isinstance(node, ast.Attribute) and node.attr in ("now", "today", "utcnow"):
                raise AssertionError(f"{path} reads a clock")


# ----------------------------------------------------------------------------------------- penalty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60), st.booleans())
def test_penalty_hysteresis_never_flips_inside_the_band(utils, start_on):
    state = GridState("512890.SH", anchor=1.0, penalty_on=start_on)
    for u, util in enumerate(utils):
        before = state.penalty_on
        state, _, events = step(state, bar(1.0), pool(util), P, ind(u))
        kinds = {e.kind for e in events}
        if 0.85 <= util <= 0.90:
            assert state.penalty_on == before and not kinds & {EventKind.PENALTY_ON, EventKind.PENALTY_OFF}
        elif util > 0.90:
            assert state.penalty_on
        else:
            assert not state.penalty_on
        assert (EventKind.PENALTY_ON in kinds) == (not before and state.penalty_on)
        assert (EventKind.PENALTY_OFF in kinds) == (before and not state.penalty_on)


def test_penalty_widens_buy_step_only():
    # a drop of 0.12 % triggers the normal step (0.1 %) but not the penalised one (0.15 %)
    calm = GridState("512890.SH", anchor=1.0)
    _, sigs, _ = step(calm, bar(0.9988), pool(0.5), P, ind())
    assert [s.side for s in sigs] == [BUY]
    hot = GridState("512890.SH", anchor=1.0, penalty_on=True)
    _, sigs, _ = step(hot, bar(0.9988), pool(0.88), P, ind())
    assert sigs == ()


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1.0, max_value=1.02), st.floats(min_value=0.0, max_value=1.0))
def test_sells_are_never_penalised(price, util):
    price = round(price, 3)
    lots = (lot("GA", 1.0), lot("GB", 1.002))
    calm = GridState("512890.SH", lots=lots, anchor=1.002, penalty_on=False)
    hot = GridState("512890.SH", lots=lots, anchor=1.002, penalty_on=True)
    _, s1, _ = step(calm, bar(price), pool(min(util, 0.84)), P, ind())
    _, s2, _ = step(hot, bar(price), pool(max(util, 0.91)), P, ind())
    assert [(s.side, s.shares, s.release_client_order_ids) for s in s1 if s.side == SELL] == [
        (s.side, s.shares, s.release_client_order_ids) for s in s2 if s.side == SELL
    ]


# ----------------------------------------------------------------------------------------- reserve


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=0, max_value=POOL), st.integers(min_value=1, max_value=30))
def test_no_layer0_signal_when_reserve_would_break(committed, drop_ticks):
    price = round(1.0 - drop_ticks / 1000 - 0.001, 3)
    state = GridState("512890.SH", anchor=1.0)
    _, sigs, events = step(state, bar(price), pool(0.0, committed), P, ind())
    buys = [s for s in sigs if s.side == BUY]
    if buys:
        assert buys[0].layer_index == 0
        assert Decimal(committed + buys[0].amount_fen) <= Decimal(POOL) * Decimal("0.85")
    else:
        assert {e.kind for e in events} & {EventKind.LAYER0_REFUSED_RESERVE, EventKind.POOL_EXHAUSTED}


def test_layer0_refused_when_reserve_would_break():
    state = GridState("512890.SH", anchor=1.0)
    _, sigs, events = step(state, bar(0.99), pool(0.80), P, ind())
    assert sigs == () and [e.kind for e in events] == [EventKind.LAYER0_REFUSED_RESERVE]


def test_reference_mode_ignores_the_pool():
    ref = compile_params(default_params("512890.SH", "reference"))
    _, sigs, _ = step(GridState("512890.SH", anchor=1.0), bar(0.99), pool(0.99), ref, ind())
    assert [s.side for s in sigs] == [BUY]


# ----------------------------------------------------------------------------------------- T+1


def test_lot_bought_today_is_not_sold_today():
    today = trading_day(DAY0)
    state = GridState("512890.SH", lots=(lot("GA", 1.0, day=today),), anchor=1.0)
    _, sigs, events = step(state, bar(1.01), pool(0.1), P, ind())
    assert sigs == () and EventKind.NOT_SELLABLE_T1 in {e.kind for e in events}
    _, sigs, _ = step(state, bar(1.01, DAY0 + DAY_MS), pool(0.1), P, ind())
    assert [(s.side, s.release_client_order_ids) for s in sigs] == [(SELL, ("GA",))]


def test_sell_never_takes_the_position_below_the_base():
    params = compile_params(default_params("512890.SH", base_position_shares=50_000))
    state = GridState("512890.SH", lots=(lot("GA", 1.0), lot("GB", 1.0)), anchor=1.0)
    # the books say 50,000 base + 40,000 in lots, the venue holds 70,000 (someone sold base shares):
    # all 70,000 are sellable, but only one 20,000 lot may go or the position ends under the base
    ctx = StepContext(ind(), True, sellable_volume=70_000, position_volume=70_000, unplaced_sell_shares=0)
    _, sigs, _ = step(state, bar(1.01), pool(0.1), params, ctx)
    assert sum(s.shares for s in sigs if s.side == SELL) == 20_000


def _base_params(base: int = 20_000):
    return compile_params(default_params("512890.SH", base_position_shares=base))


def test_lot_bought_today_is_sold_today_against_sellable_base_shares():
    # issue 10 item 7: 20,000 base shares sellable, a lot bought today reaches its take-profit
    today = trading_day(DAY0)
    state = GridState("512890.SH", lots=(lot("GA", 1.0, day=today),), anchor=1.0)
    ctx = StepContext(ind(), True, sellable_volume=20_000, position_volume=40_000, unplaced_sell_shares=0)
    state, sigs, events = step(state, bar(1.01), pool(0.1), _base_params(), ctx)
    assert [(s.side, s.shares, s.release_client_order_ids) for s in sigs] == [(SELL, 20_000, ("GA",))]
    assert EventKind.NOT_SELLABLE_T1 not in {e.kind for e in events}


def test_lot_bought_today_waits_when_the_sellable_base_is_too_small():
    today = trading_day(DAY0)
    state = GridState("512890.SH", lots=(lot("GA", 1.0, day=today),), anchor=1.0)
    ctx = StepContext(ind(), True, sellable_volume=10_000, position_volume=30_000, unplaced_sell_shares=0)
    _, sigs, events = step(state, bar(1.01), pool(0.1), _base_params(10_000), ctx)
    assert sigs == () and EventKind.NOT_SELLABLE_T1 in {e.kind for e in events}


def _resting_sell_state():
    """GA is being sold by an order of an earlier bar; GB is open and at its take-profit now."""
    state = GridState("512890.SH", lots=(lot("GA", 1.0), lot("GB", 1.005)), anchor=1.0)
    state, sigs, _ = step(state, bar(1.0045), pool(0.1), _base_params(), ind())
    assert [s.release_client_order_ids for s in sigs] == [("GA",)]
    return state, sigs[0]


def test_resting_sells_are_not_subtracted_twice_from_can_use_volume():
    state, _ = _resting_sell_state()
    # position 60,000 = base 20,000 + two lots; GA's 20,000 rest at the venue, which already took them out
    ctx = StepContext(ind(101), True, sellable_volume=40_000, position_volume=60_000, unplaced_sell_shares=0)
    _, sigs, _ = step(state, bar(1.0095, DAY0 + 60_000), pool(0.1), _base_params(), ctx)
    assert [s.release_client_order_ids for s in sigs] == [("GB",)]


def test_sells_not_yet_at_the_venue_still_count_against_can_use_volume():
    state, sell = _resting_sell_state()
    assert unplaced_sell_shares(state, frozenset()) == 20_000
    assert unplaced_sell_shares(state, frozenset({sell.client_order_id})) == 0
    # GA's sell has not reached the venue: its 20,000 are still in can_use_volume (20,000 base + 40,000)
    ctx = StepContext(ind(101), True, sellable_volume=40_000, position_volume=60_000,
                      unplaced_sell_shares=unplaced_sell_shares(state, frozenset()))
    _, sigs, _ = step(state, bar(1.0095, DAY0 + 60_000), pool(0.1), _base_params(), ctx)
    assert [s.release_client_order_ids for s in sigs] == [("GB",)]
    ctx = StepContext(ind(101), True, sellable_volume=30_000, position_volume=60_000,
                      unplaced_sell_shares=unplaced_sell_shares(state, frozenset()))
    _, sigs, events = step(state, bar(1.0095, DAY0 + 60_000), pool(0.1), _base_params(), ctx)
    assert sigs == () and EventKind.NOT_SELLABLE_T1 in {e.kind for e in events}


def test_close_all_sells_todays_lots_against_the_base_but_never_the_base():
    today = trading_day(DAY0)
    state = GridState("512890.SH", lots=(lot("GA", 1.0), lot("GB", 1.0, day=today)), anchor=1.0)
    # base 20,000; the venue holds 60,000 of which 40,000 are sellable (GB's were bought today)
    state2, sigs = close_all(state, bar(0.95), _base_params(), 40_000, position_volume=60_000,
                             unplaced_sell_shares=0)
    assert sorted(s.release_client_order_ids for s in sigs) == [("GA",), ("GB",)]
    _, sigs = close_all(state, bar(0.95), _base_params(), 30_000, position_volume=60_000, unplaced_sell_shares=0)
    assert [s.release_client_order_ids for s in sigs] == [("GA",)]
    _, sigs = close_all(state, bar(0.95), _base_params(), 40_000, position_volume=40_000, unplaced_sell_shares=0)
    assert [s.release_client_order_ids for s in sigs] == [("GA",)]


# ------------------------------------------------------------------------------------ order outcomes


def _bought():
    state = GridState("512890.SH", anchor=1.0)
    state, sigs, _ = step(state, bar(0.99), pool(0.1), P, ind())
    return state, sigs[0]


def test_rejected_buy_removes_the_lot_and_restores_the_anchor():
    state, sig = _bought()
    assert state.anchor == 0.99 and state.lots[0].status == PENDING_BUY
    state = apply_reject(state, sig.client_order_id)
    assert state.lots == () and state.orders == () and state.anchor == 1.0


def test_partially_filled_buy_keeps_what_filled():
    state, sig = _bought()
    state = apply_fill(state, sig.client_order_id, 5_000, 0.99, final=False, params=P)
    assert state.lots[0].shares == 5_000 and state.lots[0].status == PENDING_BUY
    state = apply_reject(state, sig.client_order_id)  # the rest was cancelled
    assert state.lots[0].shares == 5_000 and state.lots[0].status == OPEN and state.orders == ()
    assert state.cash == -Decimal("4950") - Decimal("0.50")


def test_rejected_sell_returns_the_lots_to_open():
    state = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0, last_flat_index=-5)
    state, sigs, _ = step(state, bar(1.01), pool(0.1), P, ind(u=7))
    assert state.lots[0].status == PENDING_SELL and state.anchor == 1.01 and state.last_flat_index == 7
    state = apply_reject(state, sigs[0].client_order_id)
    assert state.lots[0].status == OPEN and state.anchor == 1.0 and state.last_flat_index == -5


def test_filled_sell_closes_the_lot_and_is_idempotent():
    state = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0)
    state, sigs, _ = step(state, bar(1.01), pool(0.1), P, ind())
    coid = sigs[0].client_order_id
    state = apply_fill(state, coid, 20_000, 1.01, final=True, params=P)
    again = apply_fill(state, coid, 20_000, 1.01, final=True, params=P)
    assert state.lots == () and again == state and state.cash == Decimal("20200") - Decimal("2.02")


def test_no_new_signal_for_a_lot_with_a_pending_order():
    state = GridState("512890.SH", lots=(lot("GA", 1.0),), anchor=1.0)
    state, sigs, _ = step(state, bar(1.01), pool(0.1), P, ind())
    assert len(sigs) == 1
    state, sigs, _ = step(state, bar(1.02, DAY0 + 60_000), pool(0.1), P, ind(101))
    assert [s for s in sigs if s.side == SELL] == []


def test_client_order_ids_are_short_ascii_and_unique_across_days():
    ids = {make_client_order_id("9201", side, DAY0 + d * DAY_MS + m * 60_000, n)
           for d in range(400) for m in (0, 119) for n in range(3) for side in (BUY, SELL)}  # fmt: skip
    assert len(ids) == 400 * 2 * 3 * 2
    assert all(len(i) <= 24 and i.isascii() and i.isalnum() for i in ids)


# ------------------------------------------------------------------------------ random walk invariants


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.randoms(use_true_random=False))
def test_realistic_walk_invariants(seed, rnd):
    code = "159201.SZ"
    params = default_params(code)
    bars = generate(code, 2, seed=seed)
    state = initial_state(params)
    cp = compile_params(params)
    for b in bars.rows():
        util = rnd.choice([0.1, 0.5, 0.84, 0.87, 0.92, 0.97])
        state, sigs, _ = step(state, b, pool(util), cp)
        for s in sigs:
            assert s.shares > 0 and s.shares % 100 == 0
            offset = cp.limit_offset_ticks if s.side == BUY else -cp.limit_offset_ticks
            assert 0 < s.price_milli and s.price_milli == round(b.c * 1000) + offset  # marketable by one tick
            assert len(s.client_order_id) <= 24 and s.client_order_id.isascii()
            if s.side == BUY:
                assert s.layer_index != 0 or Decimal(round(util * POOL) + s.amount_fen) <= Decimal(
                    POOL
                ) * Decimal("0.85")
            else:
                assert s.release_client_order_ids
        # at most one pending order per lot
        claimed = [c for o in state.orders for c in (o.release_client_order_ids or (o.client_order_id,))]
        assert len(claimed) == len(set(claimed))
        assert {lt.client_order_id for lt in state.lots if lt.status != OPEN} == set(claimed)
        for o in list(state.orders):
            roll = rnd.random()
            if roll < 0.5:
                state = apply_fill(state, o.client_order_id, o.shares, o.price_milli / 1000, True, params=cp)
            elif roll < 0.7:
                state = apply_reject(state, o.client_order_id)
            elif roll < 0.8 and o.side == BUY:
                state = apply_fill(
                    state, o.client_order_id, o.shares // 200 * 100, o.price_milli / 1000, False, cp
                )
        assert all(lt.shares >= 0 for lt in state.lots)


def test_gridparams_reject_unknown_keys_and_bad_hysteresis():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        GridParams(bogus=1)
    with pytest.raises(ValidationError):
        GridParams(penalty_trigger=0.8, penalty_release=0.85)
    assert default_params("159201.SZ").sell_threshold_factor == 1.4


def test_no_order_is_decided_on_a_bar_that_closes_a_session():
    # 11:30 and 15:00 bars end at the bell: an order from them would reach the venue outside the session.
    at_1130 = DAY0 + 59 * 60_000  # DAY0 is 10:31 China time
    state = GridState("512890.SH", anchor=1.0)
    after, sigs, _ = step(state, bar(0.99, at_1130), pool(0.1), P, ind())
    assert sigs == () and after.anchor == 1.0
    _, sigs, _ = step(state, bar(0.99, DAY0 + 60_000), pool(0.1), P, ind())
    assert [s.side for s in sigs] == [BUY]


def test_realistic_limits_cross_the_spread_by_the_configured_ticks():
    state = GridState("512890.SH", anchor=1.0)
    _, sigs, _ = step(state, bar(0.99), pool(0.1), P, ind())
    assert sigs[0].price_milli == 990 + P.limit_offset_ticks
    ref = compile_params(default_params("512890.SH", "reference"))
    assert ref.limit_offset_ticks == 0 and not ref.no_trade_minutes


# ------------------------------------------------------------------------- the sell budget, as a property


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([100, 5_000, 20_000, 26_600]), st.booleans(), st.booleans()),
             min_size=1, max_size=9),
    st.integers(0, 60_000),
    st.integers(0, 200_000),
    st.integers(0, 60_000),
    st.booleans(),
)
def test_new_sells_never_pass_can_use_volume_nor_cut_into_the_base(lots_spec, base, volume, can_use, placed):
    """Whatever the books and the venue say, the sells decided on a bar fit the venue's sellable volume
    (less our sells it has not seen) and leave the position at or above the base."""
    today = trading_day(DAY0)
    lots, orders = [], []
    for n, (shares, bought_today, pending) in enumerate(lots_spec):
        coid = f"G{n}"
        lots.append(lot(coid, 1.0, shares, day=today if bought_today else None,
                        status=PENDING_SELL if pending else OPEN))
        if pending:
            orders.append(PendingOrder(f"S{n}", SELL, 1_010, shares, (coid,), "TAKE_PROFIT", DAY0 - 60_000,
                                       None, -5, None, None))
    state = GridState("512890.SH", lots=tuple(lots), anchor=1.0, orders=tuple(orders))
    pending = sum(o.shares for o in orders)
    unplaced = 0 if placed else pending
    ctx = StepContext(ind(), True, sellable_volume=can_use, position_volume=volume, unplaced_sell_shares=unplaced)
    new_state, sigs, _ = step(state, bar(1.01), pool(0.1), _base_params(base), ctx)
    sold = sum(s.shares for s in sigs if s.side == SELL)
    assert sold <= max(0, can_use - unplaced)
    assert sold == 0 or volume - pending - sold >= base
    assert sold == sum(x.shares for x in new_state.lots if x.status == PENDING_SELL) - pending
    _, closing = close_all(state, bar(0.9), _base_params(base), can_use, volume, unplaced)
    closed = sum(s.shares for s in closing)
    assert closed <= max(0, can_use - unplaced) and (closed == 0 or volume - pending - closed >= base)
