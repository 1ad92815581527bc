"""Leverage whitelist, isolated-margin rule, execution-degraded state, liquidation price and reduction plan."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.events import AuditCode
from core.oms.account import HeldPosition, weighted_liq_distance
from core.risk.checks import MarginMode, RiskReason, Side, check_order
from core.risk.config import RiskConfig
from core.risk.evaluate import evaluate
from core.risk.liquidation import (
    isolated_liq_price,
    leverage_excess,
    liq_reduction_event,
    plan_liq_reduction,
)
from core.risk.snapshot import CAUSE_CROSS_MARGIN
from core.risk.state import RiskState
from tests.core.stubs import CFG, at, inputs, intent, snapshot

D = Decimal


def pos(symbol: str, qty: str, mark: str, liq: str) -> HeldPosition:
    q, m = D(qty), D(mark)
    return HeldPosition(symbol, q, q * m, m, D(liq))


@pytest.mark.parametrize(
    ("symbol", "lev", "stressed", "ok"),
    [
        ("BTC-USDT-SWAP", "3", False, True),
        ("BTC/USDT:USDT", "3.5", False, False),
        ("ETHUSDT", "3", False, True),
        ("SOL/USDT:USDT", "2", False, True),
        ("SOL/USDT:USDT", "3", False, False),
        ("DOGE/USDT:USDT", "2", False, False),  # unlisted: 1x
        ("BTC/USDT:USDT", "1", True, True),
        ("BTC/USDT:USDT", "2", True, False),  # event window: 1x
        ("BTC/USDT:USDT", "0", False, False),  # malformed, never "unlevered"
    ],
)
def test_leverage_whitelist_and_event_window(symbol: str, lev: str, stressed: bool, ok: bool) -> None:
    reason = check_order(snapshot(event_window=stressed), intent(symbol=symbol, leverage=lev), CFG)
    if ok:
        assert reason is None
    else:
        assert reason is RiskReason.RISK_LEVERAGE


def test_reductions_pass_whatever_the_leverage() -> None:
    assert check_order(snapshot(event_window=True), intent("BTCUSDT", opens=False, leverage="5"), CFG) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"max_leverage": {"BTC": D("0.5")}},
        {"stressed_max_leverage": D("0.5")},
        {"max_leverage": {"btc": D(2), "BTC": D(3)}},
        {"max_leverage": {"": D(2)}},
        {"liq_force_reduce_below": D("0.12"), "liq_target": D("0.10")},
    ],
)
def test_bad_leverage_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RiskConfig(**bad)


def test_configurable_whitelist() -> None:
    cfg = RiskConfig(max_leverage={"BTC": D(5), "AVAX": D(2)})
    assert cfg.leverage_cap("AVAX/USDT:USDT", False) == 2 and cfg.leverage_cap("ETHUSDT", False) == 1
    assert cfg.leverage_cap("BTCUSDT", True) == 1


def test_cross_margin_order_refused_when_isolated_required() -> None:
    cross = intent("BTCUSDT", margin_mode=MarginMode.CROSS, leverage="2")
    assert check_order(snapshot(), cross, CFG) is RiskReason.RISK_CROSS_MARGIN
    assert check_order(snapshot(), cross, RiskConfig(require_isolated_margin=False)) is None


def test_cross_margin_position_found_blocks_opens_until_gone() -> None:
    found = evaluate(snapshot(), inputs(cross_margin_symbols=frozenset({"ETHUSDT"})), at(), CFG)
    s = found.snapshot
    assert s.state is RiskState.REDUCE_ONLY and CAUSE_CROSS_MARGIN in s.reduce_only_causes
    assert [e.code for e in found.events][:2] == [AuditCode.RISK_CROSS_MARGIN_FOUND, AuditCode.RISK_STATE_CHANGE]
    assert check_order(s, intent("BTCUSDT", leverage="2"), CFG) is RiskReason.RISK_REDUCE_ONLY
    assert check_order(s, intent("BTCUSDT", opens=False, side=Side.SELL), CFG) is None
    again = evaluate(s, inputs(cross_margin_symbols=frozenset({"ETHUSDT"})), at(seconds=1), CFG)
    assert not again.events or AuditCode.RISK_CROSS_MARGIN_FOUND not in [e.code for e in again.events]
    cleared = evaluate(again.snapshot, inputs(), at(seconds=2), CFG)
    codes = [e.code for e in cleared.events]
    assert AuditCode.RISK_CROSS_MARGIN_CLEARED in codes
    # Steps down through DEGRADED (and on to NORMAL at once: the drawdown is healthy), like trade_ok does.
    steps = [e.data["to"] for e in cleared.events if e.code is AuditCode.RISK_STATE_CHANGE]
    assert steps == ["DEGRADED", "NORMAL"] and not cleared.snapshot.reduce_only_causes


def test_cross_margin_ignored_when_not_required() -> None:
    cfg = RiskConfig(require_isolated_margin=False)
    r = evaluate(snapshot(), inputs(cross_margin_symbols=frozenset({"ETHUSDT"})), at(), cfg)
    assert r.snapshot.state is RiskState.NORMAL and not r.events


def test_execution_degraded_holds_degraded_until_it_recovers() -> None:
    r = evaluate(snapshot(), inputs(exec_degraded=True), at(), CFG)
    assert r.snapshot.state is RiskState.DEGRADED and r.snapshot.exec_degraded
    held = evaluate(r.snapshot, inputs(exec_degraded=True), at(hours=1), CFG)
    assert held.snapshot.state is RiskState.DEGRADED
    back = evaluate(held.snapshot, inputs(), at(hours=2), CFG)
    assert back.snapshot.state is RiskState.NORMAL


def test_liq_hysteresis_under_8_until_10() -> None:
    near = [pos("BTCUSDT", "1", "100", "93")]  # 7 %
    low = evaluate(snapshot(), inputs(positions=near), at(), CFG)
    assert low.snapshot.liq_blocked and low.snapshot.forced_reduction
    assert check_order(low.snapshot, intent("BTCUSDT", leverage="2"), CFG) is RiskReason.RISK_LIQ_DISTANCE
    mid = evaluate(low.snapshot, inputs(positions=[pos("BTCUSDT", "1", "100", "91")]), at(seconds=1), CFG)
    assert mid.snapshot.liq_blocked  # 9 %: still under the 10 % target
    ok = evaluate(mid.snapshot, inputs(positions=[pos("BTCUSDT", "1", "100", "90")]), at(seconds=2), CFG)
    assert not ok.snapshot.liq_blocked
    assert AuditCode.RISK_LIQ_DISTANCE_RESTORED in [e.code for e in ok.events]


def test_isolated_liq_price_matches_the_documented_form() -> None:
    # 1 BTC long at 100, 10 margin (10x), mmr 0.5 %, taker 0.05 %: (100 - 10) / (1 - 0.0055)
    assert isolated_liq_price(D(100), D(1), D(10), D("0.005"), D("0.0005")) == D(90) / D("0.9945")
    assert isolated_liq_price(D(100), D(-1), D(10), D("0.005"), D("0.0005")) == D(110) / D("1.0055")
    assert isolated_liq_price(D(100), D(1), D(100), D("0.005"), D(0)) == 0
    with pytest.raises(ValueError):
        isolated_liq_price(D(100), D(0), D(10), D("0.005"), D(0))


def test_reduction_plan_cuts_nearest_first_just_enough() -> None:
    positions = [
        pos("BTCUSDT", "10", "100", "95"),  # 5 %, 1000 notional
        pos("ETHUSDT", "-10", "100", "120"),  # 20 %, 1000 notional
        pos("SOLUSDT", "1", "100", "94"),  # 6 %, 100 notional
    ]
    plan = plan_liq_reduction(positions, CFG, {"BTCUSDT": D("0.01"), "SOLUSDT": D("0.1")})
    assert plan.distance_before == D("0.05") and plan.distance_after is not None and plan.distance_after >= D("0.1")
    assert [r.symbol for r in plan.reductions] == ["BTCUSDT", "SOLUSDT"]
    btc = plan.reductions[0]
    assert btc.qty == 10  # near notional may be at most 5/95 of 1000: all of BTC and most of SOL go
    ev = liq_reduction_event(plan, at())
    assert ev is not None and ev.code is AuditCode.RISK_LIQ_REDUCTION_PLANNED
    assert plan_liq_reduction([pos("X", "1", "100", "50")], CFG).reductions == ()
    assert liq_reduction_event(plan_liq_reduction([], CFG), at()) is None


dist = st.integers(min_value=1, max_value=60)
book = st.lists(
    st.tuples(st.integers(1, 500), dist, st.booleans()),
    min_size=1,
    max_size=8,
)


@given(book)
def test_reduction_plan_always_reaches_target_and_never_overcuts(rows: list[tuple[int, int, bool]]) -> None:
    positions = []
    for i, (qty, pct, short) in enumerate(rows):
        mark = D(100)
        liq = mark * (1 + D(pct) / 100) if short else mark * (1 - D(pct) / 100)
        positions.append(pos(f"S{i}", str(-qty if short else qty), "100", str(liq)))
    plan = plan_liq_reduction(positions, CFG, {p.symbol: D(1) for p in positions})
    before = weighted_liq_distance(positions, CFG.liq_percentile)
    assert plan.distance_before == before
    if before is not None and before >= CFG.liq_target:
        assert not plan.needed
        return
    assert plan.distance_after is None or plan.distance_after >= CFG.liq_target
    by_symbol = {p.symbol: p for p in positions}
    for r in plan.reductions:
        p = by_symbol[r.symbol]
        assert 0 < r.qty <= abs(p.qty) and r.distance < CFG.liq_target
    # Nearest first: the cut distances never decrease.
    ds = [r.distance for r in plan.reductions]
    assert ds == sorted(ds)


def test_event_window_caps_positions_already_open() -> None:
    btc = pos("BTCUSDT", "1", "100", "70")  # 100 notional
    eth = pos("ETHUSDT", "-2", "50", "70")  # 100 notional
    margins = {"BTCUSDT": D(40), "ETHUSDT": D(100)}  # 2.5x and 1x
    assert leverage_excess([btc, eth], margins, CFG, stressed=False) == ()
    (x,) = leverage_excess([btc, eth], margins, CFG, stressed=True, qty_steps={"BTCUSDT": D("0.01")})
    assert x.symbol == "BTCUSDT" and x.leverage == D("2.5") and x.cap == 1
    assert x.add_margin == D(60) and x.reduce_qty == D("0.6")
    assert leverage_excess([btc], {}, CFG, stressed=True) == ()  # no margin known: skipped


@given(st.integers(1, 1000), st.integers(1, 10_000), st.integers(1, 500), st.booleans())
def test_leverage_fix_lands_at_or_under_the_cap(qty: int, mark: int, margin: int, stressed: bool) -> None:
    p = pos("SOLUSDT", str(D(qty) / 10), str(mark), "1")
    found = leverage_excess([p], {"SOLUSDT": D(margin)}, CFG, stressed, {"SOLUSDT": D("0.1")})
    cap = CFG.leverage_cap("SOLUSDT", stressed)
    if not found:
        assert p.notional <= D(margin) * cap
        return
    (x,) = found
    assert p.notional / (D(margin) + x.add_margin) == cap
    left = abs(p.qty) - x.reduce_qty
    assert left * p.mark <= D(margin) * cap and 0 < x.reduce_qty <= abs(p.qty)
    assert left * p.mark + D("0.1") * p.mark > D(margin) * cap  # never more than one step too much
