"""Pure carry decisions: the open window's boundaries, the net-of-fees test, margin health, top-up, close,
rebalance, breaker, guards, scheduler and the state machine table."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.risk.state import RiskState, RiskTrigger
from crypto.carry import decisions as dec
from crypto.carry import guards as g
from crypto.carry.config import InstrumentConfig, RiskConfig, StrategyConfig
from crypto.carry.machine import (
    TRANSITIONS,
    CarryState,
    CarryTrigger,
    IllegalCarryTransition,
    apply_trigger,
)

INST = InstrumentConfig(symbol="BTC/USDT:USDT", spot_symbol="BTC/USDT")
STRAT = StrategyConfig()
RISK = RiskConfig()
CTX = dec.OpenContext()


def view(rate: str, spot: str = "60000", mark: str = "60006") -> dec.MarketView:
    return dec.MarketView(spot=D(spot), mark=D(mark), rate=D(rate))


@pytest.mark.parametrize("rate,expected", [
    ("0.000099", "OPEN_RATE_BELOW_MIN"),  # 0.0099 %
    ("0.0001", None),  # 0.01 % opens: 90 periods x 0.01 % = 0.9 % > 0.43 % of costs
    ("0.01", None),  # 1 % is inside the window
    ("0.0101", "OPEN_RATE_ABOVE_MAX"),  # 1.01 %
    ("-0.0002", "OPEN_RATE_BELOW_MIN"),
])
def test_open_window_boundaries(rate: str, expected: str | None) -> None:
    assert dec.check_open(view(rate), CTX, INST, STRAT, RISK) == expected


def test_floor_rate_refused_when_the_horizon_does_not_pay_the_fees() -> None:
    short = StrategyConfig(horizon_periods=30)  # 30 x 0.01 % = 0.30 % < 0.43 %
    assert dec.check_open(view("0.0001"), CTX, INST, short, RISK) == "OPEN_NOT_NET_OF_FEES"
    assert dec.expected_carry(view("0.0001"), short) < dec.round_trip_cost(view("0.0001"), INST, short)


@pytest.mark.parametrize("ctx,reason", [
    (dec.OpenContext(has_position=True), "OPEN_POSITION_EXISTS"),
    (dec.OpenContext(emergency=True), "OPEN_EMERGENCY"),
    (dec.OpenContext(reduce_only=True), "OPEN_REDUCE_ONLY"),
    (dec.OpenContext(breaker_tripped=True), "OPEN_BREAKER_TRIPPED"),
    (dec.OpenContext(account_health=D("0.85")), "OPEN_MARGIN_HEALTH_LOW"),
    (dec.OpenContext(spike=True), "OPEN_PRICE_SPIKE"),
    (dec.OpenContext(free_usdt=D("0.5")), "OPEN_INSUFFICIENT_FUNDS"),
])
def test_open_refused_by_context(ctx: dec.OpenContext, reason: str) -> None:
    assert dec.check_open(view("0.0005"), ctx, INST, STRAT, RISK) == reason


def test_wide_basis_refuses_open() -> None:
    assert dec.check_open(view("0.0005", mark="61000"), CTX, INST, STRAT, RISK) == "OPEN_BASIS_TOO_WIDE"


def test_sizing_equal_legs_in_base_units_within_capital() -> None:
    v = view("0.0005")
    qty = dec.size_pair(v, INST, STRAT)
    assert qty > 0 and qty % INST.qty_step == 0
    committed = qty * v.spot + qty * v.mark / STRAT.leverage
    assert committed <= STRAT.capital_usdt * (1 - STRAT.reserve_fraction)


def opened(qty: str = "0.1", px: str = "60000", lev: str = "2") -> dec.PairBook:
    return dec.book_open("BTC/USDT:USDT", D(qty), D(px), D(px), D("9"), D(lev), 0)


def test_margin_health_definition() -> None:
    book = opened()  # margin 3000 at 2x on 6000 notional
    assert dec.margin_health(book, D("60000")) == 1
    # +10 % mark at 2x: the short loses 600 = 20 % of its opening margin.
    assert dec.margin_health(book, D("66000")) == D("0.8")
    assert dec.margin_health(book, D("75000")) == D("0.5")


def test_topup_at_80_percent_is_idempotent_by_transfer_id() -> None:
    book = opened()
    mark = D("66600")  # health 0.78
    assert dec.check_rebalance(book, view("0.0001", "66600", "66600"), STRAT, RISK) == "REBALANCE_MARGIN_HEALTH"
    amount = dec.topup_amount(book, mark, RISK)
    tid = dec.topup_transfer_id(book.symbol, book.opened_ms, 1)
    once = dec.book_topup(book, amount, tid)
    twice = dec.book_topup(once, amount, tid)
    assert once == twice
    assert dec.margin_health(once, mark) >= RISK.topup_target
    assert len(tid) <= 32 and tid.isalnum()
    assert dec.topup_amount(once, mark, RISK) == 0


def test_no_topup_when_disabled() -> None:
    off = RiskConfig(topups_enabled=False)
    assert dec.check_rebalance(opened(), view("0.0001", "66600", "66600"), STRAT, off) is None


def test_under_50_percent_closes_everything() -> None:
    book = opened()
    assert dec.check_close(book, view("0.0001", "75100", "75100"), INST, STRAT, RISK) == "CLOSE_MARGIN_HEALTH"
    assert dec.check_close(book, view("0.0001", "60000", "60000"), INST, STRAT, RISK) is None


def test_take_profit_and_stop_loss_on_net_pnl_over_capital_committed() -> None:
    book = opened()  # committed 6000 + 3000 = 9000
    v = view("0.0001", "60000", "60000")
    tp = dec.book_funding(book, D("480"), D("0.0001"), 1)  # 480 - 9 fees - close fees ~ 459 > 450
    assert dec.check_close(tp, v, INST, STRAT, RISK) == "CLOSE_TAKE_PROFIT"
    sl = dec.book_funding(book, D("-170"), D("-0.0001"), 1)  # -170 - 9 - 10.2 < -180
    assert dec.check_close(sl, v, INST, STRAT, RISK) == "CLOSE_STOP_LOSS"


def test_negative_funding_streak_closes() -> None:
    book = opened()
    v = view("-0.00001", "60000", "60000")
    for i in range(1, STRAT.negative_periods_to_close + 1):
        assert dec.check_close(book, v, INST, STRAT, RISK) is None
        book = dec.book_funding(book, D("-0.06"), D("-0.00001"), i)
    assert dec.check_close(book, v, INST, STRAT, RISK) == "CLOSE_FUNDING_NEGATIVE"


def test_funding_booked_once_per_settlement() -> None:
    book = opened()
    pay = dec.funding_payment(book.short_qty, D("60000"), D("0.0001"))
    assert pay == D("0.6")
    once = dec.book_funding(book, pay, D("0.0001"), 1000)
    assert dec.book_funding(once, pay, D("0.0001"), 1000) == once
    assert once.funding == D("0.6") and once.margin == book.margin + D("0.6")


@given(spot=st.integers(100, 100_000), short=st.integers(100, 100_000), min_steps=st.integers(1, 10))
def test_gap_at_most_one_percent_after_rebalance(spot: int, short: int, min_steps: int) -> None:
    step = D("0.0001")
    s, p = spot * step, short * step
    for o in dec.rebalance_orders(s, p, step, min_steps * step):
        assert o.qty > 0 and o.qty % step == 0
        if o.leg == "spot":
            s -= o.qty
        else:
            assert o.reduce_only
            p -= o.qty
    assert s >= 0 and p >= 0
    assert dec.leg_gap(s, p) <= D("0.01")


def test_liquidation_price_matches_the_notes_form() -> None:
    book = opened()
    liq = dec.liquidation_price(book, INST)
    assert liq == (D("60000") + book.margin / book.short_qty) / (1 + INST.maintenance_margin_rate
                                                                   + INST.perp_taker_fee)
    assert dec.liquidation_distance(book, INST, D("60000")) > D("0.4")


def test_breaker_three_losses_in_a_row() -> None:
    b = g.Breaker()
    for i in range(2):
        b = g.breaker_record_close(b, D("-10"), i * 1000, RISK)
        assert not b.tripped
    b = g.breaker_record_close(b, D("20"), 5000, RISK)  # a win resets the streak
    for i in range(3):
        b = g.breaker_record_close(b, D("-10"), 6000 + i, RISK)
    assert b.tripped and b.reason == "BREAKER_CONSECUTIVE_LOSSES"
    assert not g.breaker_reset(b).tripped


def test_breaker_daily_loss() -> None:
    b = g.breaker_record_close(g.Breaker(), D("-300"), 1000, RISK)
    b = g.breaker_record_close(b, D("100"), 2000, RISK)
    b = g.breaker_record_close(b, D("-201"), g.DAY_MS + 1, RISK)  # a new day: only 201 lost today
    assert not b.tripped
    b = g.breaker_record_close(b, D("-300"), g.DAY_MS + 2, RISK)
    assert b.tripped and b.reason == "BREAKER_DAILY_LOSS"


def test_liquidity_guard() -> None:
    book = ((D("100"), D("1")), (D("100.1"), D("1")), (D("101"), D("5")))
    assert g.check_liquidity(book, D("2"), D("0.002")) is None
    assert g.check_liquidity(book, D("4"), D("0.002")) == "LIQ_SLIPPAGE"
    assert g.check_liquidity(book, D("8"), D("0.002")) == "LIQ_DEPTH"
    assert g.is_spike([D("100"), D("103")], RISK) and not g.is_spike([D("100"), D("101")], RISK)


def test_exchange_guard_reduce_only_and_back() -> None:
    h = g.ExchangeHealth()
    for i in range(20):
        h = g.record_call(h, i % 3 == 0, RISK)  # 35 % errors
    assert g.apply_exchange(h, RiskState.NORMAL, RISK) == RiskState.REDUCE_ONLY
    for _ in range(60):
        h = g.record_call(h, False, RISK)
    assert g.exchange_trigger(h, RiskState.REDUCE_ONLY, RISK) == RiskTrigger.REDUCE_ONLY_CLEARED
    assert g.apply_exchange(g.ExchangeHealth(disconnected=True), RiskState.NORMAL, RISK) == RiskState.REDUCE_ONLY


def test_scheduler_reads_the_funding_time() -> None:
    s = g.Schedule()
    assert g.due_tasks(s, 0, None, 300_000, 3_600_000) == ["risk", "scan"]
    s = g.mark_done(g.mark_done(s, "risk", 0), "scan", 0)
    assert g.due_tasks(s, 299_999, 3_600_000, 300_000, 3_600_000) == []
    assert g.due_tasks(s, 300_000, 3_600_000, 300_000, 3_600_000) == ["scan"]
    # A shortened interval: the settlement at 1 h is due at 1 h, once.
    assert g.due_tasks(s, 3_600_000, 3_600_000, 300_000, 3_600_000)[0] == "funding"
    s = g.mark_done(s, "funding", 3_600_000, 3_600_000)
    assert "funding" not in g.due_tasks(s, 3_600_001, 3_600_000, 300_000, 3_600_000)


@pytest.mark.parametrize("key", sorted(TRANSITIONS, key=lambda k: (k[0].value, k[1].value)))
def test_every_table_transition_applies(key: tuple[CarryState, CarryTrigger]) -> None:
    assert apply_trigger(*key) == TRANSITIONS[key]


@pytest.mark.parametrize("state,trigger", [
    (CarryState.IDLE, CarryTrigger.LEGS_FILLED),
    (CarryState.HEDGING, CarryTrigger.OPEN_SIGNAL),
    (CarryState.STOPPED, CarryTrigger.OPEN_SIGNAL),
    (CarryState.STOPPED, CarryTrigger.FAULT),
    (CarryState.CLOSING, CarryTrigger.REBALANCED),
])
def test_illegal_transitions_refused(state: CarryState, trigger: CarryTrigger) -> None:
    with pytest.raises(IllegalCarryTransition):
        apply_trigger(state, trigger)


def test_every_live_state_reaches_stopping_on_fault_and_control() -> None:
    for s in CarryState:
        if s in (CarryState.STOPPED,):
            continue
        assert apply_trigger(s, CarryTrigger.FAULT) == CarryState.STOPPING
        assert apply_trigger(s, CarryTrigger.CONTROL_STOP) == CarryState.STOPPING


def test_topup_also_restores_the_liquidation_distance_after_a_rally() -> None:
    # Opened at 40,000, the mark now 80,000 and the margin topped up over the rally: health is fine (95 %)
    # but the liquidation price sits only 20 % above the mark.
    book = dec.book_open("BTC/USDT:USDT", D("0.1"), D("40000"), D("40000"), D("6"), D("2"), 0)
    book = dec.book_topup(book, D("3850"), "t1")  # margin 2000 + 3850 = 5850
    mark = D("80000")
    assert dec.margin_health(book, mark) > RISK.topup_health
    assert dec.liquidation_distance(book, INST, mark) < RISK.topup_liq_distance
    v = view("0.0001", "80000", "80000")
    assert dec.check_rebalance(book, v, STRAT, RISK) is None  # health alone misses it
    assert dec.check_rebalance(book, v, STRAT, RISK, INST) == "REBALANCE_MARGIN_HEALTH"
    amount = dec.topup_amount(book, mark, RISK, INST)
    after = dec.book_topup(book, amount, "t2")
    assert dec.liquidation_distance(after, INST, mark) >= RISK.topup_liq_target
    assert dec.topup_amount(after, mark, RISK, INST) == 0


@given(spot_px=st.integers(20_000, 120_000), funds=st.integers(0, 500), rise=st.integers(5, 30))
def test_delever_cut_pays_the_smaller_shorts_topup(spot_px: int, funds: int, rise: int) -> None:
    entry = D(spot_px)
    book = dec.book_open("BTC/USDT:USDT", D("0.1"), entry, entry, D("5"), D("2"), 0)
    mark = entry * (1 + D(rise) / 100)
    v = dec.MarketView(spot=mark, mark=mark, rate=D("0.0001"))
    need = dec.topup_amount(book, mark, RISK, INST)
    cut = dec.delever_qty(book, v, need, D(funds), INST.qty_step)
    if need <= funds:
        assert cut == 0
        return
    assert 0 < cut <= book.short_qty and cut % INST.qty_step == 0
    upnl = (book.perp_entry - mark) * book.short_qty
    freed = cut * v.spot + (book.margin + upnl) * cut / book.short_qty
    after = dec.book_reduce(dec.book_reduce(book, "spot", cut, v.spot, D(0)), "perp", cut, mark, D(0))
    assert D(funds) + freed >= dec.topup_amount(after, mark, RISK, INST) - D("0.01")
