"""The grid's small rules, each defined once: the buy step, the take-profit, the breaker and the cooling-off,
the penalty hysteresis, the pool check before a buy, the commission, the sell budget and which lots it
lets go (T+1), the opt-in anchor that trails a rally while flat, ids and day numbers.

``mac.grid.decide`` calls them bar by bar in both modes; ``mac.grid.ladder`` (the dashboard's "where next")
and the node call the same functions, so an explanation can never drift from a decision. Plain functions
over ``CompiledParams``: the hot loop pays one call, no validation. Decision arithmetic is IEEE double in
the order reference-grid.md writes it; money is ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from decimal import Decimal

from mac.grid.params import CompiledParams
from mac.grid.state import OPEN, PENDING_SELL, SELL, EventKind, GridState, Lot, PoolView
from shared_schema.ledger_math import PoolRefusal, pool_refusal
from shared_schema.ledger_math import commission as ledger_commission
from shared_schema.ledger_math import sell_budget as ledger_sell_budget
from shared_schema.order_ids import base36

_MS_PER_DAY = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000


# ------------------------------------------------------------------------------------- time and ids


def trading_day(t_ms: int) -> int:
    """Day number of an epoch-ms timestamp in China time (pure arithmetic, no clock)."""
    return (t_ms + _CST_OFFSET_MS) // _MS_PER_DAY


def closes_session(cp: CompiledParams, t_ms: int) -> bool:
    """The bar ending at ``t_ms`` closes a session (``no_trade_minutes``): an order decided on it would reach
    the venue after the bell."""
    return ((t_ms + _CST_OFFSET_MS) % _MS_PER_DAY) // 60_000 in cp.no_trade_minutes


def make_client_order_id(code_tag: str, side: str, t_ms: int, n: int) -> str:
    """``G`` + 4 code digits + B/S + base-36 CST day + HHMM + base-36 index within the bar.

    E.g. ``G9201B FTV 0931 0`` -> ``G9201BFTV09310`` (14 chars, ASCII). Deterministic from symbol, bar
    time and counter, unique across days (the day is absolute) and restarts (a replayed bar yields the
    same id, which the executor deduplicates).
    """
    local = t_ms + _CST_OFFSET_MS
    day, ms = divmod(local, _MS_PER_DAY)
    minutes = ms // 60_000
    return f"G{code_tag}{side[0]}{base36(day)}{minutes // 60:02d}{minutes % 60:02d}{base36(n)}"


# ------------------------------------------------------------------------------------------ prices


def price_decimal(price: float) -> Decimal:
    return Decimal(repr(price))


def price_milli(price: float) -> int:
    """A float price in 0.001 ticks, rounded to the nearest tick."""
    return int(round(price * 1000))


def commission(params: CompiledParams, value: Decimal) -> Decimal:
    """Reference: the exact ``rate * value`` (the reference rule). Realistic: the one commission formula
    (``shared_schema.ledger_math.commission``: at least the minimum, half up to the fen)."""
    if params.realistic:
        return ledger_commission(value, params.commission_rate, params.commission_min)
    return params.commission_rate * value


# --------------------------------------------------------------------------------- buy and sell rules


def buy_step(
    price: float,
    atr: float,
    slope: float,
    n_lots: int,
    cp: CompiledParams,
    penalty_on: bool,
    risk_multiplier: float = 1.0,
) -> float:
    """The buy step on a bar closing at ``price``: the trigger is ``price <= anchor * (1 - step)``.

    ``max(floor, atr / price * factor)``, times the trend multiplier by the slope's sign, plus the layer
    bonus per counted lot, times the penalty multiplier when the penalty is on, times the risk mode's
    buy-step multiplier (DEGRADED widens buys) when it is not 1. Sells and the take-profit are never
    widened. The one definition: ``step`` decides with it, the ladder explains with it.
    """
    step_ = atr / price * cp.atr_grid_factor
    floor = cp.grid_step_floor
    if floor > step_:
        step_ = floor
    if slope > 0:
        step_ *= cp.up_step_mult
    elif slope < 0:
        step_ *= cp.down_step_mult
    step_ += cp.layer_step_bonus * n_lots
    if penalty_on:
        step_ *= cp.penalty_multiplier
    if risk_multiplier != 1.0:
        step_ *= risk_multiplier
    return step_


def take_profit_multiplier(slope: float, cp: CompiledParams) -> float:
    """``1 + tp * sell_factor`` with the trend's take-profit multiplier: a lot bought at ``b`` is sold at a
    close ``>= b * multiplier`` (the penalty never applies)."""
    tp = cp.sell_profit_threshold
    if slope > 0:
        tp *= cp.up_tp_mult
    elif slope < 0:
        tp *= cp.down_tp_mult
    return 1 + tp * cp.sell_threshold_factor


def buy_size(slope: float, cp: CompiledParams) -> float:
    """The trend's size factor of a new lot (1 on a flat slope)."""
    if slope > 0:
        return cp.up_size
    if slope < 0:
        return cp.down_size
    return 1.0


