"""The grid's data: one frozen ``GridState`` per symbol, its lots and pending orders, and what a step emits
(``GridSignal``, ``GridEvent``) or reads besides the bar (``PoolView``, ``StepContext``).

Frozen dataclasses and plain constants only; the rules that move this state live in ``mac.grid.rules``,
``mac.grid.decide`` and ``mac.grid.outcomes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import NamedTuple, Protocol

from mac.grid.indicators import IndicatorPeriods, IndicatorState, IndicatorValues
from mac.grid.params import CompiledParams
from settings.grid import GridParams
from shared_schema.ledger_math import utilization

FAR_PAST = -(10**9)
BUY = "BUY"
SELL = "SELL"

# lot status
PENDING_BUY = "PENDING_BUY"
OPEN = "OPEN"
PENDING_SELL = "PENDING_SELL"

# signal reasons
GRID_BUY = "GRID_BUY"
TAKE_PROFIT = "TAKE_PROFIT"
FLOAT_STOP = "FLOAT_STOP"
FUSE_CLOSE = "FUSE_CLOSE"


class EventKind(str, Enum):
    PENALTY_ON = "PENALTY_ON"
    PENALTY_OFF = "PENALTY_OFF"
    LAYER0_REFUSED_RESERVE = "LAYER0_REFUSED_RESERVE"
    NOMINAL_CAP = "NOMINAL_CAP"  # a triggered buy would pass the symbol's nominal cap
    POOL_EXHAUSTED = "POOL_EXHAUSTED"  # a triggered buy would pass the physical pool
    BREAKER_PAUSE = "BREAKER_PAUSE"  # a triggered buy was skipped: ATR > ATR_AVG * mult
    COOLING = "COOLING"  # a triggered buy was skipped: cooling-off after going flat
    FLOAT_STOP = "FLOAT_STOP"
    ALL_LAYERS_OPEN = "ALL_LAYERS_OPEN"  # a buy filled the last layer
    NOT_SELLABLE_T1 = "NOT_SELLABLE_T1"  # a lot reached take-profit but cannot be sold today


@dataclass(frozen=True, slots=True)
class GridEvent:
    kind: EventKind
    t: int
    code: str
    detail: str = ""


class BarLike(Protocol):
    @property
    def t(self) -> int: ...
    @property
    def h(self) -> float: ...
    @property
    def l(self) -> float: ...  # noqa: E743
    @property
    def c(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PoolView:
    """The shared pool as the vault reports it: ``committed_fen`` is used + frozen over all symbols."""

    committed_fen: int
    physical_pool_fen: int
    utilization: float
    symbol_committed_fen: int | None = None  # this symbol's used + frozen
    symbol_cap_fen: int | None = None  # this symbol's nominal cap

    @classmethod
    def of(
        cls,
        committed_fen: int,
        physical_pool_fen: int,
        symbol_committed_fen: int | None = None,
        symbol_cap_fen: int | None = None,
    ) -> PoolView:
        return cls(
            committed_fen,
            physical_pool_fen,
            utilization(committed_fen, physical_pool_fen),  # the one shared function, exact amounts
            symbol_committed_fen,
            symbol_cap_fen,
        )


class StepContext(NamedTuple):
    """Per-bar extras. ``precomputed=True`` means ``indicators`` holds this bar's values (``None`` in
    warm-up) computed outside, e.g. vectorised by the backtest; otherwise the state's incremental
    indicators are updated. ``buy_step_multiplier`` widens the buy step on top of the penalty (the risk
    mode's DEGRADED widening, ``mac.grid.risk_policy``); sells and the take-profit are never affected.

    The venue's view of the position, for the sell budget (``sell_budget``): ``sellable_volume`` is the
    broker's ``can_use_volume`` (net of sells resting at the venue), ``position_volume`` its ``volume``,
    ``unplaced_sell_shares`` the unfilled shares of this grid's pending sells that have not reached the
    venue yet (``None``: assume none has, so all are deducted)."""

    indicators: IndicatorValues | None = None
    precomputed: bool = False
    sellable_volume: int | None = None
    buy_step_multiplier: float = 1.0
    position_volume: int | None = None
    unplaced_sell_shares: int | None = None


@dataclass(frozen=True, slots=True)
class Lot:
    client_order_id: str
    shares: int  # held (filled) shares
    cost: Decimal  # exact cost of the held shares, yuan, fees excluded
    buy_price: float  # the take-profit is measured from this price
    status: str  # PENDING_BUY / OPEN / PENDING_SELL
    layer_index: int
    buy_day: int  # trading day number (CST) of the buy, for T+1
    requested_shares: int = 0


@dataclass(frozen=True, slots=True)
class PendingOrder:
    client_order_id: str
    side: str
    price_milli: int
    shares: int
    release_client_order_ids: tuple[str, ...]
    reason: str
    t: int
    prev_anchor: float | None  # anchor before this order moved it
    prev_last_flat: int
    set_anchor: float | None  # anchor this order set (None: it did not move it)
    set_last_flat: int | None
    filled_shares: int = 0
    filled_value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class GridSignal:
    """An order the grid decided on one bar (the node turns it into the file contract's ``Signal``)."""

    code: str
    side: str
    price_milli: int  # limit price in 0.001 ticks
    shares: int
    layer_index: int
    client_order_id: str
    release_client_order_ids: tuple[str, ...]
    reason: str
    t: int  # the deciding bar's time (epoch ms)

    @property
    def price(self) -> Decimal:
        return Decimal(self.price_milli) / 1000

    @property
    def amount_fen(self) -> int:
        """Notional in fen (exact for whole lots; half up for odd ones)."""
        return (self.price_milli * self.shares + 5) // 10


@dataclass(frozen=True, slots=True)
class GridState:
    code: str
    lots: tuple[Lot, ...] = ()
    anchor: float | None = None
    last_flat_index: int = FAR_PAST
    penalty_on: bool = False
    cash: Decimal = Decimal(0)
    orders: tuple[PendingOrder, ...] = ()
    indicators: IndicatorState = IndicatorState()
    signals_sent: int = 0

    @property
    def open_shares(self) -> int:
        return sum(lot.shares for lot in self.lots)

    @property
    def cost(self) -> Decimal:
        return sum((lot.cost for lot in self.lots), Decimal(0))

    def order(self, client_order_id: str) -> PendingOrder | None:
        for o in self.orders:
            if o.client_order_id == client_order_id:
                return o
        return None


class GridError(ValueError):
    """A call that contradicts the grid state (a fill above the order, ``close_all`` in reference mode)."""


def initial_state(params: GridParams | CompiledParams) -> GridState:
    p = params.source if isinstance(params, CompiledParams) else params
    periods = IndicatorPeriods(
        p.atr_period, p.ma_period, p.slope_lag, p.slope_span, p.atr_avg_period, p.rsi_period
    )
    return GridState(code=p.code, indicators=IndicatorState(periods))
