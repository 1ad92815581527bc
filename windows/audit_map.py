"""Which audit events a journal record causes: a pure map from one applied record and the state change it
made to the events the gate reads.

``ExecutorState.apply`` returns them; the executor writes them when it commits a record live (a replay at
start-up drops them: they were written when the record first happened). Two effects need the risk engine,
so the map names them and the writer carries them out: ``OrderOutcome`` (an order outcome for the
execution-health tracker, fed before the order's own event) and ``RiskMarked`` (an event completed with the
risk engine's marks of that moment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.events import AuditCode, AuditEvent, Severity
from core.oms.order_fsm import OrderRecord, OrderState
from shared_schema.models import ResultStatus
from windows.journal_records import (
    IntentRecord,
    JournalRecord,
    LostRecord,
    ResultRecord,
    SentRecord,
    UpdateRecord,
)


@dataclass(frozen=True)
class OrderOutcome:
    """An order filled, was rejected, or was cancelled after fills: one sample for the health tracker."""

    at: datetime
    symbol: str
    rejected: bool
    slippage_bps: Decimal | None


@dataclass(frozen=True)
class RiskMarked:
    """``event`` plus the risk engine's marks when it is written (risk state, equity, drawdown, leverage)."""

    event: AuditEvent


AuditEffect = AuditEvent | OrderOutcome | RiskMarked


@dataclass(frozen=True)
class StateChange:
    """What applying one record changed, as far as the audit needs it."""

    before: OrderRecord | None = None  # the order the record names, before and after
    after: OrderRecord | None = None
    result_code: str | None = None  # the code of the signal whose result the record set
    refused: tuple[str, ...] = ()  # transitions the order state machine refused (left unapplied)


ORDER_EVENTS = {
    OrderState.FILLED: AuditCode.ORDER_FILLED,
    OrderState.PARTIAL: AuditCode.ORDER_PARTIAL,
    OrderState.CANCELLED: AuditCode.ORDER_CANCELLED,
    OrderState.REJECTED: AuditCode.ORDER_REJECTED,
    OrderState.ACK: AuditCode.ORDER_ACK,
}


def audit_events(record: JournalRecord, change: StateChange) -> tuple[AuditEffect, ...]:
    """The audit effects of ``record``, in the order they are written; refused transitions come last."""
    effects = list(_effects(record, change))
    at = getattr(record, "at", None)
    if at is not None:
        effects += [AuditEvent(at, AuditCode.OMS_ILLEGAL_TRANSITION, Severity.WARN, message)
                    for message in change.refused]
    return tuple(effects)


def _effects(record: JournalRecord, change: StateChange) -> list[AuditEffect]:
    if isinstance(record, IntentRecord):
        return [AuditEvent(record.at, AuditCode.SIGNAL_ACCEPTED, Severity.INFO, "signal passed the pipeline",
                           record.symbol, {"signal_id": record.signal_id, "client_order_id": record.client_order_id,
                                           "side": record.side})]
    if isinstance(record, ResultRecord):
        if record.status not in (ResultStatus.REJECTED, ResultStatus.EXPIRED):
            return []
        return [AuditEvent(record.at, AuditCode.SIGNAL_REJECTED, Severity.INFO, record.message or "",
                           change.result_code, {"signal_id": record.signal_id,
                                                "reason": record.reason.value if record.reason else record.reason,
                                                "detail": record.detail})]
    order = change.after
    if isinstance(record, SentRecord) and order is not None:
        code = AuditCode.ORDER_ERROR if record.status == "UNKNOWN" else AuditCode.ORDER_SUBMITTED
        sent: list[AuditEffect] = [AuditEvent(
            record.at, code, Severity.INFO, record.message or "order sent", order.symbol,
            {"client_order_id": record.client_order_id, "side": order.side, "shares": order.shares})]
        if record.status == "REJECTED":
            sent.append(AuditEvent(record.at, AuditCode.ORDER_REJECTED, Severity.INFO, record.message or "",
                                   order.symbol, {"client_order_id": record.client_order_id}))
        return sent
    if isinstance(record, UpdateRecord | LostRecord) and order is not None and change.before is not None:
        return _order_change(record.at, change.before, order)
    return []


def _order_change(at: datetime, before: OrderRecord, order: OrderRecord) -> list[AuditEffect]:
    after = order.state
    if after is before.state:
        return []
    effects: list[AuditEffect] = []
    if after in (OrderState.FILLED, OrderState.REJECTED) or (after is OrderState.CANCELLED and order.filled_shares):
        effects.append(OrderOutcome(at, order.symbol, after is OrderState.REJECTED, slippage_bps(order)))
    code = ORDER_EVENTS.get(after)
    if code is not None:
        effects.append(RiskMarked(AuditEvent(
            at, code, Severity.INFO, order.message or after.value, order.symbol,
            {"client_order_id": order.client_order_id, "side": order.side, "filled": order.filled_shares,
             "opens": order.side == "BUY"})))
    return effects


def slippage_bps(order: OrderRecord) -> Decimal | None:
    """How much worse than its limit an order filled, in basis points (0 when at or better than the limit)."""
    if not order.filled_shares:
        return None
    limit = Decimal(order.price)
    avg = Decimal(order.filled_value_fen) / 100 / order.filled_shares
    worse = (avg - limit) if order.side == "BUY" else (limit - avg)
    return max(Decimal(0), worse / limit * 10000)
