"""The file contract between the Windows executor and the Mac strategy nodes.

Every shared file is one of the ``*File`` models below. Each carries ``schema_version``, a ``seq`` that its
single writer increases on every write, and ``updated_at``. Models are frozen and forbid unknown fields, so
a typo on one machine is a loud rejection on the other rather than a silently ignored value.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from shared_schema.types import Money, OrderAmount, Price, Shares, Timestamp

SCHEMA_VERSION = 1

SYMBOL_159201 = "159201.SZ"
SYMBOL_512890 = "512890.SH"
DESIGN_SYMBOLS: tuple[str, str] = (SYMBOL_159201, SYMBOL_512890)

QUOTE_FILE = "shared_quote.json"
POOL_FILE = "shared_pool.json"
SIGNAL_FILE = "order_signal.json"
RESULT_FILE = "order_result.json"

# client_order_id goes into QMT's order_remark, which public builds cut at 24 characters.
CLIENT_ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
SIGNAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def symbol_key(code: str) -> str:
    """``159201.SZ`` -> ``159201``: the suffix of the design's per-symbol pool fields."""
    return code.split(".", 1)[0]


# ---------------------------------------------------------------------------------------------- quotes


class Bar(Strict):
    """One 1-minute bar. ``t`` is the bar's end in epoch milliseconds, as QMT labels 1-minute bars."""

    t: int
    o: float = Field(gt=0, allow_inf_nan=False)
    h: float = Field(gt=0, allow_inf_nan=False)
    l: float = Field(gt=0, allow_inf_nan=False)  # noqa: E741 - OHLC vocabulary
    c: float = Field(gt=0, allow_inf_nan=False)
    v: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _high_low_bound_the_bar(self) -> Bar:
        if not (self.l <= min(self.o, self.c) and self.h >= max(self.o, self.c)):
            raise ValueError("bar high/low do not bound open/close")
        return self


class Quote(Strict):
    code: str
    last: float = Field(gt=0, allow_inf_nan=False)
    bid1: float = Field(ge=0, allow_inf_nan=False)
    ask1: float = Field(ge=0, allow_inf_nan=False)
    volume: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    quote_time: Timestamp
    prev_close: float = Field(gt=0, allow_inf_nan=False)
    bars: list[Bar] = Field(default_factory=list, description="recent 1-minute bars, oldest first")


class Position(Strict):
    code: str
    volume: int = Field(ge=0)
    can_use_volume: int = Field(ge=0, description="sellable today (T+1)")
    avg_cost: float = Field(ge=0, allow_inf_nan=False)
    market_value: float = Field(ge=0, allow_inf_nan=False)


class Account(Strict):
    cash: Money
    total_asset: Money
    frozen_cash: Money = Field(default=0)


class QuoteFile(Strict):
    """``shared_quote.json``; writer: the Windows producer."""

    schema_version: int = SCHEMA_VERSION
    seq: int = Field(ge=0)
    updated_at: Timestamp
    source: str = "paper"
    quotes: dict[str, Quote] = Field(default_factory=dict)
    positions: dict[str, Position] = Field(default_factory=dict)
    account: Account | None = None
    positions_ok: bool = Field(default=True, description="false when the broker could not be queried")


# ------------------------------------------------------------------------------------------------ pool


class AllocationState(str, Enum):
    FROZEN = "FROZEN"  # granted, order sent, nothing filled yet
    PARTIAL = "PARTIAL"  # partly filled, the rest still frozen
    USED = "USED"  # fully filled (or cancelled after a partial fill): holds a lot
    PARTLY_RELEASED = "PARTLY_RELEASED"  # a sell closed part of the lot
    RELEASED = "RELEASED"  # the lot was sold; nothing left
    CANCELLED = "CANCELLED"  # nothing filled; everything went back to the pool


