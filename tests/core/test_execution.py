from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import AuditCode
from core.execution.filters import VenueFilters, apply_venue_filters, round_down, target_after_minimum
from core.execution.health import ExecutionHealth, HealthConfig, Sample, assess
from core.execution.protective import (
    MissingSlPolicy,
    ProtectiveKind,
    oco_to_cancel,
    on_attach_result,
    plan_protective_orders,
)
from core.execution.rate_limit import TokenBucket, acquire, backoff_delay
from core.execution.rebalance import RebalanceConfig, plan_rebalance
from core.risk.checks import RiskReason, check_order
from core.risk.state import RiskState
from tests.core.stubs import CFG, at, intent, snapshot

D = Decimal
BTC = VenueFilters.crypto(qty_step=D("0.001"), tick=D("0.1"), max_leverage=D(3))
ETF = VenueFilters(qty_step=D(100), tick=D("0.001"))


def test_rounds_qty_and_price_down() -> None:
    out = apply_venue_filters("BTCUSDT", D("0.12345"), D("50000.19"), BTC, D(0), False, at())
    assert out.order is not None and out.order.qty == D("0.123") and out.order.price == D("50000.1")
    etf = apply_venue_filters("510300", D(250), D("3.9999"), ETF, D(0), False, at())
    assert etf.order is not None and etf.order.qty == 200 and etf.order.price == D("3.999")


def test_under_min_notional_is_dropped_with_filter_ignore() -> None:
    out = apply_venue_filters("BTCUSDT", D("0.0001"), D("40000"), BTC, D(0), False, at())  # 4 USDT
    assert out.order is None and out.reason == "EXEC_FILTER_IGNORE"
    assert out.events[0].code is AuditCode.EXEC_FILTER_IGNORE


def test_closing_dust_is_not_a_failure_but_dust_locks() -> None:
    out = apply_venue_filters("BTCUSDT", D("0.0001"), D("40000"), BTC, D("0.0001"), True, at())
    assert out.order is None and out.dust_lock and out.events[0].code is AuditCode.EXEC_DUST_POSITION_STUCK
    from core.risk.manual import dust_lock

    snap = dust_lock(snapshot(), "BTCUSDT", at(), CFG, "dust").snapshot
    assert check_order(snap, intent("BTCUSDT"), CFG) is RiskReason.RISK_DUST_LOCKED


def test_reduction_never_flips_and_leverage_rechecked() -> None:
    out = apply_venue_filters("BTCUSDT", D(2), D(40000), BTC, D("0.5"), True, at())
    assert out.order is not None and out.order.qty == D("0.5") and out.order.reduce_only
    lev = apply_venue_filters("BTCUSDT", D(1), D(40000), BTC, D(0), False, at(), leverage=D(4))
    assert lev.order is None and lev.reason == "RISK_LEVERAGE"


def test_target_below_minimum_forced_to_zero() -> None:
    assert target_after_minimum(D("0.0001"), D(40000), BTC) == 0
    assert target_after_minimum(D("0.0012"), D(40000), BTC) == D("0.001")


@given(
    st.decimals(min_value=D(0), max_value=D(10**6), places=6), st.sampled_from([D("0.001"), D(100), D("0.5")])
)
def test_round_down_never_exceeds_and_is_on_step(value: Decimal, step: Decimal) -> None:
    r = round_down(value, step)
    assert r <= value and value - r < step and (r / step) == (r / step).to_integral_value()


RB = RebalanceConfig()


@pytest.mark.parametrize(
    ("state", "current", "target", "expected_delta"),
    [
        (RiskState.NORMAL, D(0), D(1), D(1)),
        (RiskState.NORMAL, D(1), D("1.01"), D(0)),  # hysteresis
        (RiskState.COOLDOWN, D(1), D(2), D(0)),  # cannot grow
        (RiskState.COOLDOWN, D(2), D(1), D(-1)),
        (RiskState.REDUCE_ONLY, D(1), D(-1), D(-1)),  # never past zero
        (RiskState.REDUCE_ONLY, D(0), D(1), D(0)),
        (RiskState.FUSE, D(3), D(3), D(-3)),  # economic full close
    ],
)
def test_rebalance_respects_risk_state(state, current, target, expected_delta) -> None:
    d = plan_rebalance(current, target, D(1), D(40000), BTC, state, None, at(), RB)
    assert d.delta_qty == expected_delta


