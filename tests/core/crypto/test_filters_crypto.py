"""Filters before every order on a margined market: signed legs, targets under the minimum, dust locks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import AuditCode
from core.execution.filters import (
    VenueFilters,
    apply_venue_filters,
    filter_signed,
    filter_target,
    fold_filter_outcome,
    is_tradable,
    split_signed_delta,
)
from core.risk.checks import RiskReason, check_order
from tests.core.stubs import CFG, at, intent, snapshot

D = Decimal
# OKX BTC-USDT-SWAP in base units: 0.01 BTC per contract, lot 1 contract -> step 0.01 BTC; min 5 USDT.
BTC = VenueFilters(qty_step=D("0.01"), tick=D("0.1"), min_qty=D("0.01"), min_notional=D(5), max_leverage=D(100))


def test_target_under_minimum_goes_to_zero_and_is_audited() -> None:
    out = filter_target("BTC", D("0.00004"), D(50_000), BTC, at())
    assert out.target == 0 and [e.code for e in out.events] == [AuditCode.EXEC_FILTER_IGNORE]
    kept = filter_target("BTC", D("0.0371"), D(50_000), BTC, at())
    assert kept.target == D("0.03") and kept.events == ()
    assert filter_target("BTC", D(0), D(50_000), BTC, at()).events == ()


def test_signed_delta_splits_into_close_and_open_legs() -> None:
    assert split_signed_delta(D(3), D(-5)) == (D(-3), D(-2))
    assert split_signed_delta(D(3), D(-1)) == (D(-1), D(0))
    assert split_signed_delta(D(-2), D(1)) == (D(1), D(0))
    assert split_signed_delta(D(0), D(-1)) == (D(0), D(-1))
    assert split_signed_delta(D(1), D(2)) == (D(0), D(2))


def test_flip_filtered_as_reduce_only_close_then_checked_open() -> None:
    close, open_ = filter_signed("BTC", D("0.05"), D("-0.087"), D(50_000), BTC, at())
    assert close.order is not None and close.order.reduce_only and close.order.qty == D("0.05")
    assert open_.order is not None and not open_.order.reduce_only and open_.order.qty == D("0.03")


def test_dust_close_locks_the_symbol_and_blocks_adds() -> None:
    close, _ = filter_signed("BTC", D("0.00008"), D("-0.00008"), D(50_000), BTC, at())
    assert close.order is None and close.dust_lock
    assert [e.code for e in close.events] == [AuditCode.EXEC_DUST_POSITION_STUCK]
    res = fold_filter_outcome(snapshot(), "BTC", close, at(), CFG)
    assert "BTC" in res.snapshot.dust_locked and res.events[0].code is AuditCode.RISK_DUST_LOCKED
    assert check_order(res.snapshot, intent("BTC"), CFG) is RiskReason.RISK_DUST_LOCKED
    assert fold_filter_outcome(snapshot(), "BTC", _, at(), CFG).snapshot == snapshot()


qty = st.decimals(min_value=D("0.0001"), max_value=D(20), places=5)
price = st.decimals(min_value=D("0.5"), max_value=D(100_000), places=3)
steps = st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D(1)])
ticks = st.sampled_from([D("0.01"), D("0.1"), D("0.5")])
minimum = st.sampled_from([D(0), D(5), D(100)])


@given(qty, price, steps, ticks, minimum, st.decimals(min_value=D(-20), max_value=D(20), places=4), st.booleans())
def test_filtered_order_never_exceeds_intent_and_always_clears_minimums(
    q: Decimal, p: Decimal, step: Decimal, tick: Decimal, min_notional: Decimal, position: Decimal, reduces: bool
) -> None:
    f = VenueFilters(qty_step=step, tick=tick, min_qty=step, min_notional=min_notional or None)
    out = apply_venue_filters("X", q, p, f, position, reduces, at())
    if out.order is None:
        assert out.reason in (AuditCode.EXEC_FILTER_IGNORE.value, AuditCode.EXEC_DUST_POSITION_STUCK.value)
        assert len(out.events) == 1
        return
    o = out.order
    assert 0 < o.qty <= q and o.price <= p and (o.qty / step) % 1 == 0 and (o.price / tick) % 1 == 0
    assert o.qty >= f.min_qty and is_tradable(o.qty, o.price, f)
    if reduces:
        assert o.qty <= abs(position)  # a reduction never flips


@given(st.decimals(min_value=D(-5), max_value=D(5), places=3), st.decimals(min_value=D(-5), max_value=D(5), places=3))
def test_signed_legs_sum_to_the_delta_and_close_never_flips(position: Decimal, delta: Decimal) -> None:
    close, open_ = split_signed_delta(position, delta)
    assert close + open_ == delta
    assert abs(position + close) <= abs(position)
    assert (position + close) * position >= 0
    if open_:
        assert position + close == 0 or (open_ > 0) == (position > 0)


def test_bad_filter_records_are_refused() -> None:
    for kw in ({"qty_step": D(0)}, {"tick": D(0)}, {"min_qty": D(-1)}, {"min_notional": D(-5)},
               {"max_leverage": D("0.5")}):
        args = {"qty_step": D("0.01"), "tick": D("0.1"), **kw}
        with pytest.raises(ValueError, match="FILTERS_INVALID"):
            VenueFilters(**args)
