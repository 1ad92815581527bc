"""Who declares an xtquant order lost (core.oms.lost_orders): the adapter for an accepted order no callback
ever spoke of, the executor for a send whose outcome is unknown; never both."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.oms.lost_orders import LOST_AFTER_LOOKUPS
from shared_schema.models import ResultStatus
from tests.kit.venues import XtVenue
from tests.windows.test_xtquant_broker import XtHarness
from windows.brokers.protocol import OrderRequest, OrderUpdate, PlaceStatus

CODE = "512890.SH"


@pytest.fixture
def venue(tmp_path):
    v = XtVenue(tmp_path)
    v.quote(CODE, 1.099, 1.100)
    yield v
    v.close()


def test_the_adapter_never_declares_an_unknown_send_lost(venue):
    # -1 and nowhere at the venue: the outcome is unknown, and the executor owns that verdict.
    venue.terminal.set_faults(silent_insufficient_funds=True, minus_one_next=1)
    outcome = venue.broker.place_limit_order(OrderRequest("U1", CODE, "BUY", 2_000_000, Decimal("1.101")))
    assert outcome.status is PlaceStatus.UNKNOWN
    events = []
    for _ in range(LOST_AFTER_LOOKUPS + 2):
        venue.clock.advance(10)
        events += venue.events()

    assert [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == "U1"] == []
    assert "U1" not in venue.broker.silent


def test_the_adapter_forgets_an_accepted_order_once_a_callback_speaks_of_it(venue):
    venue.broker.place_limit_order(OrderRequest("A1", CODE, "BUY", 1000, Decimal("1.101")))
    assert "A1" in venue.broker.silent
    venue.events()
    venue.clock.advance(10)
    venue.events()
    assert len(venue.broker.silent) == 0


def test_the_executor_declares_an_unknown_send_that_never_reached_the_venue_lost(tmp_path):
    h = XtHarness(tmp_path, {"cash": "1101", "commission_min": "5"})
    try:
        h.terminal.set_faults(silent_insufficient_funds=True, minus_one_next=1)
        sid = h.send(signal_id="U2", price="1.100")
        h.settle_turn(3)
        assert h.result(sid).status is ResultStatus.ACCEPTED  # unknown: neither sent nor lost yet
        assert h.pool().frozen_512890 > 0
        for _ in range(3 * LOST_AFTER_LOOKUPS):
            if h.result(sid).status is ResultStatus.REJECTED:
                break
            h.clock.advance(h.config.executor.unknown_outcome_lookup_s / LOST_AFTER_LOOKUPS + 0.1)
            h.settle_turn(2)

        result = h.result(sid)
        assert result.status is ResultStatus.REJECTED and "never reached the venue" in result.message
        assert h.pool().frozen_512890 == 0
        assert "U2" not in h.terminal.orders_by_remark()
    finally:
        h.executor.stop()
