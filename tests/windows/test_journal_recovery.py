"""Restart recovery: an order journaled but never confirmed is looked up with the running sweep's policy."""

from __future__ import annotations

from shared_schema.models import ResultStatus
from tests.kit.harness import Harness
from windows.brokers.paper import PaperBroker


def _die_before_the_send_record(h: Harness, *, reach_venue: bool) -> None:
    """The executor journals the intent, then dies before it journals what the send returned."""
    def send(coid: str) -> None:
        if reach_venue:
            live = h.executor.state.orders[coid]
            from decimal import Decimal

            from windows.brokers.protocol import OrderRequest
            r = live.record
            h.broker.place_limit_order(OrderRequest(coid, r.symbol, r.side, r.shares, Decimal(r.price)))
    h.executor._send = send  # type: ignore[method-assign]


def test_restart_does_not_declare_an_unconfirmed_order_lost_after_one_lookup(tmp_path):
    h = Harness(tmp_path)
    _die_before_the_send_record(h, reach_venue=False)
    h.send(signal_id="w1", shares=1000)
    h.turn()
    h.restart()
    # One lookup at start found nothing: that is one miss, not a verdict.
    assert h.result("w1").status is ResultStatus.ACCEPTED
    assert float(h.pool().frozen_512890) >= 1100.0  # the cash (and any fee estimate) stays frozen
    gap = h.config.executor.unknown_outcome_lookup_s / 3 + 0.1
    h.clock.advance(gap)
    h.turn()
    assert h.result("w1").status is ResultStatus.ACCEPTED  # two misses
    h.clock.advance(gap)
    h.turn()
    result = h.result("w1")
    assert result.status is ResultStatus.REJECTED and "never reached the venue" in result.message
    assert float(h.pool().frozen_512890) == 0
    assert h.placed() == []
    h.executor.stop()


def test_an_order_the_venue_lists_late_after_a_restart_is_folded_not_lost(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    _die_before_the_send_record(h, reach_venue=True)
    h.send(signal_id="late", shares=1000)
    h.turn()
    assert len(h.placed()) == 1
    real_query = PaperBroker.query_orders
    calls = {"n": 0}

    def trailing_cache(self):
        calls["n"] += 1
        return [] if calls["n"] <= 1 else real_query(self)  # the venue's order list trails the placement

    monkeypatch.setattr(PaperBroker, "query_orders", trailing_cache)
    h.restart()
    h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
    h.turn(2)
    assert h.result("late").status is ResultStatus.FILLED
    assert float(h.pool().used_512890) >= 1100.0  # fees may be counted in used
    assert len(h.placed()) == 1  # never sent twice
    h.executor.stop()


def test_the_lookup_policy_spaces_lookups_and_loses_only_after_enough_misses():
    from datetime import datetime, timedelta

    from core.oms.lost_orders import LookupPolicy

    policy = LookupPolicy(3, timedelta(seconds=9))
    t0 = datetime(2026, 1, 5, 10, 0)
    assert policy.is_due(None, t0)
    first = policy.miss(None, t0)
    assert not first.lost and not policy.is_due(first.track, t0 + timedelta(seconds=2.9))
    assert policy.is_due(first.track, t0 + timedelta(seconds=3))
    second = policy.miss(first.track, t0 + timedelta(seconds=3))
    assert not second.lost
    assert policy.miss(second.track, t0 + timedelta(seconds=6)).lost
    assert policy.miss(policy.found(t0 + timedelta(seconds=6)), t0 + timedelta(seconds=9)).track.misses == 1
