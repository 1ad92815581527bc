"""A test double of the execution port: a tiny venue book of orders keyed by client order id, with
seeded fault injection (429 / 5xx before acceptance, or a response lost after acceptance)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from decimal import Decimal

from core.oms.reasons import VenueReason
from crypto.pm.port import OrderAck, OrderIntent
from crypto.venue.types import VenueError


@dataclass
class PortOrder:
    intent: OrderIntent
    venue_order_id: str
    status: str


@dataclass
class FakePort:
    fault_rate: float = 0.0
    lost_rate: float = 0.0  # accepted, but the response is lost (UNKNOWN_OUTCOME)
    seed: int = 0
    down: bool = False
    orders: dict[str, PortOrder] = field(default_factory=dict)
    place_calls: int = 0
    duplicate_refusals: int = 0
    faults: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _maybe_fault(self) -> None:
        if self.down:
            raise VenueError(VenueReason.NETWORK, "down")
        if self.rng.random() < self.fault_rate:
            self.faults += 1
            if self.rng.random() < 0.5:
                raise VenueError(VenueReason.RATE_LIMIT, "429", venue_code="429")
            raise VenueError(VenueReason.VENUE_ERROR, "503", venue_code="503")

    def place(self, intent: OrderIntent) -> OrderAck:
        with self._lock:
            self.place_calls += 1
            self._maybe_fault()
            if intent.client_order_id in self.orders:
                self.duplicate_refusals += 1
                raise VenueError(VenueReason.DUPLICATE_CLIENT_ID, "51016", venue_code="51016")
            status = "open" if intent.type == "stop_market" else "closed"
            order = PortOrder(intent, f"v{len(self.orders) + 1}", status)
            self.orders[intent.client_order_id] = order
            if self.rng.random() < self.lost_rate:
                raise VenueError(VenueReason.UNKNOWN_OUTCOME, "timeout")
            return self._ack(order)

    def cancel(self, symbol: str, client_order_id: str) -> bool:
        with self._lock:
            self._maybe_fault()
            order = self.orders.get(client_order_id)
            if order is None:
                raise VenueError(VenueReason.ORDER_NOT_FOUND, "51400")
            if order.status == "open":
                order.status = "canceled"
            return True

    def lookup(self, symbol: str, client_order_id: str) -> OrderAck | None:
        with self._lock:
            if self.down:
                raise VenueError(VenueReason.NETWORK, "down")
            order = self.orders.get(client_order_id)
            return None if order is None else self._ack(order)

    def ping(self) -> bool:
        return not self.down

    @staticmethod
    def _ack(order: PortOrder) -> OrderAck:
        filled = order.intent.qty if order.status == "closed" else Decimal(0)
        return OrderAck(order.intent.client_order_id, order.venue_order_id, order.status, filled)

    def live_stops(self, symbol: str | None = None) -> list[OrderIntent]:
        return [o.intent for o in self.orders.values()
                if o.status == "open" and o.intent.type == "stop_market"
                and (symbol is None or o.intent.symbol == symbol)]


class ManualClock:
    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms
