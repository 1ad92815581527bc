"""Folding the executor's results into the grid: fills and rejections of the node's own orders, the backoff
after a rejection, and the sells others made of the node's lots (forced reductions, manual sells)."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from mac.grid.core import (
    SELL,
    GridState,
    apply_fill,
    apply_reject,
    commission,
    price_decimal,
    take_sold_shares,
)
from mac.grid.params import CompiledParams
from mac.node.state import NodeSettings, SymbolRuntime
from shared_schema.models import Result, ResultFile, ResultStatus
from shared_schema.types import ms_to_datetime

log = logging.getLogger("gridbridge.node")


def fold_results(rt: SymbolRuntime, results: ResultFile | None, settings: NodeSettings) -> bool:
    """Apply the results of the orders in the outbox to the grid; a final one leaves the outbox. True when
    anything changed (the state must be saved)."""
    if results is None or not rt.outbox:
        return False
    changed = False
    for client_order_id in list(rt.outbox):
        result = results.results.get(client_order_id)
        if result is None:
            continue
        order = rt.grid.order(client_order_id)
        final = result.status.is_final
        if order is not None:
            if final and result.filled_shares == 0:
                rt.grid = apply_reject(rt.grid, client_order_id)
            elif result.filled_shares > order.filled_shares or final:
                # Cash and cost are booked from the result's exact money (filled_value, fees); avg_price is a
                # float for display and only sets the lot's buy price (and the value of a result without them).
                rt.grid = apply_fill(rt.grid, client_order_id, result.filled_shares,
                                     Decimal(str(result.avg_price or 0)) if result.filled_shares else Decimal(0),
                                     final, rt.params, fees=result.fees, filled_value=result.filled_value)
            changed = True
        if final or result.filled_shares > 0:
            note_outcome(rt, client_order_id, result, settings)
        if final:
            rt.outbox.pop(client_order_id)
            rt.counters[f"result_{result.status.value}"] += 1
            if result.reason is not None:
                rt.counters[f"reason_{result.reason.value}"] += 1
            rt.events.append({"t": result.updated_at.isoformat() if result.updated_at else "", "kind": "RESULT",
                              "client_order_id": client_order_id, "status": result.status.value,
                              "reason": result.reason.value if result.reason else "", "filled": result.filled_shares})
            changed = True
    return changed


def note_outcome(rt: SymbolRuntime, client_order_id: str, result: Result, settings: NodeSettings) -> None:
    """Back off after a rejection, so the same order is not re-sent and re-rejected every minute.

    A REJECTED result holds its order key (the lots a SELL names, the layer a BUY opens) for
    ``reject_backoff_s`` of market time, doubling with each rejection in a row up to
    ``reject_backoff_max_s``, and records a REJECT_BACKOFF alert (node events, the log). A fill clears it.
    """
    payload = rt.outbox.get(client_order_id)
    if payload is None:
        return
    key = backoff_key(payload["direction"], payload.get("release_client_order_ids", ()), payload["layer_index"])
    if result.filled_shares > 0:
        rt.backoff.pop(key, None)
        return
    if result.status is not ResultStatus.REJECTED:
        return
    count = rt.backoff.get(key, [0, 0])[0] + 1
    wait_s = min(settings.reject_backoff_s * 2 ** (count - 1), settings.reject_backoff_max_s)
    now_ms = rt.last_bar_t  # the node's market clock: the bars it has stepped
    rt.backoff[key] = [count, now_ms + int(wait_s * 1000)]
    why = f"{result.reason.value if result.reason else 'REJECTED'} {result.detail or ''}".strip()
    detail = f"{why}: {key} rejected {count}x in a row; not re-sent for {wait_s:.0f} s"
    rt.events.append({"t": ms_to_datetime(now_ms).isoformat() if now_ms else "", "kind": "REJECT_BACKOFF",
                      "detail": detail, "client_order_id": client_order_id})
    rt.counters["reject_backoff"] += 1
    log.warning("%s: %s", rt.code, detail)


def fold_external_sells(rt: SymbolRuntime, results: ResultFile | None) -> bool:
    """Final SELLs this node did not send (the executor's forced reductions, manual sells) that name its
    open lots: the sold shares leave the grid and the proceeds join its cash, once per sell (the ids
    folded are saved with the state), so the grid keeps matching the vault and the venue."""
    if results is None:
        return False
    done = set(rt.external_done)
    changed = False
    for sid, result in results.results.items():
        if (sid in done or sid in rt.outbox or not result.status.is_final or result.code != rt.code
                or result.direction is None or result.direction.value != "SELL"
                or not result.release_client_order_ids or rt.grid.order(sid) is not None):
            continue
        ours = {lot.client_order_id for lot in rt.grid.lots}
        if not ours & set(result.release_client_order_ids):
            continue
        rt.grid = sold_elsewhere(rt.grid, result.release_client_order_ids, result.requested_shares,
                                 result.filled_shares, result.avg_price, rt.params,
                                 filled_value=result.filled_value, fees=result.fees)
        rt.external_done = [*rt.external_done, sid][-1000:]
        done.add(sid)
        rt.events.append({"t": result.updated_at.isoformat() if result.updated_at else "",
                          "kind": "LOT_SOLD_BY_EXECUTOR", "client_order_id": sid, "filled": result.filled_shares,
                          "detail": f"released {','.join(result.release_client_order_ids)}"})
        rt.counters["external_sells"] += 1
        changed = True
    return changed


def sold_elsewhere(
    grid: GridState, release_ids: list[str], requested: int, filled: int, avg_price: float, params: CompiledParams,
    filled_value: Decimal | None = None, fees: Decimal | None = None,
) -> GridState:
    """The grid after a sell it did not send: the shares sold are split over the named OPEN lots as the
    vault splits them (``split_shares`` over their holdings, in the order named), each keeps its unsold
    part, and the proceeds less the commission join the cash: the result's exact ``filled_value`` and
    ``fees`` when it carries them, else ``avg_price`` times the shares and the modelled commission."""
    if filled <= 0:
        return grid
    lots = take_sold_shares(grid.lots, release_ids, filled, open_only=True)
    value = price_decimal(avg_price) * filled if filled_value is None else filled_value
    fee = commission(params, value) if fees is None else fees
    return replace(grid, lots=tuple(lots), cash=grid.cash + value - fee)


def backoff_key(side: str, release_ids: Any, layer_index: int) -> str:
    """What a rejection holds back: a SELL by the lots it names, a BUY by the layer it would open."""
    if side == SELL:
        return "SELL:" + ",".join(sorted(release_ids))
    return f"BUY:{layer_index}"
