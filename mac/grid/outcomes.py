"""Order outcomes: what a fill or a reject of a pending order does to the grid state (realistic mode).

``apply_fill`` takes an order's cumulative fill, ``apply_reject`` ends it without (further) fills, and
``take_sold_shares`` splits a sell's shares over the lots it released the way the vault splits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from mac.grid.params import CompiledParams, compile_params
from mac.grid.rules import commission, price_decimal
from mac.grid.state import BUY, OPEN, SELL, GridError, GridState, Lot, PendingOrder
from settings.grid import GridParams
from shared_schema.ledger_math import split_shares


def apply_fill(
    state: GridState,
    client_order_id: str,
    filled_shares: int,
    avg_price: float | Decimal,
    final: bool,
    params: CompiledParams | GridParams | None = None,
    fees: Decimal | None = None,
    filled_value: Decimal | None = None,
) -> GridState:
    """Apply an order's *cumulative* fill. Unknown ids and stale totals change nothing (idempotent).

    A BUY lot holds what filled (``final`` makes it OPEN; a final fill of 0 is a reject). A SELL moves cash
    as it fills; when final, fully sold lots leave and a partial fill returns every lot with the unsold
    part pro rata (the vault's rule), so the grid and the vault agree on what each lot still holds.
    ``fees`` is the order's cumulative commission; without it the params' commission model is used.
    ``filled_value`` is the fill's exact cumulative value (the executor's result); without it, ``avg_price``
    times the shares.
    """
    order = state.order(client_order_id)
    if order is None or filled_shares < order.filled_shares:
        return state
    if filled_shares > order.shares:
        raise GridError(f"{client_order_id}: filled {filled_shares} > ordered {order.shares}")
    if final and filled_shares == 0:
        return apply_reject(state, client_order_id)
    avg = avg_price if isinstance(avg_price, Decimal) else price_decimal(float(avg_price))
    value = avg * filled_shares if filled_value is None else filled_value
    if fees is None:
        cp = (
            None
            if params is None
            else params
            if isinstance(params, CompiledParams)
            else compile_params(params)
        )
        fees = commission(cp, value) if cp is not None else Decimal(0)
    d_value = value - order.filled_value
    d_fees = fees - order.fees
    new_order = replace(order, filled_shares=filled_shares, filled_value=value, fees=fees)
    if order.side == BUY:
        cash = state.cash - d_value - d_fees
        lots = []
        for lot in state.lots:
            if lot.client_order_id == client_order_id:
                lot = replace(lot, shares=filled_shares, cost=value)
                if final:
                    lot = replace(lot, status=OPEN, buy_price=float(avg))
            lots.append(lot)
    else:
        cash = state.cash + d_value - d_fees
        lots = list(state.lots)
        if final:  # the shares sold are split as the vault splits them
            lots = take_sold_shares(lots, order.release_client_order_ids, filled_shares)
    orders = tuple(o for o in state.orders if o.client_order_id != client_order_id)
    if not final:
        orders = tuple(new_order if o.client_order_id == client_order_id else o for o in state.orders)
    state = replace(state, lots=tuple(lots), cash=cash, orders=orders)
    if final and order.side == SELL and filled_shares < order.shares:
        state = _undo_flatten(state, order)
    return state


def take_sold_shares(
    lots: Sequence[Lot], release_ids: Sequence[str], filled: int, open_only: bool = False
) -> list[Lot]:
    """``lots`` after ``filled`` shares were sold from the lots ``release_ids`` names (``open_only``: only
    those still OPEN). The shares are split as the vault splits them (``split_shares`` over the named lots'
    holdings, in the order named), so both books agree per lot; each lot keeps its unsold part, OPEN, with
    its cost in proportion."""
    eligible = {lot.client_order_id: lot.shares for lot in lots if not open_only or lot.status == OPEN}
    named = [c for c in dict.fromkeys(release_ids) if c in eligible]
    taken = dict(zip(named, split_shares(filled, [eligible[c] for c in named]), strict=True))
    out = []
    for lot in lots:
        if lot.client_order_id not in taken:
            out.append(lot)
            continue
        start = lot.shares
        left = start - taken[lot.client_order_id]
        if left > 0:
            cost = (lot.cost * left / start) if start else Decimal(0)
            out.append(replace(lot, shares=left, cost=cost, status=OPEN))
    return out


def _undo_flatten(state: GridState, order: PendingOrder) -> GridState:
    """A sell that flattened the lots did not complete: if nothing moved since, restore anchor/last flat."""
    if order.set_anchor is None:
        return state
    if state.anchor == order.set_anchor and state.last_flat_index == order.set_last_flat:
        return replace(state, anchor=order.prev_anchor, last_flat_index=order.prev_last_flat)
    return state


def apply_reject(state: GridState, client_order_id: str) -> GridState:
    """The order ended without (further) fills: rejected, cancelled or expired.

    A BUY with nothing filled removes its pending lot and restores the anchor (if no later decision moved
    it); a partly filled BUY keeps the lot with what filled. A SELL returns its lots to OPEN (a partly
    filled one keeps the unsold part). Unknown ids change nothing.
    """
    order = state.order(client_order_id)
    if order is None:
        return state
    if order.filled_shares > 0:
        return apply_fill(
            state,
            client_order_id,
            order.filled_shares,
            order.filled_value / order.filled_shares,
            True,
            fees=order.fees,
        )
    orders = tuple(o for o in state.orders if o.client_order_id != client_order_id)
    if order.side == BUY:
        lots = tuple(lot for lot in state.lots if lot.client_order_id != client_order_id)
        anchor = state.anchor
        if anchor == order.set_anchor:
            anchor = order.prev_anchor
        return replace(state, lots=lots, orders=orders, anchor=anchor)
    ids = order.release_client_order_ids
    lots = tuple(replace(lot, status=OPEN) if lot.client_order_id in ids else lot for lot in state.lots)
    return _undo_flatten(replace(state, lots=lots, orders=orders), order)
