"""The engine's record of one order, from intent to result, and how a venue report folds into it.

State changes go through the core order state machine (``core.oms.order_fsm``: the table, ``path_to`` for
reports that skipped a step); quantities are base units (Decimal), fills cumulative and never shrinking.
Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from core.oms.order_fsm import IllegalTransition, OrderState, path_to, transition
from crypto.venue.types import OrderRequest, OrderType, Side, VenueOrder

ZERO = Decimal(0)

Purpose = Literal["target", "close", "sl", "tp", "probe"]


@dataclass(frozen=True)
class LiveOrder:
    """One order the engine made. ``intent_id`` names what it is for: at most one order of an intent is
    ever non-terminal (a re-post waits for the previous one to end)."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    qty: Decimal
    type: OrderType
    purpose: Purpose
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    post_only: bool = False
    state: OrderState = OrderState.NEW
    filled: Decimal = ZERO
    avg_price: Decimal | None = None
    fee: Decimal = ZERO
    venue_order_id: str = ""
    created_ms: int = 0
    updated_ms: int = 0
    cancel_requested: bool = False
    message: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def signed_filled(self) -> Decimal:
        return self.filled if self.side == "buy" else -self.filled

    def request(self, margin_mode: Literal["isolated", "cross"] | None) -> OrderRequest:
        """The venue request; the same client id on every retry."""
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            type=self.type,
            client_order_id=self.client_order_id,
            price=self.price,
            trigger_price=self.trigger_price,
            reduce_only=self.reduce_only,
            post_only=self.post_only,
            margin_mode=margin_mode,
        )


def target_state(report: VenueOrder) -> OrderState:
    """The venue's status in the core vocabulary (one constant map, plus the fill amount)."""
    if report.status == "open":
        return OrderState.PARTIAL if report.filled > 0 else OrderState.ACK
    if report.status == "closed":
        return OrderState.FILLED
    if report.status == "canceled":
        return OrderState.CANCELLED
    # "expired" is how a post-only order that would take comes back: refused, never live.
    return OrderState.REJECTED if report.filled == 0 else OrderState.CANCELLED


@dataclass(frozen=True)
class Folded:
    order: LiveOrder
    fill_delta: Decimal  # base units newly filled by this report (>= 0)
    changed: bool
    refused: IllegalTransition | None = None


def fold_report(order: LiveOrder, report: VenueOrder, now_ms: int) -> Folded:
    """Fold one venue report into the order, idempotently (a repeat changes nothing; a stale report cannot
    shrink the fills). An illegal status change is refused and returned for the audit, fills still kept:
    money that moved at the venue is a fact whatever the status says."""
    filled = max(order.filled, report.filled)
    delta = filled - order.filled
    target = target_state(report)
    if target is OrderState.PARTIAL and filled >= order.qty:
        target = OrderState.FILLED
    refused: IllegalTransition | None = None
    state = order.state
    if not (target is OrderState.PARTIAL and state is OrderState.PARTIAL):
        try:
            for step in path_to(state, target):
                state = transition(state, step)
        except IllegalTransition as exc:
            refused = exc
    updated = replace(
        order,
        state=state,
        filled=filled,
        avg_price=report.avg_price if report.avg_price is not None else order.avg_price,
        fee=max(order.fee, report.fee),
        venue_order_id=report.venue_order_id or order.venue_order_id,
        updated_ms=now_ms,
    )
    changed = updated != replace(order, updated_ms=now_ms)
    return Folded(updated, delta, changed, refused)


def mark_sent(order: LiveOrder, venue_order_id: str, now_ms: int) -> LiveOrder:
    """The venue accepted the send: NEW -> SENT (unchanged past NEW: a report already moved it on)."""
    if order.state is not OrderState.NEW:
        return order
    return replace(order, state=transition(order.state, OrderState.SENT),
                   venue_order_id=venue_order_id or order.venue_order_id, updated_ms=now_ms)


def mark_rejected(order: LiveOrder, message: str, now_ms: int) -> LiveOrder:
    """The venue refused the order, or it was declared lost (never reached the venue)."""
    state = order.state
    if state is OrderState.NEW:
        state = transition(state, OrderState.SENT)
    if not state.is_terminal:
        state = transition(state, OrderState.REJECTED)
    return replace(order, state=state, message=message, updated_ms=now_ms)


def mark_cancelled(order: LiveOrder, now_ms: int) -> LiveOrder:
    """A cancel the venue confirmed for an order it no longer knows as live (no report to fold)."""
    state = order.state
    if state is OrderState.NEW:
        state = transition(state, OrderState.SENT)
    if not state.is_terminal:
        state = transition(state, OrderState.CANCELLED)
    return replace(order, state=state, updated_ms=now_ms)