class Allocation(Strict):
    client_order_id: str
    amount: Money = Field(description="what the vault granted for the BUY")
    frozen: Money
    used: Money
    state: AllocationState
    layer_index: int = 0
    filled_shares: int = 0
    released_shares: int = 0
    fees: Money = Field(default=0, description="buy fees not yet charged to a release")
    fees_estimated: bool = Field(default=False, description="the buy fees are the fee model's estimate (the broker "
                                 "reported 0); the broker's figure replaces it when it arrives")


class ReductionStatus(Strict):
    """A forced reduction the executor is carrying out (COOLDOWN or Force Reduce), for the dashboard."""

    mode: str = Field(description="COOLDOWN (down to a share of the exposure at its start) or FORCE_REDUCE")
    exposure: Money = Field(description="grid exposure (cost basis of open lots) once open sells are done")
    target: Money | None = Field(default=None, description="COOLDOWN: the exposure it sells down to")
    selling: list[str] = Field(default_factory=list, description="open reduction sells (client_order_id)")
    held_back: dict[str, str] = Field(default_factory=dict, description="lot -> why it cannot be sold now")


class PoolFile(Strict):
    """``shared_pool.json``; writer: the GlobalVault (inside the executor)."""

    schema_version: int = SCHEMA_VERSION
    seq: int = Field(ge=0)
    updated_at: Timestamp
    physical_pool: Money
    reserve_ratio: Money
    nominal_cap_159201: Money
    nominal_cap_512890: Money
    used_159201: Money
    used_512890: Money
    frozen_159201: Money
    frozen_512890: Money
    acc_alpha_159201: Money
    acc_alpha_512890: Money
    utilization: float = Field(ge=0, allow_inf_nan=False, description="(used+frozen)/physical_pool")
    allocations_159201: list[Allocation] = Field(default_factory=list)
    allocations_512890: list[Allocation] = Field(default_factory=list)
    risk_state: str = "NORMAL"
    risk_equity: Money | None = Field(default=None, description="the grid's own capital at market (risk view)")
    drawdown: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="fall from peak risk equity")
    halted: bool = False
    market_time: Timestamp | None = Field(default=None, description="market clock of the last change")
    heartbeat_s: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                      description="the executor rewrites this file at least this often (wall seconds)")
    reduction: ReductionStatus | None = Field(default=None, description="the forced reduction under way, if any")


# --------------------------------------------------------------------------------------------- signals