def is_breaker_on(atr: float, atr_avg: float, cp: CompiledParams) -> bool:
    """The ATR breaker: buying pauses while ``ATR > ATR_AVG * breaker_mult``."""
    return atr > atr_avg * cp.breaker_mult


def cooling_bars_needed(rsi: float, cp: CompiledParams) -> int:
    """Usable bars the cooling-off waits after going flat (fewer when oversold)."""
    return cp.cooling_bars_oversold if rsi < cp.cooling_rsi else cp.cooling_bars


def penalty_after(on: bool, utilization: float, trigger: float, release: float) -> bool:
    """The buy-step penalty's hysteresis: on above ``trigger``, off only below ``release``, else unchanged.

    The one definition of the rule: the grid step, the node and the dashboard all call it.
    """
    if on:
        return not utilization < release
    return utilization > trigger


def anchor_follows_up(cp: CompiledParams, state: GridState) -> bool:
    """Realistic mode's opt-in ``anchor_follows_up``: on this state a close above the anchor raises the anchor
    to it (it never falls this way). Only while the grid is flat, no lot and no pending order: a pending
    sell or buy restores the anchor it found if it fails, and a held lot keeps reference-grid.md's anchor.
    The backtest's quiet-bar filter (``backtest.kernel.candidate_bars``) wakes on the same condition."""
    return cp.anchor_follows_up and not state.lots and not state.orders


_REFUSAL_EVENTS = {
    PoolRefusal.NOMINAL_CAP: EventKind.NOMINAL_CAP,
    PoolRefusal.POOL_EXHAUSTED: EventKind.POOL_EXHAUSTED,
    PoolRefusal.RESERVE: EventKind.LAYER0_REFUSED_RESERVE,
}


def pool_refusal_event(
    pv: PoolView, amount_fen: int, layer_index: int, cp: CompiledParams
) -> EventKind | None:
    """The vault's pool rule (``shared_schema.ledger_math.pool_refusal``), checked before sending so a full
    pool does not turn into a refusal storm; the refusal as the grid's event kind, ``None`` if it passes."""
    refusal = pool_refusal(
        pv.committed_fen,
        pv.physical_pool_fen,
        amount_fen,
        layer_index == 0,
        cp.reserve_ratio,
        pv.symbol_committed_fen,
        pv.symbol_cap_fen,
    )
    return None if refusal is None else _REFUSAL_EVENTS[refusal]


# ---------------------------------------------------------------------------------- the sell budget


def unplaced_sell_shares(state: GridState, at_venue: Collection[str]) -> int:
    """Unfilled shares of this grid's pending sells whose ``client_order_id`` is not in ``at_venue``."""
    return sum(
        o.shares - o.filled_shares
        for o in state.orders
        if o.side == SELL and o.client_order_id not in at_venue
    )


def sell_budget(
    state: GridState,
    base_position_shares: int,
    sellable_volume: int | None,
    position_volume: int | None = None,
    unplaced: int | None = None,
) -> int | None:
    """Shares the grid may still put into new sells now; ``None`` when the venue's view is unknown.

    T+1 with a base position (domain notes): shares are fungible at the exchange, so any grid lot,
    one bought today included, may be sold while the venue's ``can_use_volume`` covers it; selling
    today's lot uses base shares, and today's buy restores the base (sellable again tomorrow). The
    budget is ``can_use_volume`` minus the grid's sells the venue does not know yet (resting sells are
    already out of ``can_use_volume``; ``unplaced=None`` deducts every pending sell, the safe reading),
    and never more than ``position_volume - base - unfilled pending sells``, so the position never ends
    under the configured base even when the books and the venue disagree. The arithmetic is
    ``shared_schema.ledger_math.sell_budget``, the one the executor's forced reduction uses too.
    """
    if sellable_volume is None:
        return None
    pending = sum(o.shares - o.filled_shares for o in state.orders if o.side == SELL) if state.orders else 0
    return ledger_sell_budget(
        sellable_volume,
        pending if unplaced is None else unplaced,
        position_volume,
        base_position_shares,
        pending,
    )


def is_sellable_now(lot: Lot, budget: int | None, today: int) -> bool:
    """An OPEN lot that may go into a sell now (T+1 with a base position): with the venue's view known
    (``budget`` not ``None``), today's lots may go against sellable base shares and the budget decides;
    without it only lots bought before today, which T+1 surely allows."""
    return lot.status == OPEN and lot.shares > 0 and (budget is not None or lot.buy_day < today)


def within_budget(lots: list[Lot], budget: int) -> list[Lot]:
    """The lots, oldest first, while the sell budget covers them (a lot that does not fit is skipped)."""
    out = []
    for lot in lots:
        if lot.shares <= budget:
            out.append(lot)
            budget -= lot.shares
    return out


def mark_pending_sell(lots: tuple[Lot, ...], ids: tuple[str, ...]) -> tuple[Lot, ...]:
    """The lots with those named by ``ids`` marked ``PENDING_SELL`` (no new signal until the sell ends)."""
    return tuple(replace(lot, status=PENDING_SELL) if lot.client_order_id in ids else lot for lot in lots)
