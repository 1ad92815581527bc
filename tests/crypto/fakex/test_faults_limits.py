"""Fault plan and rate limiter on their own, with the request clock injected."""

from __future__ import annotations

from crypto.fakex.faults import FaultPlan, FaultRule
from crypto.fakex.ratelimit import RateLimiter


def test_a_fault_hits_count_matching_requests_then_disarms() -> None:
    plan = FaultPlan()
    plan.inject(FaultRule(kind="lose_response", path="/api/v5/trade/", method="POST", count=2), wall_ms=0)
    assert plan.take(("lose_response",), "GET", "/api/v5/trade/order", 1) is None  # wrong method
    assert plan.take(("lose_response",), "POST", "/api/v5/account/balance", 1) is None  # wrong path
    assert plan.take(("latency",), "POST", "/api/v5/trade/order", 1) is None  # other kind
    assert plan.take(("lose_response",), "POST", "/api/v5/trade/order", 1) is not None
    assert plan.take(("lose_response",), "POST", "/api/v5/trade/batch-orders", 2) is not None
    assert plan.take(("lose_response",), "POST", "/api/v5/trade/order", 3) is None
    assert plan.active() == []


def test_a_disconnect_window_lasts_its_duration_whatever_the_count() -> None:
    plan = FaultPlan()
    plan.inject(FaultRule(kind="disconnect", duration_ms=1000), wall_ms=10_000)
    for t in (10_000, 10_500, 10_999):
        assert plan.take(("disconnect",), "GET", "/x", t) is not None
    assert plan.take(("disconnect",), "GET", "/x", 11_000) is None
    assert plan.active() == []


def test_rate_limit_window_slides_and_refusals_are_not_counted() -> None:
    limiter = RateLimiter()
    assert [limiter.allow("ep", 2, 1000, t) for t in (0, 100, 200, 300)] == [True, True, False, False]
    assert limiter.allow("ep", 2, 1000, 1000) is True  # the request at 0 left the window
    assert limiter.allow("ep", 2, 1000, 1050) is False
    limiter.override("ep", 5, 1000)
    assert all(limiter.allow("ep", 2, 1000, 1100 + i) for i in range(5))
    assert limiter.allow("other", 1, 1000, 0) and not limiter.allow("other", 1, 1000, 1)
