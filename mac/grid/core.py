"""The pure grid core, the grid's public face: ``step(state, bar, pool_view, params, ctx) -> (state,
signals, events)``.

One function drives both the backtest and the live node. It reads one bar, the pool as the vault sees it
(``PoolView``, or ``None`` in reference mode) and returns a new frozen ``GridState`` with the signals to
send and typed events to log. No IO, no clock, no threads.

Modes (``params.mode``):

* ``reference`` - reference-grid.md bar for bar: every decision fills at the deciding bar's close, one
  symbol, no pool, no T+1, no penalty. Cash is exact (``Decimal``), commission ``rate * shares * P``.
* ``realistic`` - the same decisions plus the pool rules (layer-0 reserve, buy-step penalty with
  hysteresis), T+1 with a base position, and real order handling: a signal stays *pending* until the
  caller reports its outcome with ``apply_fill`` / ``apply_reject``; a lot with a pending order gets no
  new signal.

Where things live: the data in ``mac.grid.state``, the small rules in ``mac.grid.rules``, ``step`` in
``mac.grid.decide``, ``close_all`` in ``mac.grid.fuse``, ``apply_fill`` / ``apply_reject`` in
``mac.grid.outcomes``. This module re-exports the names the node, the backtest and the tests use.
"""

from __future__ import annotations

from mac.grid.decide import step
from mac.grid.fuse import close_all
from mac.grid.outcomes import apply_fill, apply_reject, take_sold_shares
from mac.grid.rules import (
    buy_step,
    commission,
    make_client_order_id,
    penalty_after,
    price_decimal,
    sell_budget,
    trading_day,
    unplaced_sell_shares,
)
from mac.grid.state import (
    BUY,
    FAR_PAST,
    FLOAT_STOP,
    FUSE_CLOSE,
    GRID_BUY,
    OPEN,
    PENDING_BUY,
    PENDING_SELL,
    SELL,
    TAKE_PROFIT,
    BarLike,
    EventKind,
    GridError,
    GridEvent,
    GridSignal,
    GridState,
    Lot,
    PendingOrder,
    PoolView,
    StepContext,
    initial_state,
)
from shared_schema.ledger_math import sell_budget as ledger_sell_budget  # the arithmetic sell_budget calls

__all__ = [
    "BUY",
    "FAR_PAST",
    "FLOAT_STOP",
    "FUSE_CLOSE",
    "GRID_BUY",
    "OPEN",
    "PENDING_BUY",
    "PENDING_SELL",
    "SELL",
    "TAKE_PROFIT",
    "BarLike",
    "EventKind",
    "GridError",
    "GridEvent",
    "GridSignal",
    "GridState",
    "Lot",
    "PendingOrder",
    "PoolView",
    "StepContext",
    "apply_fill",
    "apply_reject",
    "buy_step",
    "close_all",
    "commission",
    "initial_state",
    "ledger_sell_budget",
    "make_client_order_id",
    "penalty_after",
    "price_decimal",
    "sell_budget",
    "step",
    "take_sold_shares",
    "trading_day",
    "unplaced_sell_shares",
]
