"""The grid's decisions on every bar: ``step`` (FUSE's ``close_all`` is in ``mac.grid.fuse``).

``step`` updates (or takes) the bar's indicators and hands the bar to one of two small functions over the
same ``GridState``: ``_step_reference`` (reference-grid.md: every decision fills at the close, cash moves
at once) or ``_step_realistic`` (the pool's penalty and refusals, T+1 and the sell budget, orders pending
until ``mac.grid.outcomes`` reports them). What both do (buy step, take-profit, breaker, cooling-off, the
float stop's loss, sizing, ids) is one helper or one rule in ``mac.grid.rules``.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from mac.grid.indicators import IndicatorValues, update_indicators
from mac.grid.params import CompiledParams, compile_params
from mac.grid.rules import (
    anchor_follows_up,
    buy_size,
    buy_step,
    closes_session,
    commission,
    cooling_bars_needed,
    is_breaker_on,
    is_sellable_now,
    make_client_order_id,
    mark_pending_sell,
    penalty_after,
    pool_refusal_event,
    price_decimal,
    price_milli,
    sell_budget,
    take_profit_multiplier,
    trading_day,
    within_budget,
)
from mac.grid.state import (
    BUY,
    FLOAT_STOP,
    GRID_BUY,
    OPEN,
    PENDING_BUY,
    PENDING_SELL,
    SELL,
    TAKE_PROFIT,
    BarLike,
    EventKind,
    GridEvent,
    GridSignal,
    GridState,
    Lot,
    PendingOrder,
    PoolView,
    StepContext,
)
from settings.grid import GridParams

_EMPTY: tuple[()] = ()

# What a step returns: the new state, the signals to send, the events to log.
StepResult = tuple[GridState, tuple[GridSignal, ...], tuple[GridEvent, ...]]
# Sells decided on one bar: (the lots' client_order_ids, reason) per signal.
Sells = list[tuple[tuple[str, ...], str]]


def step(
    state: GridState,
    bar: BarLike,
    pool_view: PoolView | None,
    params: CompiledParams | GridParams,
    ctx: StepContext | IndicatorValues | None = None,
) -> StepResult:
    """Decide on one bar at its close. Returns the new state, the signals and the events.

    ``ctx`` may be ``None`` (indicators updated incrementally from the state, the live node's way), a
    ``StepContext``, or an ``IndicatorValues`` as shorthand for precomputed indicators.

    Reference mode applies every signal at once (fill at the close). Realistic mode leaves BUY lots
    ``PENDING_BUY`` and sold lots ``PENDING_SELL`` until ``apply_fill`` / ``apply_reject``.
    """
    cp = params if isinstance(params, CompiledParams) else compile_params(params)
    ind: IndicatorValues | None
    sctx: StepContext | None = None
    if isinstance(ctx, IndicatorValues):
        ind = ctx  # shorthand for StepContext(ctx, precomputed=True): the backtest's hot loop
    else:
        sctx = ctx
        if sctx is not None and sctx.precomputed:
            ind = sctx.indicators
        else:
            ind_state, ind = update_indicators(state.indicators, bar.h, bar.l, bar.c)
            state = replace(state, indicators=ind_state)
    if ind is None:
        return state, _EMPTY, _EMPTY
    if cp.no_trade_minutes and closes_session(cp, bar.t):
        return state, _EMPTY, _EMPTY
    if cp.realistic:
        return _step_realistic(state, bar, pool_view, cp, ind, sctx)
    return _step_reference(state, bar, cp, ind, 1.0 if sctx is None else sctx.buy_step_multiplier)


def _step_reference(
    state: GridState, bar: BarLike, cp: CompiledParams, ind: IndicatorValues, risk_multiplier: float
) -> StepResult:
    """reference-grid.md: take-profits (or the float stop), then at most one buy, all filled at the close."""
    price = bar.c
    lots = state.lots
    anchor = state.anchor
    changed = anchor is None
    if anchor is None:
        anchor = price
    n_before = len(lots)
    # the trigger is measured on the lots and the anchor before any sell
    triggered = price <= anchor * (
        1 - buy_step(price, ind.atr, ind.slope, n_before, cp, state.penalty_on, risk_multiplier)
    )
    events: list[GridEvent] | None = None
    signals: list[GridSignal] | None = None
    last_flat = state.last_flat_index
    n_after = n_before

    if n_before:
        tp_mult = take_profit_multiplier(ind.slope, cp)
        if cp.float_stop or _any_at_take_profit(lots, price, tp_mult):
            if cp.float_stop and _is_float_loss_breached(lots, price, cp):
                sells: Sells = [(tuple(lot.client_order_id for lot in lots), FLOAT_STOP)]
                events = [GridEvent(EventKind.FLOAT_STOP, bar.t, cp.code, f"lots={n_before}")]
            else:
                sells = [
                    ((lot.client_order_id,), TAKE_PROFIT) for lot in lots if price >= lot.buy_price * tp_mult
                ]
            if sells:
                changed = True
                n_after = n_before - sum(len(ids) for ids, _ in sells)
                if n_after == 0:
                    last_flat, anchor = ind.usable_index, price
                signals = _sell_signals(lots, sells, cp, bar.t, price)
                cash = state.cash
                for sig in signals:
                    value = price_decimal(price) * sig.shares
                    cash += value - commission(cp, value)
                sold = {i for ids, _ in sells for i in ids}
                lots = tuple(lot for lot in lots if lot.client_order_id not in sold)
                state = replace(state, lots=lots, cash=cash)

    if n_after < cp.layers and triggered:
        blocked = _buy_blocked(cp, ind, n_after, last_flat)
        if blocked is not None:
            events = (events or []) + [GridEvent(blocked, bar.t, cp.code)]
        else:
            k = n_after
            shares = _buy_shares(cp, k, price, ind.slope)
            if shares > 0:
                changed = True
                sig = _buy_signal(cp, bar.t, price_milli(price) + cp.limit_offset_ticks, shares, k, signals)
                signals = (signals or []) + [sig]
                value = price_decimal(price) * shares
                lot = Lot(sig.client_order_id, shares, value, price, OPEN, k, trading_day(bar.t), shares)
                state = replace(state, lots=lots + (lot,), cash=state.cash - value - commission(cp, value))
                if k + 1 == cp.layers:
                    events = (events or []) + [GridEvent(EventKind.ALL_LAYERS_OPEN, bar.t, cp.code)]
                anchor = price

    if not changed:
        return state, _EMPTY, tuple(events) if events else _EMPTY
    return _moved(state, anchor, last_flat, state.penalty_on, signals, events)


def _step_realistic(
    state: GridState,
    bar: BarLike,
    pool_view: PoolView | None,
    cp: CompiledParams,
    ind: IndicatorValues,
    ctx: StepContext | None,
) -> StepResult:
    """The reference decisions under the pool's rules (penalty hysteresis, refusals before sending), T+1
    with the venue's sell budget, and orders: a lot with a pending order gets no new signal."""
    price = bar.c
    lots = state.lots
    anchor = state.anchor
    changed = anchor is None
    if anchor is None:
        anchor = price

    penalty = state.penalty_on
    events: list[GridEvent] | None = None
    if pool_view is not None:
        u = pool_view.utilization
        now_on = penalty_after(penalty, u, cp.penalty_trigger, cp.penalty_release)
        if now_on != penalty:
            kind = EventKind.PENALTY_ON if now_on else EventKind.PENALTY_OFF
            events = [GridEvent(kind, bar.t, cp.code, f"{u:.4f}")]
            penalty = now_on
            changed = True

    n_before = 0  # lots being sold no longer count (layer bonus, layer index, flat)
    for lot in lots:
        if lot.status != PENDING_SELL:
            n_before += 1
    risk_multiplier = 1.0 if ctx is None else ctx.buy_step_multiplier
    triggered = price <= anchor * (
        1 - buy_step(price, ind.atr, ind.slope, n_before, cp, penalty, risk_multiplier)
    )
    if price > anchor and anchor_follows_up(cp, state):
        # the flat grid's anchor trails the rally; measured after the trigger, which a close above the
        # anchor cannot fire, so the bar decides exactly as without the rule and only the anchor moves
        anchor = price
        changed = True
    signals: list[GridSignal] | None = None
    last_flat = state.last_flat_index
    n_after = n_before

    if n_before:
        tp_mult = take_profit_multiplier(ind.slope, cp)
        if cp.float_stop or _any_at_take_profit(lots, price, tp_mult):
            sells, ev = _realistic_sells(state, cp, bar.t, price, tp_mult, ctx)
            if ev:
                events = (events or []) + ev
            if sells:
                changed = True
                n_after = n_before - sum(len(ids) for ids, _ in sells)
                flat_now = n_after == 0
                prev_anchor, prev_flat = anchor, last_flat
                if flat_now:
                    last_flat, anchor = ind.usable_index, price
                signals = _sell_signals(lots, sells, cp, bar.t, price)
                set_anchor, set_flat = (anchor, last_flat) if flat_now else (None, None)
                orders = _sell_orders(signals, prev_anchor, prev_flat, set_anchor, set_flat)
                lots = mark_pending_sell(lots, tuple(i for ids, _ in sells for i in ids))
                state = replace(state, lots=lots, orders=state.orders + orders)

    if n_after < cp.layers and triggered:
        blocked = _buy_blocked(cp, ind, n_after, last_flat)
        if blocked is not None:
            events = (events or []) + [GridEvent(blocked, bar.t, cp.code)]
        else:
            k = n_after
            shares = _buy_shares(cp, k, price, ind.slope)
            if shares > 0:
                pm = price_milli(price) + cp.limit_offset_ticks
                amount_fen = (pm * shares + 5) // 10
                refused = pool_refusal_event(pool_view, amount_fen, k, cp) if pool_view is not None else None
                if refused is not None:
                    events = (events or []) + [GridEvent(refused, bar.t, cp.code, f"amount_fen={amount_fen}")]
                else:
                    changed = True
                    sig = _buy_signal(cp, bar.t, pm, shares, k, signals)
                    signals = (signals or []) + [sig]
                    client_order_id = sig.client_order_id
                    lot = Lot(
                        client_order_id, 0, Decimal(0), price, PENDING_BUY, k, trading_day(bar.t), shares
                    )
                    order = PendingOrder(
                        client_order_id, BUY, pm, shares, (), GRID_BUY, bar.t, anchor, last_flat, price, None
                    )
                    state = replace(state, lots=lots + (lot,), orders=state.orders + (order,))
                    anchor = price

    if not changed:
        return state, _EMPTY, tuple(events) if events else _EMPTY
    return _moved(state, anchor, last_flat, penalty, signals, events)


# ------------------------------------------------------------------------- what both modes share


def _moved(
    state: GridState,
    anchor: float,
    last_flat: int,
    penalty: bool,
    signals: list[GridSignal] | None,
    events: list[GridEvent] | None,
) -> StepResult:
    """The step's result on a bar that moved the anchor, the penalty or sent signals."""
    new_state = replace(
        state,
        anchor=anchor,
        last_flat_index=last_flat,
        penalty_on=penalty,
        signals_sent=state.signals_sent + (len(signals) if signals else 0),
    )
    return new_state, tuple(signals) if signals else _EMPTY, tuple(events) if events else _EMPTY


def _any_at_take_profit(lots: tuple[Lot, ...], price: float, tp_mult: float) -> bool:
    """A cheap scan first: on most bars no lot is near its take-profit."""
    for lot in lots:
        if price >= lot.buy_price * tp_mult:
            return True
    return False


def _is_float_loss_breached(held: tuple[Lot, ...] | list[Lot], price: float, cp: CompiledParams) -> bool:
    """The float stop: the held lots' loss at ``price`` is beyond ``max_cycle_float_loss``."""
    shares = 0
    cost = 0.0
    for lot in held:
        shares += lot.shares
        cost += float(lot.cost)
    return bool(held) and shares * price - cost < -cp.max_cycle_float_loss


def _buy_blocked(cp: CompiledParams, ind: IndicatorValues, n_lots: int, last_flat: int) -> EventKind | None:
    """Why a triggered buy is skipped on this bar: the ATR breaker, or the cooling-off after going flat."""
    if is_breaker_on(ind.atr, ind.atr_avg, cp):
        return EventKind.BREAKER_PAUSE
    if cp.cooling and n_lots == 0 and (ind.usable_index - last_flat) < cooling_bars_needed(ind.rsi, cp):
        return EventKind.COOLING
    return None


def _buy_shares(cp: CompiledParams, layer_index: int, price: float, slope: float) -> int:
    """Whole lots of the layer's weight of the nominal cap, times the trend's size factor."""
    money = cp.nominal_cap * cp.weights[layer_index] / cp.sum_weights * buy_size(slope, cp)
    return int(money / price / cp.lot) * cp.lot


def _buy_signal(
    cp: CompiledParams, t: int, pm: int, shares: int, layer_index: int, signals: list[GridSignal] | None
) -> GridSignal:
    client_order_id = make_client_order_id(cp.code_tag, BUY, t, len(signals) if signals else 0)
    return GridSignal(cp.code, BUY, pm, shares, layer_index, client_order_id, (), GRID_BUY, t)


def _sell_signals(
    lots: tuple[Lot, ...], sells: Sells, cp: CompiledParams, t: int, price: float
) -> list[GridSignal]:
    """One SELL per decided group, at the close less the offset, for the shares its lots hold."""
    pm = price_milli(price) - cp.limit_offset_ticks
    out = []
    for i, (ids, reason) in enumerate(sells):
        sold = [lot for lot in lots if lot.client_order_id in ids]
        shares = sum(lot.shares for lot in sold)
        client_order_id = make_client_order_id(cp.code_tag, SELL, t, i)
        out.append(
            GridSignal(cp.code, SELL, pm, shares, sold[0].layer_index, client_order_id, ids, reason, t)
        )
    return out


# --------------------------------------------------------------------------- realistic sells (T+1)


def _sell_orders(
    signals: list[GridSignal],
    prev_anchor: float,
    prev_flat: int,
    set_anchor: float | None,
    set_flat: int | None,
) -> tuple[PendingOrder, ...]:
    """The pending orders of this bar's sells; each remembers the anchor and flat bar it found and, when the
    sells leave nothing held, the ones it set (a sell that fails restores them)."""
    return tuple(
        PendingOrder(
            sig.client_order_id,
            SELL,
            sig.price_milli,
            sig.shares,
            sig.release_client_order_ids,
            sig.reason,
            sig.t,
            prev_anchor,
            prev_flat,
            set_anchor,
            set_flat,
        )
        for sig in signals
    )


def _realistic_sells(
    state: GridState, cp: CompiledParams, t: int, price: float, tp_mult: float, ctx: StepContext | None
) -> tuple[Sells, list[GridEvent] | None]:
    """Which OPEN lots to sell on this bar, within T+1 and the sell budget, and the events it causes."""
    lots = state.lots
    today = trading_day(t)
    budget = (
        None
        if ctx is None
        else sell_budget(
            state, cp.base_position_shares, ctx.sellable_volume, ctx.position_volume, ctx.unplaced_sell_shares
        )
    )
    events: list[GridEvent] | None = None
    if cp.float_stop:
        held = [lot for lot in lots if lot.status == OPEN]
        if _is_float_loss_breached(held, price, cp):
            chosen = [lot for lot in held if is_sellable_now(lot, budget, today)]
            if budget is not None:
                chosen = within_budget(chosen, budget)
            events = [GridEvent(EventKind.FLOAT_STOP, t, cp.code, f"lots={len(chosen)}")]
            if not chosen:
                return [], events
            return [(tuple(lot.client_order_id for lot in chosen), FLOAT_STOP)], events

    sells: Sells = []
    for lot in lots:
        if price >= lot.buy_price * tp_mult and lot.status == OPEN:
            if not is_sellable_now(lot, budget, today) or (budget is not None and lot.shares > budget):
                events = (events or []) + [
                    GridEvent(EventKind.NOT_SELLABLE_T1, t, cp.code, lot.client_order_id)
                ]
                continue
            if budget is not None:
                budget -= lot.shares
            sells.append(((lot.client_order_id,), TAKE_PROFIT))
    return sells, events
