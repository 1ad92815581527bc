"""The execution port: how the position manager asks for orders, and nothing more.

The manager never talks to the exchange. It hands ``OrderIntent``s to an ``ExecutionPort``; the
``client_order_id`` is derived from the manager's intent id (``client_order_id_for``), journaled before
the first send and the same on every retry, so a retry, a lost response or a restart can never make a
second order for one intent. ``VenuePort`` adapts the crypto ``Venue`` Protocol; tests use a double.
Failures are ``crypto.venue.types.VenueError`` with a ``core.oms.reasons.VenueReason``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from core.oms.reasons import VenueReason
from crypto.venue.protocol import Venue
from crypto.venue.types import OrderRequest, VenueError, VenueOrder

PortOrderType = Literal["market", "stop_market"]


def client_order_id_for(intent_id: str) -> str:
    """``pm`` + 26 hex digits of the intent id's hash: alphanumeric and 28 characters (OKX ``clOrdId``
    takes up to 32), the same for the same intent forever."""
    return "pm" + hashlib.sha256(intent_id.encode("utf-8")).hexdigest()[:26]


@dataclass(frozen=True)
class OrderIntent:
    intent_id: str
    client_order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    qty: Decimal  # base units
    type: PortOrderType
    trigger_price: Decimal | None = None
    reduce_only: bool = True


@dataclass(frozen=True)
class OrderAck:
    client_order_id: str
    venue_order_id: str
    status: str  # open, closed, canceled, rejected, expired
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None


class ExecutionPort(Protocol):
    def place(self, intent: OrderIntent) -> OrderAck: ...  # raises VenueError
    def cancel(self, symbol: str, client_order_id: str) -> bool: ...  # True: cancelled or already gone
    def lookup(self, symbol: str, client_order_id: str) -> OrderAck | None: ...
    def ping(self) -> bool: ...


def ack_of(order: VenueOrder) -> OrderAck:
    return OrderAck(order.client_order_id, order.venue_order_id, order.status, order.filled, order.avg_price)


class VenuePort:
    """``ExecutionPort`` over a ``Venue`` (the ccxt adapter, or anything with its shape)."""

    def __init__(self, venue: Venue, margin_mode: Literal["isolated", "cross"] = "isolated",
                 ping_ttl_s: float = 2.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.venue = venue
        self.margin_mode = margin_mode
        # Every pass asks whether the OMS is up; one venue request per pass would be one per position per
        # tick (10,000 positions: 10,000 time requests against the venue's limits). One answer serves
        # ``ping_ttl_s``.
        self.ping_ttl_s = ping_ttl_s
        self.monotonic = monotonic
        self._ping: tuple[float, bool] | None = None

    def place(self, intent: OrderIntent) -> OrderAck:
        market = self.venue.market(intent.symbol)
        request = OrderRequest(
            symbol=intent.symbol, side=intent.side, qty=intent.qty, type=intent.type,
            client_order_id=intent.client_order_id, trigger_price=intent.trigger_price,
            reduce_only=intent.reduce_only and market.is_swap,
            margin_mode=self.margin_mode if market.is_swap else None)
        return ack_of(self.venue.place_order(request))

    def cancel(self, symbol: str, client_order_id: str) -> bool:
        try:
            self.venue.cancel_order(symbol, client_order_id)
        except VenueError as exc:
            if exc.reason is VenueReason.ORDER_NOT_FOUND:
                return True
            raise
        return True

    def lookup(self, symbol: str, client_order_id: str) -> OrderAck | None:
        order = self.venue.fetch_order(symbol, client_order_id)
        return None if order is None else ack_of(order)

    def ping(self) -> bool:
        now = self.monotonic()
        if self._ping is not None and now - self._ping[0] < self.ping_ttl_s:
            return self._ping[1]
        try:
            self.venue.now_ms()
            up = True
        except VenueError:
            up = False
        self._ping = (now, up)
        return up
