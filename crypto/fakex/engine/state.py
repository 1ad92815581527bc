"""All of the exchange's state in one serialisable object, so a restart reloads it whole.

Pydantic models (mutable inside the engine's lock) because the state file is a boundary: a reload
validates every record. Money and quantities are Decimal (written as strings), times are integer epoch ms.
Price paths are not stored: they are a pure function of (seed, scenario) and are rebuilt on load.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shared_schema.atomic_io import atomic_write_bytes

STATE_VERSION = 1
ZERO = Decimal(0)


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderRec(_Rec):
    ord_id: str
    cl_ord_id: str
    inst_id: str
    side: str  # buy | sell
    ord_type: str  # limit | market | post_only | ioc | fok
    qty: Decimal  # base units
    price: Decimal | None = None
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    fee: Decimal = ZERO  # paid, positive
    fee_ccy: str = ""
    state: str = "live"  # live | partially_filled | filled | canceled
    reduce_only: bool = False
    margin_mode: str = "cash"  # cash | cross | isolated
    leverage: Decimal | None = None
    cancel_source: str = ""  # why the venue (not the user) cancelled: post_only, ioc, liquidation, ...
    category: str = "normal"  # normal | full_liquidation
    tag: str = ""
    created_ms: int
    updated_ms: int
    fill_ms: int = 0
    last_fill_qty: Decimal = ZERO
    last_fill_px: Decimal | None = None
    last_trade_id: str = ""
    frozen: Decimal = ZERO  # reserved for the unfilled part, in frozen_ccy
    frozen_ccy: str = ""
    algo_id: str = ""  # the algo order that placed it, if any
    extra: dict[str, str] = Field(default_factory=dict)  # dialect-specific echoes (timeInForce, account)

    @property
    def is_live(self) -> bool:
        return self.state in ("live", "partially_filled")

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled


class FillRec(_Rec):
    trade_id: str
    ord_id: str
    cl_ord_id: str
    inst_id: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal  # paid, positive (negative = rebate)
    fee_ccy: str
    liquidity: str  # maker | taker
    ts_ms: int
    bill_id: str = ""
    pnl: Decimal = ZERO


class PositionRec(_Rec):
    pos_id: str
    inst_id: str
    qty: Decimal = ZERO  # signed base units
    entry: Decimal = ZERO
    margin: Decimal = ZERO  # isolated margin posted (quote)
    margin_mode: str = "cross"
    leverage: Decimal = Decimal(1)
    realized_pnl: Decimal = ZERO
    funding_paid: Decimal = ZERO  # signed, received positive
    created_ms: int = 0
    updated_ms: int = 0


class AlgoRec(_Rec):
    algo_id: str
    algo_cl_ord_id: str = ""
    inst_id: str
    side: str
    ord_type: str  # conditional | oco | trigger
    qty: Decimal  # base units
    trigger_px: Decimal | None = None  # 'trigger' orders
    order_px: Decimal | None = None  # None = market
    sl_trigger_px: Decimal | None = None
    sl_ord_px: Decimal | None = None
    tp_trigger_px: Decimal | None = None
    tp_ord_px: Decimal | None = None
    trigger_px_type: str = "last"  # last | mark | index
    direction: str = ""  # 'trigger' orders: up (fires at or above) | down
    reduce_only: bool = False
    margin_mode: str = "cash"
    state: str = "live"  # live | effective | canceled | order_failed
    created_ms: int
    updated_ms: int
    triggered_ms: int = 0
    ord_id: str = ""  # the order placed when it fired
    fail_reason: str = ""
    tag: str = ""
    extra: dict[str, str] = Field(default_factory=dict)


class BillRec(_Rec):
    bill_id: str
    account: str
    ccy: str
    inst_id: str = ""
    kind: str  # trade | funding | transfer | liquidation | margin | deposit
    sub_kind: str = ""
    bal_chg: Decimal = ZERO  # change of the cash balance
    pos_bal_chg: Decimal = ZERO  # change of an isolated position's margin
    bal: Decimal = ZERO  # cash balance after
    pnl: Decimal = ZERO
    fee: Decimal = ZERO  # paid, positive
    ord_id: str = ""
    qty: Decimal = ZERO
    price: Decimal = ZERO
    ts_ms: int


class TransferRec(_Rec):
    trans_id: str
    client_id: str = ""
    ccy: str
    amount: Decimal
    from_account: str
    to_account: str
    state: str = "success"
    ts_ms: int


class FundingRec(_Rec):
    inst_id: str
    funding_time_ms: int
    rate: Decimal
    interval_h: int
    mark: Decimal


class FundingSchedule(_Rec):
    next_ms: int
    interval_h: int = 8


class ExchangeState(_Rec):
    version: int = STATE_VERSION
    seed: int
    scenario: str
    start_ms: int
    now_ms: int
    next_id: int = 1
    balances: dict[str, dict[str, Decimal]] = Field(default_factory=dict)  # account -> ccy -> cash
    orders: dict[str, OrderRec] = Field(default_factory=dict)
    fills: list[FillRec] = Field(default_factory=list)
    positions: dict[str, PositionRec] = Field(default_factory=dict)
    algos: dict[str, AlgoRec] = Field(default_factory=dict)
    bills: list[BillRec] = Field(default_factory=list)
    transfers: dict[str, TransferRec] = Field(default_factory=dict)
    funding_history: list[FundingRec] = Field(default_factory=list)
    funding: dict[str, FundingSchedule] = Field(default_factory=dict)
    leverage: dict[str, Decimal] = Field(default_factory=dict)  # "inst_id:mode" -> leverage
    price_factor: dict[str, Decimal] = Field(default_factory=dict)  # base -> multiplier (admin set-price)
    funding_override: dict[str, Decimal] = Field(default_factory=dict)  # inst_id -> forced rate


def save_state(state: ExchangeState, path: Path) -> None:
    """Atomic: a temp file in the same folder, fsync, replace; a kill leaves the old or the new file whole."""
    atomic_write_bytes(Path(path), state.model_dump_json().encode("utf-8"))


def load_state(path: Path) -> ExchangeState:
    state = ExchangeState.model_validate_json(Path(path).read_bytes())
    if state.version != STATE_VERSION:
        raise ValueError(f"state file version {state.version}, expected {STATE_VERSION}")
    return state
