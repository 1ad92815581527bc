"""``hedge simulate``: the decision code run over a list of cumulative fills, every hedge accepted and filled.

Pure: it drives ``crypto.hedge.book`` exactly as the live runner does, with a venue that accepts and fills
every hedge at once, so the printed decisions are the strategy's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.events import AuditCode
from crypto.hedge.book import ExecMode, HedgeBook, MarginReport, Step, on_hedge_order, on_margin_report
from crypto.hedge.rules import HedgeFilters, opposite
from crypto.venue.types import OrderStatus, Side, VenueOrder


@dataclass(frozen=True)
class SimRow:
    fill: Decimal  # cumulative filled of the margin order
    decision: str  # "hedge", "defer" or "none"
    reason: str | None  # the defer reason
    hedge_qty: Decimal | None
    hedged: Decimal  # running total after this report
    notional: Decimal | None  # of the rounded quantity, when deferred


@dataclass(frozen=True)
class SimResult:
    rows: tuple[SimRow, ...]
    hedged: Decimal
    residual: Decimal
    residual_bound: Decimal


def _accept_all(step: Step, mark: Decimal, ts_ms: int) -> Step:
    """Answer every send as filled, folding any follow-up steps in."""
    book, events = step.book, list(step.events)
    pending = list(step.sends)
    while pending:
        send = pending.pop(0)
        answer = VenueOrder(f"sim-{send.client_order_id}", send.client_order_id, send.symbol, send.side,
                            "market", send.qty, send.qty, None, mark, "closed")
        nxt = on_hedge_order(book, answer, mark, ts_ms)
        book = nxt.book
        events.extend(nxt.events)
        pending.extend(nxt.sends)
    return Step(book, step.sends, tuple(events))


def simulate(fills: list[Decimal], filters: HedgeFilters, mark: Decimal, margin_side: Side = "buy",
             exec_mode: ExecMode = "MT", complete: bool = True, symbol: str = "BTC/USDT:USDT") -> SimResult:
    """One row per cumulative fill; the last report closes the margin order when ``complete``."""
    book = HedgeBook("sim", symbol, "open", exec_mode, opposite(margin_side), filters)
    rows: list[SimRow] = []
    for i, fill in enumerate(fills):
        status: OrderStatus = "closed" if complete and i == len(fills) - 1 else "open"
        step = _accept_all(on_margin_report(book, MarginReport("margin-1", fill, status), mark, i), mark, i)
        book = step.book
        sent = [e for e in step.events if e.code == AuditCode.HEDGE_SENT]
        deferred = [e for e in step.events if e.code == AuditCode.HEDGE_DEFERRED]
        if sent:
            qty = sum((Decimal(e.data["qty"]) for e in sent), Decimal(0))
            rows.append(SimRow(fill, "hedge", None, qty, book.hedged, None))
        elif deferred:
            d = deferred[-1].data
            notional = None if d.get("notional") is None else Decimal(d["notional"])
            rows.append(SimRow(fill, "defer", str(d["reason"]), None, book.hedged, notional))
        else:
            rows.append(SimRow(fill, "none", None, None, book.hedged, None))
    return SimResult(tuple(rows), book.hedged, book.residual, filters.residual_bound(mark))