def test_rebalance_min_interval_unless_forced_and_budget_scales() -> None:
    d = plan_rebalance(D(0), D(1), D(1), D(40000), BTC, RiskState.NORMAL, at(), at(seconds=60), RB)
    assert d.delta_qty == 0 and d.reason == "MIN_INTERVAL"
    f = plan_rebalance(D(1), D(1), D(1), D(40000), BTC, RiskState.FUSE, at(), at(seconds=60), RB, forced=True)
    assert f.delta_qty == D(-1)
    b = plan_rebalance(D(0), D(1), D("0.25"), D(40000), BTC, RiskState.DEGRADED, None, at(), RB)
    assert b.delta_qty == D("0.25")


def test_token_bucket_and_backoff() -> None:
    b = TokenBucket(capacity=D(2), refill_per_second=D(1))
    r1 = acquire(b, at())
    r2 = acquire(r1.bucket, at())
    r3 = acquire(r2.bucket, at())
    assert r1.granted and r2.granted and not r3.granted and r3.retry_after == timedelta(seconds=1)
    r4 = acquire(r3.bucket, at(seconds=1))
    assert r4.granted
    assert acquire(r4.bucket, at(seconds=-100)).granted is False  # clock stepping back adds no tokens
    assert [backoff_delay(i).total_seconds() for i in range(4)] == [1, 2, 4, 8]
    assert backoff_delay(50) == timedelta(minutes=2)


def test_execution_health_shrinks_slows_and_freezes() -> None:
    cfg = HealthConfig()
    h = ExecutionHealth()
    for i in range(5):
        h = h.record("SOLUSDT", Sample(at(seconds=i), rejected=False, slippage_bps=D(30)), cfg)
    v = assess(h, "SOLUSDT", at(seconds=10), cfg)
    assert v.size_factor == D("0.5") and not v.freeze
    for i in range(5):
        h = h.record("SOLUSDT", Sample(at(seconds=20 + i), rejected=True), cfg)
    v = assess(h, "SOLUSDT", at(seconds=30), cfg)
    assert v.freeze and "REJECT_RATE_FREEZE" in v.reasons
    assert assess(h, "SOLUSDT", at(hours=2), cfg) == assess(ExecutionHealth(), "SOLUSDT", at(), cfg)


def test_protective_orders_sl_first_reduce_only_oco() -> None:
    orders = plan_protective_orders("BTCUSDT", D("0.5"), D(38000), D(45000), "g1")
    assert [o.kind for o in orders] == [ProtectiveKind.SL, ProtectiveKind.TP]
    assert all(o.reduce_only and o.close_side == "SELL" for o in orders)
    assert [o.kind for o in oco_to_cancel(orders, ProtectiveKind.TP)] == [ProtectiveKind.SL]
    with pytest.raises(ValueError):
        plan_protective_orders("BTCUSDT", D("0.5"), D(46000), D(45000), "g1")


def test_sl_failure_reduce_only_or_freeze_tp_failure_only_audited() -> None:
    r = on_attach_result(snapshot(), "BTCUSDT", ProtectiveKind.SL, False, at(), CFG)
    assert (
        r.snapshot.state is RiskState.REDUCE_ONLY
        and r.events[0].code is AuditCode.EXEC_PROTECTIVE_ORDER_MISSING
    )
    f = on_attach_result(
        snapshot(), "BTCUSDT", ProtectiveKind.SL, False, at(), CFG, MissingSlPolicy.FREEZE_SYMBOL
    )
    assert "BTCUSDT" in f.snapshot.frozen_symbols and f.snapshot.state is RiskState.NORMAL
    t = on_attach_result(snapshot(), "BTCUSDT", ProtectiveKind.TP, False, at(), CFG)
    assert t.snapshot == snapshot() and t.events[0].code is AuditCode.EXEC_TP_ATTACH_FAILED
