"""A partial of anything: a take-profit or an exit the venue fills only in part (an IOC market order whose
rest expired), then an add-on on what is left, then the close. The books stay exact: the unfilled part is
still open with its own cost, realised PnL is what was filled, the rung fires once, one live stop covers
the real size, the risk is released once."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path

from crypto.pm.decisions import MarketView
from crypto.pm.port import OrderAck, OrderIntent
from crypto.pm.state import key_budget, key_concurrency
from tests.crypto.pm.doubles import FakePort, ManualClock, PortOrder
from tests.crypto.pm.test_manager import SYM, build, config


@dataclass
class PartialPort(FakePort):
    """Reduce-only market orders fill ``fill_fraction`` of their size; the rest expires (IOC)."""

    fill_fraction: D = D("0.6")

    def place(self, intent: OrderIntent) -> OrderAck:
        ack = super().place(intent)
        if intent.type == "market" and intent.reduce_only:
            filled = intent.qty * self.fill_fraction
            self.orders[intent.client_order_id] = PortOrder(intent, ack.venue_order_id, "canceled")
            return OrderAck(ack.client_order_id, ack.venue_order_id, "canceled", filled)
        return ack


def view(mark: str, **kw: object) -> MarketView:
    return MarketView(mark=D(mark), ts_ms=0, atr=D(2), **kw)  # type: ignore[arg-type]


def test_partial_take_profit_then_add_on_then_close(redis_url: str, tmp_path: Path) -> None:
    port, clock = PartialPort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100"))
    res = m.manage("p1", view("111"))  # ROE 0.55: rung 0 closes 1 of 2; the venue fills 0.6 of it
    assert [a.kind for a in res.plan.actions].count("TP_PARTIAL") == 1
    pos = m.state.load_position("p1")
    assert pos is not None and not pos.closed
    assert pos.qty == D("1.4")  # 2 - 0.6: the unfilled 0.4 is still open
    assert pos.entry == D(100)  # WAC: a sell does not move the average
    assert pos.margin == D(28)  # 40 x 1.4 / 2
    assert pos.realised_pnl == D("6.6")  # 0.6 x (111 - 100), not 1 x 11
    assert pos.ladder_fired == (0,)
    [stop] = port.live_stops()
    assert stop.qty == D("1.4")  # the one live stop covers the real size
    # The same price again: the rung does not fire twice.
    res = m.manage("p1", view("111"))
    assert "TP_PARTIAL" not in [a.kind for a in res.plan.actions]
    # Add-on on what is left: the entry is the quantity-weighted one, exact.
    clock.advance(1_000)
    res = m.manage("p1", view("108", signal=1))
    adds = [a for a in res.plan.actions if a.kind == "ADD_ON"]
    assert len(adds) == 1
    q = adds[0].qty
    pos = m.state.load_position("p1")
    assert pos is not None and pos.qty == D("1.4") + q
    assert pos.entry == (D("1.4") * 100 + q * 108) / (D("1.4") + q)
    [stop] = port.live_stops()
    assert stop.qty == pos.qty
    # The venue's stop fires: closed once, risk released once.
    assert m.position_gone("p1", D(105)) is True
    assert m.position_gone("p1", D(105)) is False
    assert m.state.r.get(key_budget("p1")) is None and m.state.concurrency(SYM) == 0
    assert not m.state.r.sismember(key_concurrency(SYM), "p1")


def test_partial_exit_keeps_the_rest_open_with_a_stop(redis_url: str, tmp_path: Path) -> None:
    port, clock = PartialPort(fill_fraction=D("0.5")), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg=config(ladder=[]))
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100"))
    stop = m.state.load_position("p1").stop  # type: ignore[union-attr]
    assert stop is not None
    m.manage("p1", view(str(stop - 1)))  # the stop is crossed: exit at market, the venue fills half
    pos = m.state.load_position("p1")
    assert pos is not None and not pos.closed and pos.qty == D(1)
    assert pos.margin == D(20)
    assert m.state.r.get(key_budget("p1")) is not None  # still open: its risk stays reserved
    assert sum(s.qty for s in port.live_stops()) <= pos.qty
    # The next pass exits the rest under a fresh intent id (the first exit's intent is finished).
    port.fill_fraction = D(1)
    clock.advance(1_000)
    m.manage("p1", view(str(stop - 1)))
    pos = m.state.load_position("p1")
    assert pos is not None and pos.closed and pos.qty == 0
    assert m.store.intent("p1:exit:1") is not None
    assert m.state.r.get(key_budget("p1")) is None  # released once, now


def test_a_stop_that_fills_in_part_books_the_part_and_re_stops_the_rest(redis_url: str, tmp_path: Path) -> None:
    """The venue's stop triggers and fills 0.2 of 0.5 at 97 (the book was thin), the rest of the stop order is
    cancelled by the venue. The watch adopts 0.3, books 0.2 x (97 - 100) = -0.6 realised (before: the closed
    part vanished from the books, realised 0), and one new stop covers 0.3."""
    from crypto.pm.feed import VenueFeed
    from crypto.pm.port import client_order_id_for
    from crypto.pm.service import PmService
    from crypto.venue.types import Position
    from tests.crypto.pm.test_service import StubVenue

    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    [pos_id] = m.state.active_ids()
    pos = m.state.load_position(pos_id)
    assert pos is not None and pos.stop_coid is not None
    coid = client_order_id_for(pos.stop_coid)
    stop_order = port.orders[coid]
    stop_order.status = "canceled"
    original_lookup = port.lookup

    def lookup(symbol: str, client_order_id: str) -> OrderAck | None:
        if client_order_id == coid:
            return OrderAck(coid, stop_order.venue_order_id, "canceled", D("0.2"), D(97))
        return original_lookup(symbol, client_order_id)

    port.lookup = lookup  # type: ignore[method-assign]
    venue.open = [Position(SYM, D("0.3"), D(100), D(97), D(70), D(10), D(3), "isolated", D(0))]
    clock.advance(1_000)
    svc.step()
    pos = m.state.load_position(pos_id)
    assert pos is not None and pos.qty == D("0.3") and not pos.closed
    assert pos.realised_pnl == D("-0.6")
    [stop] = port.live_stops()
    assert stop.qty == D("0.3")
    clock.advance(1_000)
    svc.step()  # nothing more to adopt: booked once
    assert m.state.load_position(pos_id).realised_pnl == D("-0.6")  # type: ignore[union-attr]
