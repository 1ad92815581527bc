"""What every Broker must do, run against PaperBroker and XtQuantBroker on the fake MiniQMT terminal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core.oms.order_fsm import OrderRecord, OrderState, apply_update
from tests.kit.venues import BASE_POSITIONS, VENUES
from windows.brokers.protocol import Broker, ConnectionEvent, OrderRequest, OrderUpdate, PlaceStatus

CODE = "512890.SH"


@pytest.fixture(params=sorted(VENUES))
def venue_factory(request, tmp_path):
    made = []

    def make(partial: bool = False):
        venue = VENUES[request.param](tmp_path / f"v{len(made)}", partial=partial)
        made.append(venue)
        return venue

    yield make
    for venue in made:
        venue.close()


@pytest.fixture
def venue(venue_factory):
    v = venue_factory()
    v.quote(CODE, 1.099, 1.100)
    return v


def buy(coid: str, shares: int = 1000, price: str = "1.101") -> OrderRequest:
    return OrderRequest(coid, CODE, "BUY", shares, Decimal(price))


def sell(coid: str, shares: int, price: str = "1.099") -> OrderRequest:
    return OrderRequest(coid, CODE, "SELL", shares, Decimal(price))


def updates_for(events, coid: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def fold(updates: list[OrderUpdate], shares: int) -> OrderRecord:
    record = OrderRecord(updates[0].client_order_id, CODE, "BUY", shares, "1.101", state=OrderState.SENT)
    for u in updates:
        record = apply_update(record, u.state, u.filled_shares, u.filled_value_fen, u.fees_fen).order
    return record


def test_both_implement_the_protocol(venue):
    assert isinstance(venue.broker, Broker)


def test_marketable_buy_fills_with_exact_cumulative_value_and_fees(venue):
    outcome = venue.broker.place_limit_order(buy("B1"))

    assert outcome.status is PlaceStatus.SENT
    ups = updates_for(venue.events(), "B1")
    assert ups[-1].state is OrderState.FILLED
    assert (ups[-1].filled_shares, ups[-1].filled_value_fen, ups[-1].fees_fen) == (1000, 110_000, 11)
    filled = [u.filled_shares for u in ups]
    assert filled == sorted(filled), "cumulative fills never shrink"


def test_partial_fill_then_cancel_keeps_the_fills(venue_factory):
    venue = venue_factory(partial=True)
    venue.quote(CODE, 1.099, 1.100)
    venue.broker.place_limit_order(buy("P1"))
    ups = updates_for(venue.events(), "P1")
    assert ups[-1].state is OrderState.PARTIAL
    assert (ups[-1].filled_shares, ups[-1].filled_value_fen) == (500, 55_000)

    venue.broker.cancel_order("P1")
    final = updates_for(venue.events(), "P1")[-1]

    assert final.state is OrderState.CANCELLED
    assert (final.filled_shares, final.filled_value_fen, final.fees_fen) == (500, 55_000, 6)


def test_sell_above_sellable_volume_is_rejected_with_a_reason(venue):
    outcome = venue.broker.place_limit_order(sell("S1", BASE_POSITIONS[CODE] + 100))

    final = updates_for(venue.events(), "S1")
    assert outcome.status in (PlaceStatus.SENT, PlaceStatus.REJECTED)
    assert final and final[-1].state is OrderState.REJECTED
    assert final[-1].message


def test_an_order_refused_before_it_gets_an_order_id_ends_rejected_with_the_reason(venue):
    """QMT's async response can carry order_id <= 0 with an error: the order never reached the counter."""
    cash = venue.broker.query_asset().cash
    venue.refuse_next_order()

    outcome = venue.broker.place_limit_order(buy("Q1"))
    events = venue.events()

    assert outcome.status in (PlaceStatus.SENT, PlaceStatus.REJECTED)
    final = updates_for(events, "Q1")
    assert final and final[-1].state is OrderState.REJECTED and final[-1].message
    assert [u.state for u in venue.broker.query_orders() if u.client_order_id == "Q1"] in ([], [OrderState.REJECTED])
    assert venue.broker.query_asset().cash == cash
    venue.quote(CODE, 1.099, 1.100, venue.clock.advance(60))
    assert updates_for(venue.events(), "Q1") == [], "a final rejection says nothing more"


def test_query_orders_finds_orders_by_client_order_id(venue):
    venue.broker.place_limit_order(buy("F1"))
    venue.broker.place_limit_order(buy("W1", price="1.050"))  # below the ask: rests
    venue.events()

    by_coid = {u.client_order_id: u for u in venue.broker.query_orders()}

    assert by_coid["F1"].state is OrderState.FILLED and by_coid["F1"].filled_value_fen == 110_000
    assert by_coid["W1"].state in (OrderState.SENT, OrderState.ACK) and by_coid["W1"].filled_shares == 0
    assert (by_coid["W1"].code, by_coid["W1"].side, by_coid["W1"].shares) == (CODE, "BUY", 1000)


def test_reports_fold_to_the_same_truth_duplicated_or_reordered(venue_factory):
    venue = venue_factory(partial=True)
    venue.quote(CODE, 1.099, 1.100)
    venue.broker.place_limit_order(buy("D1", shares=1500))
    events = venue.events()
    for _minute in range(10):  # each venue fills its own way (paper halves the rest, the fake 500 a step)
        venue.quote(CODE, 1.099, 1.100, venue.clock.advance(60))
        events += venue.events()
    ups = updates_for(events, "D1")
    truth = {u.client_order_id: u for u in venue.broker.query_orders()}["D1"]

    once, twice, backwards = fold(ups, 1500), fold(ups + ups, 1500), fold(list(reversed(ups)), 1500)

    assert truth.state is OrderState.FILLED
    for record in (once, twice, backwards):
        assert (record.state, record.filled_shares, record.filled_value_fen, record.fees_fen) == (
            truth.state, truth.filled_shares, truth.filled_value_fen, truth.fees_fen)
    assert venue.events() == [], "nothing new, nothing said"


def test_a_client_order_id_is_never_sent_twice(venue):
    venue.broker.place_limit_order(buy("U1"))
    venue.events()

    again = venue.broker.place_limit_order(buy("U1"))

    assert again.status is PlaceStatus.REJECTED
    assert [u.client_order_id for u in venue.broker.query_orders()].count("U1") == 1


def test_queries_return_none_when_the_venue_cannot_answer(venue):
    venue.make_unanswerable()

    assert venue.broker.query_orders() is None
    assert venue.broker.query_positions() is None
    assert venue.broker.query_asset() is None


def test_shares_bought_today_are_sellable_only_tomorrow(venue):
    venue.broker.place_limit_order(buy("T1"))
    venue.events()
    pos = {p.code: p for p in venue.broker.query_positions()}[CODE]
    assert (pos.volume, pos.can_use_volume) == (BASE_POSITIONS[CODE] + 1000, BASE_POSITIONS[CODE])

    venue.broker.place_limit_order(sell("T2", BASE_POSITIONS[CODE] + 1000))
    assert updates_for(venue.events(), "T2")[-1].state is OrderState.REJECTED

    venue.quote(CODE, 1.099, 1.100, venue.clock.now() + timedelta(days=1))
    venue.events()
    pos = {p.code: p for p in venue.broker.query_positions()}[CODE]
    assert pos.can_use_volume == BASE_POSITIONS[CODE] + 1000


def test_cash_goes_down_by_value_plus_fees(venue):
    before = venue.broker.query_asset().cash
    venue.broker.place_limit_order(buy("C1"))
    venue.events()

    after = venue.broker.query_asset().cash

    assert before - after == Decimal("1100.11")


def test_connection_events_are_the_only_other_event_kind(venue):
    venue.broker.place_limit_order(buy("K1"))
    assert all(isinstance(e, (OrderUpdate, ConnectionEvent)) for e in venue.events())
