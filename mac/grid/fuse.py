"""FUSE's economic full close: ``close_all`` sells every lot that may be sold today (realistic mode).

The risk state FUSE reaches the grid as ``GridRiskMode.close_all`` (``mac.grid.risk_policy``); the node and
the backtest call ``close_all`` on each bar while it holds, beside ``step`` (which then buys nothing).
"""

from __future__ import annotations

from dataclasses import replace

from mac.grid.params import CompiledParams, compile_params
from mac.grid.rules import (
    closes_session,
    is_sellable_now,
    make_client_order_id,
    mark_pending_sell,
    price_milli,
    sell_budget,
    trading_day,
    within_budget,
)
from mac.grid.state import (
    FUSE_CLOSE,
    PENDING_SELL,
    SELL,
    BarLike,
    GridError,
    GridSignal,
    GridState,
    PendingOrder,
)
from settings.grid import GridParams

_EMPTY: tuple[()] = ()


def close_all(
    state: GridState,
    bar: BarLike,
    params: CompiledParams | GridParams,
    sellable_volume: int | None = None,
    position_volume: int | None = None,
    unplaced_sell_shares: int | None = None,
) -> tuple[GridState, tuple[GridSignal, ...]]:
    """FUSE's economic full close: a SELL (``FUSE_CLOSE``) for every OPEN lot that may be sold today.

    One signal per lot at the close minus ``limit_offset_ticks``, each lot marked ``PENDING_SELL``. T+1
    aware, with the take-profit's rule (``sell_budget``): with the venue's ``can_use_volume`` known, lots
    go oldest first while it covers them (today's lots against sellable base shares), never taking the
    position under the base; without it a lot bought today stays. A lot left over is offered again on a
    later bar, as is one whose sell was rejected or expired. No signal on a bar that closes a session.
    When nothing is left open the anchor moves to the close (as when take-profits go flat), so a later
    reset does not buy against the pre-crash anchor; a sell that fails restores it.
    """
    cp = params if isinstance(params, CompiledParams) else compile_params(params)
    if not cp.realistic:
        raise GridError("close_all needs realistic mode (orders are pending until their outcome is known)")
    if cp.no_trade_minutes and closes_session(cp, bar.t):
        return state, _EMPTY
    today = trading_day(bar.t)
    budget = sell_budget(
        state, cp.base_position_shares, sellable_volume, position_volume, unplaced_sell_shares
    )
    chosen = [lot for lot in state.lots if is_sellable_now(lot, budget, today)]
    if budget is not None:
        chosen = within_budget(chosen, budget)
    if not chosen:
        return state, _EMPTY
    ids = tuple(lot.client_order_id for lot in chosen)
    lots = mark_pending_sell(state.lots, ids)
    flat_now = all(lot.status == PENDING_SELL for lot in lots)
    prev_anchor = state.anchor
    anchor = bar.c if flat_now else state.anchor
    pm = price_milli(bar.c) - cp.limit_offset_ticks
    used = {o.client_order_id for o in state.orders}
    signals: list[GridSignal] = []
    orders = list(state.orders)
    n = 0
    for lot in chosen:
        client_order_id = make_client_order_id(cp.code_tag, SELL, bar.t, n)
        while client_order_id in used:  # a take-profit sell decided on this same bar took the index
            n += 1
            client_order_id = make_client_order_id(cp.code_tag, SELL, bar.t, n)
        used.add(client_order_id)
        release = (lot.client_order_id,)
        signals.append(
            GridSignal(
                cp.code, SELL, pm, lot.shares, lot.layer_index, client_order_id, release, FUSE_CLOSE, bar.t
            )
        )
        orders.append(
            PendingOrder(
                client_order_id,
                SELL,
                pm,
                lot.shares,
                release,
                FUSE_CLOSE,
                bar.t,
                prev_anchor,
                state.last_flat_index,
                anchor if flat_now else None,
                state.last_flat_index if flat_now else None,
            )
        )
    new_state = replace(
        state, lots=lots, orders=tuple(orders), anchor=anchor, signals_sent=state.signals_sent + len(signals)
    )
    return new_state, tuple(signals)
