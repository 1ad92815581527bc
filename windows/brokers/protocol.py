"""The Broker port: what the executor needs from a venue, shaped after xtquant's async order API.

``place_limit_order`` returns at once (like ``order_stock_async``); the venue's answers arrive later as
``OrderUpdate`` events that the executor drains from a thread-safe queue (xtquant calls back on its own
worker thread). Updates carry *cumulative* fills, so a duplicated or reordered event can be folded in
idempotently. Queries return ``None`` when the venue could not answer: unknown, never "nothing".
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Protocol, runtime_checkable

from core.oms.order_fsm import OrderState
from shared_schema.models import QuoteFile


class BrokerError(Exception):
    """Base of every venue failure."""


class TemporaryBrokerError(BrokerError):
    """The venue may answer if asked again (disconnected, timeout)."""


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    code: str
    side: str  # "BUY" | "SELL"
    shares: int
    price: Decimal


class PlaceStatus(str, Enum):
    SENT = "SENT"  # the venue has it; updates will follow
    UNKNOWN = "UNKNOWN"  # timeout / -1: it may or may not be live; look it up before anything else
    REJECTED = "REJECTED"  # refused synchronously; nothing is live


@dataclass(frozen=True)
class PlaceOutcome:
    status: PlaceStatus
    broker_order_id: str = ""
    message: str = ""


@dataclass(frozen=True)
class OrderUpdate:
    """One venue report about an order, with cumulative fill totals."""

    client_order_id: str
    state: OrderState
    filled_shares: int = 0
    filled_value_fen: int = 0
    fees_fen: int = 0
    broker_order_id: str = ""
    message: str = ""
    code: str = ""
    side: str = ""
    shares: int = 0


@dataclass(frozen=True)
class ConnectionEvent:
    """Trade health: ``False`` when the venue cannot be traded through (a disconnect, or a call that got no
    answer within its bound: unknown, not failed), ``True`` only once it answers again and was reconciled.
    The executor folds it into ``trade_ok`` (REDUCE_ONLY while false) and audits each loss."""

    connected: bool
    message: str = ""


BrokerEvent = OrderUpdate | ConnectionEvent


@dataclass(frozen=True)
class BrokerPosition:
    code: str
    volume: int
    can_use_volume: int
    avg_cost: Decimal
    market_value: Decimal


@dataclass(frozen=True)
class BrokerAsset:
    cash: Decimal  # available to new orders
    frozen_cash: Decimal
    total_asset: Decimal


@runtime_checkable
class Broker(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def place_limit_order(self, request: OrderRequest) -> PlaceOutcome: ...

    def cancel_order(self, client_order_id: str) -> None: ...

    def query_asset(self) -> BrokerAsset | None: ...

    def query_positions(self) -> list[BrokerPosition] | None: ...

    def query_orders(self) -> list[OrderUpdate] | None: ...

    def drain_events(self) -> list[BrokerEvent]: ...

    def on_market(self, quotes: QuoteFile) -> None:
        """Market data tick; a simulated venue matches against it, a real one ignores it."""
        ...
