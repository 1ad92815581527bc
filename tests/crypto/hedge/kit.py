"""A hand-written UM venue for the hedge runner's tests: accepts, refuses, loses answers, knows GTX crossing."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal

from core.events import AuditEvent
from core.oms.reasons import VenueReason
from crypto.hedge.book import HedgeBook
from crypto.hedge.runner import HedgeRunner, SwitchableChannel
from crypto.venue.types import OrderRequest, Side, VenueError, VenueOrder


@dataclass
class FakeUM:
    """Market orders fill at once; a GTX rests unless it would cross the book (then -5022: refused).
    ``refuse`` queues reasons for the next sends; ``lose`` makes the next accepted send time out."""

    bid: Decimal = Decimal("49990")
    ask: Decimal = Decimal("50010")
    orders: dict[str, VenueOrder] = field(default_factory=dict)
    refuse: deque[VenueReason] = field(default_factory=deque)
    lose: int = 0
    drop: int = 0  # the next sends time out before reaching the venue
    sends: list[OrderRequest] = field(default_factory=list)
    dup_live_only: bool = False  # Binance: a client id is unique among *open* orders only

    def submit(self, request: OrderRequest) -> VenueOrder:
        self.sends.append(request)
        known = self.orders.get(request.client_order_id)
        if known is not None and (known.status == "open" or not self.dup_live_only):
            raise VenueError(VenueReason.DUPLICATE_CLIENT_ID, "duplicate", "-4015")
        if self.drop:
            self.drop -= 1
            raise VenueError(VenueReason.UNKNOWN_OUTCOME, "timed out before the venue saw it")
        if self.refuse:
            raise VenueError(self.refuse.popleft(), "refused by the test")
        if request.post_only:
            assert request.price is not None
            crosses = request.price <= self.bid if request.side == "sell" else request.price >= self.ask
            if crosses:
                raise VenueError(VenueReason.POST_ONLY_WOULD_TAKE, "GTX would take", "-5022")
            order = VenueOrder(f"v{len(self.orders)}", request.client_order_id, request.symbol, request.side,
                               "limit", request.qty, Decimal(0), request.price, None, "open", post_only=True)
        else:
            px = self.bid if request.side == "sell" else self.ask
            order = VenueOrder(f"v{len(self.orders)}", request.client_order_id, request.symbol, request.side,
                               "market", request.qty, request.qty, None, px, "closed")
        if known is not None:
            order = replace(order, venue_order_id=f"{order.venue_order_id}-again")
            self.orders[f"{request.client_order_id}#{len(self.orders)}"] = order  # a second venue order
        else:
            self.orders[request.client_order_id] = order
        if self.lose:
            self.lose -= 1
            raise VenueError(VenueReason.UNKNOWN_OUTCOME, "response lost")
        return order

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return self.orders.get(client_order_id)

    def fill_resting(self, client_order_id: str) -> VenueOrder:
        order = self.orders[client_order_id]
        order = replace(order, filled=order.qty, status="closed", avg_price=order.price)
        self.orders[client_order_id] = order
        return order

    def expire(self, client_order_id: str, filled: Decimal = Decimal(0)) -> VenueOrder:
        order = replace(self.orders[client_order_id], status="canceled", filled=filled)
        self.orders[client_order_id] = order
        return order

    def position(self) -> Decimal:
        """Signed UM position the hedge orders built (what the venue really holds)."""
        total = Decimal(0)
        for o in self.orders.values():
            qty = o.qty if o.status == "open" else o.filled
            total += qty if o.side == "buy" else -qty
        return total


@dataclass
class Pricing:
    """A passive price that steps one tick further away per re-price; ``cross_first`` makes the first
    ``cross_first`` prices cross the book (a stale quote)."""

    venue: FakeUM
    tick: Decimal = Decimal("0.1")
    cross_first: int = 0
    asked: list[int] = field(default_factory=list)

    def hedge_price(self, symbol: str, side: Side, attempt: int) -> Decimal | None:
        self.asked.append(attempt)
        if attempt < self.cross_first:
            return self.venue.bid - self.tick if side == "sell" else self.venue.ask + self.tick
        return self.venue.ask + self.tick * attempt if side == "sell" else self.venue.bid - self.tick * attempt


@dataclass
class Marks:
    price: Decimal | None = Decimal("50000")

    def mark(self, symbol: str) -> Decimal | None:
        return self.price


@dataclass
class Harness:
    runner: HedgeRunner
    venue: FakeUM
    channel: SwitchableChannel
    pricing: Pricing
    marks: Marks
    events: list[AuditEvent]
    direct_sends: list[str]


def make_runner(book: HedgeBook, *, channel_up: bool = True, cross_first: int = 0,
                venue: FakeUM | None = None) -> Harness:
    venue = venue or FakeUM()
    channel = SwitchableChannel(venue, up=channel_up)
    direct_sends: list[str] = []

    class Direct:
        def submit(self, request: OrderRequest) -> VenueOrder:
            direct_sends.append(request.client_order_id)
            return venue.submit(request)

    pricing = Pricing(venue, cross_first=cross_first)
    marks = Marks()
    events: list[AuditEvent] = []
    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    runner = HedgeRunner(book, channel, Direct(), venue, pricing, marks, lambda: next(clock), events.append)
    return Harness(runner, venue, channel, pricing, marks, events, direct_sends)
