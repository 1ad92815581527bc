"""Limit price from the touch, cancel-and-repost, splitting by notional and depth, the rate-limit guard."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.events import AuditCode
from core.execution.filters import VenueFilters, is_tradable
from core.execution.pricing import (
    LimitPolicy,
    RestingOrder,
    depth_capacity,
    limit_price,
    repost_decision,
    split_order,
)
from core.execution.rate_limit import (
    RateLimitConfig,
    RateLimitGuard,
    on_rate_limited,
    request_slot,
    tick_guard,
)
from core.execution.rebalance import RebalanceConfig, plan_rebalance
from core.risk.checks import Side
from core.risk.state import RiskState
from tests.core.stubs import at

D = Decimal
F = VenueFilters(qty_step=D("0.001"), tick=D("0.1"), min_qty=D("0.001"), min_notional=D(5))


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_limit_price_offset_and_safe_rounding() -> None:
    p = LimitPolicy(offset_bps=D(10))
    assert limit_price(Side.BUY, D("100.05"), D("100.15"), D("0.1"), p) == D("99.9")  # 99.949.. rounds down
    assert limit_price(Side.SELL, D("100.05"), D("100.15"), D("0.1"), p) == D("100.3")  # 100.25.. rounds up
    at_touch = LimitPolicy()
    assert limit_price(Side.BUY, D(100), D("100.1"), D("0.1"), at_touch) == D(100)


def test_post_only_never_crosses_but_a_taker_policy_may() -> None:
    aggressive = LimitPolicy(offset_bps=D(-50))
    assert limit_price(Side.BUY, D(100), D("100.1"), D("0.1"), aggressive) == D(100)  # kept a tick under the ask
    assert limit_price(Side.SELL, D(100), D("100.1"), D("0.1"), aggressive) == D("100.1")
    taker = LimitPolicy(offset_bps=D(-50), post_only=False)
    assert limit_price(Side.BUY, D(100), D("100.1"), D("0.1"), taker) == D("100.5")
    with pytest.raises(ValueError):
        limit_price(Side.BUY, D(101), D(100), D("0.1"), taker)


@given(
    st.decimals(min_value=D("0.1"), max_value=D(100_000), places=2),
    st.integers(1, 100),
    st.decimals(min_value=D(-100), max_value=D(100), places=1),
    st.sampled_from([D("0.01"), D("0.1"), D(1)]),
)
def test_limit_price_is_on_tick_and_post_only_stays_passive(bid: Decimal, spread_ticks: int, off: Decimal,
                                                           tick: Decimal) -> None:
    bid = (bid / tick).to_integral_value() * tick + 2 * tick
    ask = bid + spread_ticks * tick
    pol = LimitPolicy(offset_bps=off)
    buy = limit_price(Side.BUY, bid, ask, tick, pol)
    sell = limit_price(Side.SELL, bid, ask, tick, pol)
    assert (buy / tick) % 1 == 0 and (sell / tick) % 1 == 0
    assert buy < ask and sell > bid
    if off >= 0:
        assert buy <= bid and sell >= ask


def test_repost_after_max_order_age_or_drift() -> None:
    pol = LimitPolicy(max_order_age=timedelta(seconds=30), max_drift_bps=D(20))
    o = RestingOrder("c1", "BTC", Side.BUY, D(100), at())
    assert not repost_decision(o, D("100.1"), at(seconds=10), pol).repost
    aged = repost_decision(o, D("100.1"), at(seconds=30), pol)
    assert aged.repost and aged.reason == "AGE" and aged.event is not None
    assert aged.event.code is AuditCode.EXEC_ORDER_REPOSTED and aged.event.data["age_ms"] == 30_000
    drift = repost_decision(o, D("100.3"), at(seconds=1), pol)
    assert drift.repost and drift.reason == "DRIFT" and drift.new_price == D("100.3")


def test_split_by_notional_and_depth() -> None:
    pol = LimitPolicy(max_notional=D(1000), depth_bps=D(10), depth_share=D("0.5"))
    plan = split_order(D("0.25"), D(10_000), F, pol)
    assert plan.children == (D("0.084"), D("0.083"), D("0.083")) and plan.leftover == 0
    asks = [(D(10_000), D("0.1")), (D("10005"), D("0.1")), (D("10100"), D(5))]
    assert depth_capacity(asks, pol) == D("0.1")
    thin = split_order(D("0.25"), D(10_000), F, pol, asks)
    assert thin.capped_by_depth and thin.total == D("0.1") and thin.leftover == D("0.15")
    with pytest.raises(ValueError):
        split_order(D(1), D(10_000), F, LimitPolicy(max_notional=D(4)))


@settings(max_examples=300)
@given(
    st.decimals(min_value=D("0.001"), max_value=D(10), places=4),
    st.decimals(min_value=D(1), max_value=D(60_000), places=1),
    st.sampled_from([None, D(50), D(500), D(5000)]),
    st.lists(st.tuples(st.integers(0, 50), st.decimals(min_value=D("0.001"), max_value=D(5), places=3)), max_size=6),
)
def test_split_children_clear_minimums_and_never_exceed_intent(
    qty: Decimal, price: Decimal, cap: Decimal | None, levels: list[tuple[int, Decimal]]
) -> None:
    pol = LimitPolicy(max_notional=cap)
    book = sorted((price + i * D("0.1"), q) for i, q in levels)
    try:
        plan = split_order(qty, price, F, pol, book or None)
    except ValueError:
        assert cap is not None and not is_tradable((cap / price // F.qty_step) * F.qty_step, price, F)
        return
    assert plan.total + plan.leftover == qty and plan.total <= qty
    for c in plan.children:
        assert is_tradable(c, price, F) and (c / F.qty_step) % 1 == 0
        if cap is not None:
            assert c * price <= cap
    if book:
        assert plan.total <= depth_capacity(book, pol)


def test_rate_limit_guard_backs_off_degrades_and_recovers() -> None:
    cfg = RateLimitConfig(capacity=D(2), refill_per_second=D(1), refusals_to_backoff=3,
                          backoff_base=timedelta(seconds=2), quiet_period=timedelta(minutes=1), jitter=0.5)
    g = RateLimitGuard.start(cfg)
    slot = request_slot(g, at())
    assert slot.granted
    g = slot.guard
    for i in range(2):
        st_ = on_rate_limited(g, at(seconds=i), cfg, FixedRng(0.0), "BTC")
        g = st_.guard
        assert st_.backoff is None and not g.degraded
    assert not request_slot(g, at(seconds=1)).granted  # the bucket was emptied by the refusal
    third = on_rate_limited(g, at(seconds=2), cfg, FixedRng(0.5), "BTC")
    g = third.guard
    assert [e.code for e in third.events] == [AuditCode.EXEC_RATE_LIMITED, AuditCode.EXEC_RATE_LIMIT_BACKOFF]
    assert third.backoff == timedelta(seconds=2) * (1 - 0.125) and g.degraded and g.attempt == 1
    denied = request_slot(g, at(seconds=3))
    assert not denied.granted and denied.reason == "BACKOFF"
    assert g.interval_factor(cfg) == 2
    # Three more refusals: the next backoff doubles.
    for i in range(3):
        st_ = on_rate_limited(g, at(seconds=10 + i), cfg, FixedRng(0.0), "BTC")
        g = st_.guard
    assert st_.backoff == timedelta(seconds=4) and g.attempt == 2
    assert tick_guard(g, at(seconds=30), cfg).guard == g  # not quiet long enough
    rec = tick_guard(g, at(seconds=12 + 60), cfg)
    assert not rec.guard.degraded and rec.guard.attempt == 0
    assert [e.code for e in rec.events] == [AuditCode.EXEC_RATE_LIMIT_RECOVERED]
    assert request_slot(rec.guard, at(seconds=80)).granted


def test_backoff_jitter_comes_from_the_injected_rng_and_stays_bounded() -> None:
    cfg = RateLimitConfig(refusals_to_backoff=1, backoff_base=timedelta(seconds=1), backoff_cap=timedelta(seconds=8))
    rng = random.Random(7)
    g = RateLimitGuard.start(cfg)
    delays = []
    for i in range(8):
        st_ = on_rate_limited(g, at(seconds=100 * i), cfg, rng)
        g = st_.guard
        assert st_.backoff is not None
        delays.append(st_.backoff)
    for k, d in enumerate(delays):
        full = min(timedelta(seconds=2**k), timedelta(seconds=8))
        assert full * 0.75 <= d <= full
    again = RateLimitGuard.start(cfg)
    rng2 = random.Random(7)
    assert on_rate_limited(again, at(), cfg, rng2).backoff == delays[0]  # same seed, same delay


def test_rate_limit_config_validated() -> None:
    with pytest.raises(ValidationError):
        RateLimitConfig(refusals_to_backoff=0)
    with pytest.raises(ValidationError):
        RateLimitConfig(backoff_cap=timedelta(milliseconds=1))


@pytest.mark.parametrize("state", [RiskState.COOLDOWN, RiskState.REDUCE_ONLY, RiskState.FUSE])
@given(current=st.integers(-50, 50), target=st.integers(-50, 50))
def test_only_exposure_reducing_trades_in_reducing_states(state: RiskState, current: int, target: int) -> None:
    f = VenueFilters(qty_step=D("0.01"), tick=D("0.1"), min_qty=D("0.01"), min_notional=D(5))
    d = plan_rebalance(D(current) / 10, D(target) / 10, D(1), D(100), f, state, None, at(), RebalanceConfig())
    after = D(current) / 10 + d.delta_qty
    assert abs(after) <= abs(D(current) / 10) and after * D(current) >= 0


def test_rebalance_hysteresis_and_minimum_interval() -> None:
    cfg = RebalanceConfig(hysteresis=D("0.1"), min_interval=timedelta(minutes=5))
    args = (D(100), F, RiskState.NORMAL)
    small = plan_rebalance(D("1.00"), D("1.05"), D(1), *args, None, at(), cfg)
    assert small.delta_qty == 0 and small.reason == "HYSTERESIS"
    soon = plan_rebalance(D("1.00"), D("2.00"), D(1), *args, at(), at(seconds=60), cfg)
    assert soon.reason == "MIN_INTERVAL"
    go = plan_rebalance(D("1.00"), D("2.00"), D(1), *args, at(), at(seconds=301), cfg)
    assert go.delta_qty == 1 and go.reason == "TRADE"
    slowed = plan_rebalance(D("1.00"), D("2.00"), D(1), *args, at(), at(seconds=301), cfg, interval_factor=D(2))
    assert slowed.reason == "MIN_INTERVAL"  # a degraded guard doubles the interval
