"""The imperative shell of one hedge strategy: serialises its reports, journals, sends, feeds answers back.

Ports (``typing.Protocol``): the signal channel and the direct route both take an ``OrderRequest`` and
return the venue's ``VenueOrder``; the channel raises ``ChannelDown`` when it cannot take the order, and the
strategy then sends it directly (same client order id, so a channel that did deliver before failing costs
a duplicate-id refusal and a lookup, never a second order). The pricing port gives GTX prices; the mark
source gives the UM mark for the minNotional check. All decisions are ``crypto.hedge.book``'s.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Protocol

from core.events import AuditCode, AuditEvent, Severity
from core.oms.reasons import VenueReason
from crypto.hedge.book import (
    HedgeBook,
    HedgeState,
    MarginReport,
    SendHedge,
    Step,
    evaluate,
    on_hedge_lost,
    on_hedge_order,
    on_hedge_refused,
    on_margin_report,
)
from crypto.venue.types import OrderRequest, Side, VenueError, VenueOrder


class ChannelDown(Exception):
    """The signal channel cannot take the order now (not connected, not acknowledged in time)."""


class OrderRoute(Protocol):
    def submit(self, request: OrderRequest) -> VenueOrder: ...


class OrderLookup(Protocol):
    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None: ...


class PricingPort(Protocol):
    """The funding/pricing component: a passive price for a GTX hedge; ``attempt`` counts re-prices."""

    def hedge_price(self, symbol: str, side: Side, attempt: int) -> Decimal | None: ...


class MarkSource(Protocol):
    def mark(self, symbol: str) -> Decimal | None: ...


@dataclass
class HedgeRunner:
    """One strategy's hedge. Every public method holds the strategy's lock: concurrent reports for one
    strategy are serialised, so two reports can never both size a hedge from the same unhedged fill."""

    book: HedgeBook
    channel: OrderRoute
    direct: OrderRoute
    lookup: OrderLookup
    pricing: PricingPort
    marks: MarkSource
    now_ms: Callable[[], int]
    audit: Callable[[AuditEvent], None]
    store: Callable[[HedgeBook], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._misses: dict[str, int] = {}  # client id -> lookups in a row that found nothing

    def on_margin_report(self, report: MarginReport) -> HedgeBook:
        with self._lock:
            self._run(on_margin_report(self.book, report, self._mark(), self.now_ms()))
            return self.book

    def on_hedge_update(self, order: VenueOrder) -> HedgeBook:
        """A hedge order's later update (fill, expiry, cancel), from a poll or a stream."""
        with self._lock:
            self._run(on_hedge_order(self.book, order, self._mark(), self.now_ms()))
            return self.book

    def reevaluate(self) -> HedgeBook:
        """Size again without a new report (after a rollback when no more fills may come)."""
        with self._lock:
            self._run(evaluate(self.book, self._mark(), self.now_ms()))
            return self.book

    def reconcile(self, lost_after: int = 1) -> HedgeBook:
        """Look every unfinished hedge order up by client id. After a restart (``lost_after=1``) an unanswered
        order the venue does not know never reached it: rolled back, re-hedged under a new id. While running,
        a request may still be on its way, so it is declared lost only after ``lost_after`` lookups in a row
        found nothing (Hummingbot's policy for lost orders)."""
        with self._lock:
            for order in [o for o in self.book.orders if o.is_unfinished]:
                found = self.lookup.fetch_order(self.book.symbol, order.client_order_id)
                if found is not None:
                    self._misses.pop(order.client_order_id, None)
                    self._run(on_hedge_order(self.book, found, self._mark(), self.now_ms()))
                elif order.state in (HedgeState.PENDING, HedgeState.UNKNOWN):
                    misses = self._misses.get(order.client_order_id, 0) + 1
                    self._misses[order.client_order_id] = misses
                    if misses >= lost_after:
                        self._run(on_hedge_lost(self.book, order.client_order_id, self._mark(), self.now_ms()))
            return self.book

    # -- internals -------------------------------------------------------------------------------------

    def _mark(self) -> Decimal | None:
        return self.marks.mark(self.book.symbol)

    def _run(self, step: Step) -> None:
        queue: deque[Step] = deque([step])
        while queue:
            current = queue.popleft()
            self.book = current.book
            # Journal before send: the pending order (and its client id) is on disk before the venue sees it.
            if self.store is not None:
                self.store(self.book)
            for event in current.events:
                self.audit(event)
            for send in current.sends:
                queue.append(self._send(send))

    def _send(self, send: SendHedge) -> Step:
        price: Decimal | None = None
        if send.kind == "gtx":
            price = self.pricing.hedge_price(send.symbol, send.side, send.attempt)
            if price is None:
                return on_hedge_refused(self.book, send.client_order_id, VenueReason.INVALID_ORDER, self._mark(),
                                        self.now_ms(), "no hedge price from the pricing port")
        request = OrderRequest(send.symbol, send.side, send.qty, "limit" if send.kind == "gtx" else "market",
                               send.client_order_id, price=price, reduce_only=send.reduce_only,
                               post_only=send.kind == "gtx", account="um")
        try:
            try:
                answer = self.channel.submit(request)
            except ChannelDown as exc:
                # The channel may have delivered before it failed. Binance refuses a client id only among
                # *open* orders, so a filled market hedge sent again would be a second hedge: look it up first.
                delivered = self.lookup.fetch_order(send.symbol, send.client_order_id)
                if delivered is not None:
                    return on_hedge_order(self.book, delivered, self._mark(), self.now_ms())
                self.audit(AuditEvent(self._now(), AuditCode.HEDGE_DIRECT_SEND, Severity.WARN,
                                      "signal channel down", self.book.symbol,
                                      {"strategy_id": self.book.strategy_id,
                                       "client_order_id": send.client_order_id, "error": str(exc)}))
                answer = self.direct.submit(request)
        except VenueError as exc:
            if exc.reason in (VenueReason.UNKNOWN_OUTCOME, VenueReason.DUPLICATE_CLIENT_ID):
                found = self.lookup.fetch_order(send.symbol, send.client_order_id)
                if found is not None:
                    return on_hedge_order(self.book, found, self._mark(), self.now_ms())
                if exc.reason == VenueReason.UNKNOWN_OUTCOME:
                    return Step(self.book)  # stays PENDING (committed): reconcile() settles it
            return on_hedge_refused(self.book, send.client_order_id, exc.reason, self._mark(), self.now_ms(),
                                    exc.message)
        return on_hedge_order(self.book, answer, self._mark(), self.now_ms())

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=timezone.utc)


class SwitchableChannel:
    """A signal channel in front of a route (the executor): up, it forwards; down, it raises ``ChannelDown``.
    Tests and ``hedge run --channel-down`` use it to prove the direct send."""

    def __init__(self, route: OrderRoute, up: bool = True) -> None:
        self.route = route
        self.up = up
        self.submitted: list[str] = []

    def submit(self, request: OrderRequest) -> VenueOrder:
        if not self.up:
            raise ChannelDown("signal channel is down")
        self.submitted.append(request.client_order_id)
        return self.route.submit(request)
