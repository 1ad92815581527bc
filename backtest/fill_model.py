"""The backtest's limit-on-bar fill model (realistic mode): resting orders fill, or expire, against each
bar; FUSE closes every sellable lot; a risk state that forbids buys cancels the resting ones. The vault and
the grid state are told exactly as the executor would tell them (``on_fill``, ``apply_sell_fill``,
``on_cancel``, ``apply_fill``, ``apply_reject``). The rules are in ``backtest.engine``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mac.grid.core import BUY, SELL, GridState, apply_fill, apply_reject, close_all, commission, trading_day
from shared_schema.types import to_fen


@dataclass(frozen=True)
class Trade:
    t: int  # epoch ms of the bar the trade happened on (reference: the deciding bar)
    code: str
    side: str
    price_milli: int
    shares: int
    reason: str
    client_order_id: str
    layer_index: int
    fees: Decimal
    decided_t: int

    @property
    def price(self) -> Decimal:
        return Decimal(self.price_milli) / 1000



def close_all_now(state, bar, cp, venue, base, i, res, placed, tracker) -> GridState:
    """FUSE: sell every sellable lot now (``close_all``), the orders placed like the grid's own."""
    can_use, held = venue_volumes(state, venue, base)
    state, closing = close_all(state, bar, cp, can_use, held, 0)
    if closing:
        day = trading_day(bar.t)
        res.events["FUSE_CLOSE"] += len(closing)
        for s in closing:
            placed[s.client_order_id] = (i, day)
            tracker.signal_sent(s)
    return state


def cancel_buys(state, t, code, vault, tracker) -> GridState:
    """The risk state no longer allows buys: cancel the resting ones (the vault frees their money)."""
    for o in state.orders:
        if o.side == BUY:
            vault.on_cancel(code, o.client_order_id)
            state = apply_reject(state, o.client_order_id)
            tracker.cancelled_buys += 1
            tracker.cancelled(t, code, o.client_order_id, BUY, f"risk state {tracker.snapshot.state.value}")
    return state


def venue_volumes(state: GridState, v: list[int], base: int) -> tuple[int, int]:
    """(can_use_volume, volume) as a T+1 venue would report them: held at the start of the day, less
    what was sold since and what rests in sell orders; the position is the base plus the filled lots."""
    resting = sum(o.shares - o.filled_shares for o in state.orders if o.side == SELL) if state.orders else 0
    return v[1] - v[2] - resting, base + state.open_shares


def work_orders(state, bar, i, code, cp, vault, placed, res, tracker=None, venue=None) -> GridState:
    """Fill, or expire, the orders resting from earlier bars against this bar (limit-on-bar model).

    ``venue`` is the symbol's ``[day, held at day start, sold today]``; sell fills add to the last."""
    day = trading_day(bar.t)
    lo_m = round(bar.l * 1000)
    hi_m = round(bar.h * 1000)
    op_m = round(bar.o * 1000)
    for o in state.orders:
        at, oday = placed[o.client_order_id]
        if at >= i:
            continue
        client_order_id = o.client_order_id
        if oday != day or i - at > cp.source.order_ttl_bars:
            res.expired += 1
            if o.side == BUY:
                vault.on_cancel(code, client_order_id)
            state = apply_reject(state, client_order_id)
            if tracker is not None:
                tracker.cancelled(bar.t, code, client_order_id, o.side, "EXPIRED")
            continue
        if o.side == BUY:
            if lo_m > o.price_milli:
                continue
            px = min(op_m, o.price_milli)
        else:
            if hi_m < o.price_milli:
                continue
            px = max(op_m, o.price_milli)
        value = Decimal(px) * o.shares / 1000
        fee = commission(cp, value)  # the exact value's commission, already whole fen
        fee_fen = to_fen(fee)
        value_fen = (px * o.shares + 5) // 10
        if o.side == BUY:
            vault.on_fill(code, client_order_id, o.shares, value_fen, fee_fen)
            if o.shares and layer_of(state, client_order_id) == cp.layers - 1:
                res.all_layers += 1
        else:
            if venue is not None:
                venue[2] += o.shares
            ids = o.release_client_order_ids
            vault.apply_sell_fill(code, client_order_id, ids, o.shares, o.shares, value_fen, fee_fen)
        layer = layer_of(state, client_order_id if o.side == BUY else o.release_client_order_ids[0])
        state = apply_fill(state, client_order_id, o.shares, Decimal(px) / 1000, True, fees=fee)
        res.trades.append(Trade(bar.t, code, o.side, px, o.shares, o.reason, client_order_id, layer, fee, o.t))
        if tracker is not None:
            tracker.filled(bar.t, code, client_order_id, o.side, o.shares, px)
    return state


def layer_of(state: GridState, client_order_id: str) -> int:
    for lot in state.lots:
        if lot.client_order_id == client_order_id:
            return lot.layer_index
    return -1
