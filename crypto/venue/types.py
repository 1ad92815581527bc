"""What the crypto engine knows of a venue: plain, exact records (Decimal money, integer epoch ms).

Every quantity here is in **base units** (BTC, ETH), never in contracts: the ccxt adapter converts with
the market's ``contract_size`` in one place (``crypto.venue.units``), so no strategy, risk rule or test
ever sees a contract count. Symbols are ccxt unified symbols (``BTC/USDT`` spot, ``BTC/USDT:USDT`` the
USDT-margined perpetual); ``venue_id`` keeps the venue's own name (``BTC-USDT-SWAP``, ``BTCUSDT``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from core.oms.reasons import VenueReason

ZERO = Decimal(0)

MarketKind = Literal["spot", "swap"]
Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market", "stop_market"]
OrderStatus = Literal["open", "closed", "canceled", "rejected", "expired"]
MarginMode = Literal["isolated", "cross"]
# Which book an order or balance belongs to. OKX: "trading" (spot and swap share it) and "funding";
# Binance portfolio margin: "margin" (the cross-margin account) and "um" (USD-M futures).
Account = Literal["trading", "funding", "margin", "um"]


@dataclass(frozen=True)
class Market:
    """One instrument and its filters, all in base units and quote currency."""

    symbol: str
    venue_id: str
    kind: MarketKind
    base: str
    quote: str
    settle: str | None  # the margin currency of a swap; None for spot
    contract_size: Decimal  # base units per contract (1 for spot)
    qty_step: Decimal  # base units (= lot size x contract size for a swap)
    tick: Decimal
    min_qty: Decimal  # base units
    min_notional: Decimal  # quote currency; 0 when the venue states none
    max_leverage: Decimal | None = None
    maker_fee: Decimal = ZERO  # fractions (0.0002 = 2 bp)
    taker_fee: Decimal = ZERO

    @property
    def is_swap(self) -> bool:
        return self.kind == "swap"


@dataclass(frozen=True)
class Balance:
    asset: str
    total: Decimal
    free: Decimal
    used: Decimal


@dataclass(frozen=True)
class Ticker:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    ts_ms: int


@dataclass(frozen=True)
class Book:
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]  # (price, base qty), best first
    asks: tuple[tuple[Decimal, Decimal], ...]
    ts_ms: int


@dataclass(frozen=True)
class Position:
    """A derivatives position. ``qty`` is signed (negative = short), in base units."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal
    liq_price: Decimal | None
    margin: Decimal  # isolated margin posted (quote); for cross, the venue's figure
    leverage: Decimal
    margin_mode: MarginMode
    unrealized_pnl: Decimal

    @property
    def notional(self) -> Decimal:
        return abs(self.qty) * self.mark_price


@dataclass(frozen=True)
class OrderRequest:
    """One order as the engine means it. ``client_order_id`` is made and journaled by the caller before the
    first send and reused on every retry: the venue refuses a second live order with the same id."""

    symbol: str
    side: Side
    qty: Decimal  # base units, positive
    type: OrderType
    client_order_id: str
    price: Decimal | None = None  # limit price
    trigger_price: Decimal | None = None  # stop_market
    reduce_only: bool = False
    post_only: bool = False
    margin_mode: MarginMode | None = None  # swaps: must match the position's mode
    account: Account | None = None  # Binance portfolio margin: "margin" or "um"


@dataclass(frozen=True)
class VenueOrder:
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal  # base units
    filled: Decimal  # base units
    price: Decimal | None
    avg_price: Decimal | None
    status: OrderStatus
    reduce_only: bool = False
    post_only: bool = False
    trigger_price: Decimal | None = None
    fee: Decimal = ZERO  # in quote/settle currency, positive = paid
    ts_ms: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_live(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Fill:
    trade_id: str
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal  # base units
    price: Decimal
    fee: Decimal  # positive = paid
    fee_asset: str
    liquidity: Literal["maker", "taker"]
    ts_ms: int


@dataclass(frozen=True)
class FundingRate:
    """The current (or a past) funding rate; the interval is read from the venue, never assumed to be 8 h."""

    symbol: str
    rate: Decimal
    funding_time_ms: int  # the settlement this rate applies to
    next_funding_time_ms: int | None = None
    mark_price: Decimal | None = None
    index_price: Decimal | None = None

    @property
    def interval_ms(self) -> int | None:
        if self.next_funding_time_ms is None:
            return None
        return self.next_funding_time_ms - self.funding_time_ms


@dataclass(frozen=True)
class FundingPayment:
    """One funding bill: ``amount`` signed, positive = received (quote/settle currency)."""

    symbol: str
    amount: Decimal
    rate: Decimal
    position_qty: Decimal  # signed base units at settlement
    ts_ms: int
    bill_id: str = ""


@dataclass(frozen=True)
class Transfer:
    transfer_id: str  # the caller's idempotency key
    asset: str
    amount: Decimal
    from_account: Account
    to_account: Account
    status: Literal["ok", "pending", "failed"]
    venue_transfer_id: str = ""


# Not frozen (unlike the records): Python's own exception handling assigns ``__traceback__`` on the instance
# (contextlib's ``__exit__`` does when a generator context manager re-raises), and a frozen dataclass turns
# that into FrozenInstanceError. Treat the fields as read-only all the same. eq=False: identity semantics,
# as for any exception.
@dataclass(eq=False)
class VenueError(Exception):
    """A venue refusal or an unknown outcome, already mapped to the core vocabulary."""

    reason: VenueReason
    message: str = ""
    venue_code: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        code = f" [{self.venue_code}]" if self.venue_code else ""
        return f"{self.reason.value}{code}: {self.message}"