class Direction(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class Signal(Strict):
    """One order request from a strategy node or an operator."""

    signal_id: str
    client_order_id: str = ""
    code: str = Field(max_length=32)
    direction: Direction
    price: Price
    shares: Shares
    amount: OrderAmount = Field(default=None, validate_default=False)  # type: ignore[assignment]
    layer_index: StrictInt = Field(default=0, ge=0, le=1_000_000)
    release_client_order_ids: list[str] = Field(default_factory=list, max_length=64)
    created_at: Timestamp
    expires_at: Timestamp | None = None
    source: str = Field(default="", max_length=64)

    @field_validator("signal_id")
    @classmethod
    def _signal_id_is_plain(cls, value: str) -> str:
        if not SIGNAL_ID_PATTERN.match(value):
            raise ValueError("signal_id must be 1-64 chars of [A-Za-z0-9_.:-]")
        return value

    @field_validator("release_client_order_ids")
    @classmethod
    def _release_ids_are_plain(cls, value: list[str]) -> list[str]:
        for item in value:
            if not CLIENT_ORDER_ID_PATTERN.match(item):
                raise ValueError("release_client_order_ids entries must be 1-24 chars of [A-Za-z0-9_-]")
        if len(set(value)) != len(value):
            raise ValueError("release_client_order_ids has duplicates")
        return value

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_other_fields(cls, data: object) -> object:
        if isinstance(data, dict):
            data = dict(data)
            if not data.get("client_order_id"):
                data["client_order_id"] = data.get("signal_id")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Signal:
        if not CLIENT_ORDER_ID_PATTERN.match(self.client_order_id):
            raise ValueError("client_order_id must be 1-24 chars of [A-Za-z0-9_-] (it travels in order_remark)")
        if self.amount is None:
            # Both factors are bounded (Price, Shares), so the product is exact in Decimal's context.
            object.__setattr__(self, "amount", self.price * self.shares)
        if self.direction is Direction.BUY and self.release_client_order_ids:
            raise ValueError("a BUY cannot release lots")
        return self


class SignalFile(Strict):
    """``order_signal.json``; writers: the Mac nodes and ``gridbridge signal``, under one filelock."""

    schema_version: int = SCHEMA_VERSION
    seq: int = Field(ge=0)
    updated_at: Timestamp
    signals: list[Signal] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------- results


class ResultStatus(str, Enum):
    ACCEPTED = "ACCEPTED"
    SENT = "SENT"
    PARTIAL = "PARTIAL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({ResultStatus.FILLED, ResultStatus.CANCELLED, ResultStatus.REJECTED, ResultStatus.EXPIRED})


class Reason(str, Enum):
    """Stable machine-readable rejection and cancellation codes."""

    INVALID_SIGNAL = "INVALID_SIGNAL"
    DUPLICATE_ID_CONFLICT = "DUPLICATE_ID_CONFLICT"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    NOMINAL_CAP = "NOMINAL_CAP"
    POOL_RESERVE_15 = "POOL_RESERVE_15"
    POOL_EXHAUSTED = "POOL_EXHAUSTED"
    NOT_SELLABLE_T1 = "NOT_SELLABLE_T1"
    OUTSIDE_SESSION = "OUTSIDE_SESSION"
    NO_CANCEL_PERIOD = "NO_CANCEL_PERIOD"  # a call auction in which the exchange refuses cancels
    PRICE_LIMIT = "PRICE_LIMIT"
    BROKER_REJECT = "BROKER_REJECT"
    ORDER_EXPIRED = "ORDER_EXPIRED"
    HALTED = "HALTED"
    NO_QUOTE = "NO_QUOTE"
    RISK_STATE = "RISK_STATE"
    RATE_LIMIT = "RATE_LIMIT"


class Result(Strict):
    signal_id: str
    client_order_id: str = ""
    code: str = ""
    direction: Direction | None = None
    status: ResultStatus
    reason: Reason | None = None
    detail: str = Field(default="", description="finer machine code, e.g. LOT_SIZE or OFF_TICK")
    message: str = ""
    broker_order_id: str = ""
    requested_shares: int = 0
    filled_shares: int = 0
    avg_price: float = 0.0
    filled_value: Money | None = Field(
        default=None, description="exact value of the cumulative fill (yuan); set once an order is at the venue")
    fees: Money | None = Field(
        default=None, description="the order's cumulative commission (yuan) as the vault charged it: the broker's "
                                  "figure, or the configured fee model's estimate while the broker reports none")
    release_client_order_ids: list[str] = Field(
        default_factory=list, description="the lots a SELL releases (lets a node follow sells it did not send)")
    signal_created_at: Timestamp | None = None
    received_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class InputRejection(Strict):
    """An input that could not be keyed to a fresh signal: unparsable entries and duplicate-id conflicts."""

    key: str
    signal_id: str = ""
    reason: Reason
    detail: str = ""
    message: str = ""
    at: Timestamp | None = None


class ResultFile(Strict):
    """``order_result.json``; writer: the executor."""

    schema_version: int = SCHEMA_VERSION
    seq: int = Field(ge=0)
    updated_at: Timestamp
    results: dict[str, Result] = Field(default_factory=dict)
    input_rejections: list[InputRejection] = Field(default_factory=list)
    open_orders: int = 0
    alerts: list[str] = Field(default_factory=list)


SHARED_FILES: dict[str, type[Strict]] = {
    QUOTE_FILE: QuoteFile,
    POOL_FILE: PoolFile,
    SIGNAL_FILE: SignalFile,
    RESULT_FILE: ResultFile,
}

Side = Literal["BUY", "SELL"]
