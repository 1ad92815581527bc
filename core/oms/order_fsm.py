"""The order state machine, as a table.

Allowed: NEW->SENT; SENT->ACK|REJECTED|CANCELLED; ACK->PARTIAL|FILLED|CANCELLED|REJECTED;
PARTIAL->PARTIAL|FILLED|CANCELLED|REJECTED. FILLED, CANCELLED and REJECTED are terminal. Anything else is
refused with ``IllegalTransition`` and left unapplied, so the caller can audit it.

``OrderRecord`` is the one record of an order from intent to result: exact money (a ``Decimal`` limit price,
integer fen for fill value and fees) and a state that only ``confirm_sent``, ``assume_sent`` and
``apply_update`` change, each through ``transition``.

Broker events arrive duplicated and out of order. ``advance`` makes the common real-market shapes legal
without loosening the table: a fill report that overtakes its acknowledgement is applied as ACK then
PARTIAL/FILLED, and a repeat of the state we are already in is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum

AVG_PRICE_PLACES = Decimal("0.000001")
"""An average fill price is shown to 6 decimals (it is a quotient, not a tick price)."""


class OrderState(str, Enum):
    NEW = "NEW"
    SENT = "SENT"
    ACK = "ACK"
    PARTIAL = "PARTIAL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED})

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset({OrderState.SENT}),
    # A cancel can be confirmed before the venue ever acknowledged the order (cancelled while unreported).
    OrderState.SENT: frozenset({OrderState.ACK, OrderState.REJECTED, OrderState.CANCELLED}),
    # REJECTED after ACK happens: QMT reports 57 (junk) for orders the exchange refuses after reporting.
    OrderState.ACK: frozenset({OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED}),
    # PARTIAL->PARTIAL is every further partial fill; PARTIAL->CANCELLED is QMT's 53 (part-cancelled).
    OrderState.PARTIAL: frozenset(
        {OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED}
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REJECTED: frozenset(),
}


class IllegalTransition(ValueError):
    def __init__(self, current: OrderState, target: OrderState) -> None:
        super().__init__(f"illegal order transition {current.value} -> {target.value}")
        self.current = current
        self.target = target


def is_allowed(current: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[current]


def transition(current: OrderState, target: OrderState) -> OrderState:
    """Apply one transition from the table or raise ``IllegalTransition``."""
    if not is_allowed(current, target):
        raise IllegalTransition(current, target)
    return target


@dataclass(frozen=True)
class OrderRecord:
    """What the OMS knows about one order, from intent to result; its state changes only by ``transition``
    (through ``confirm_sent``, ``assume_sent`` and ``apply_update``)."""

    client_order_id: str
    symbol: str
    side: str
    shares: int
    price: Decimal  # the limit price, exact (yuan)
    state: OrderState = OrderState.NEW
    filled_shares: int = 0
    filled_value_fen: int = 0
    fees_fen: int = 0
    broker_order_id: str = ""
    message: str = ""

    @property
    def avg_price(self) -> Decimal:
        """Average fill price in yuan, to 6 decimals (half even); 0 before any fill. For display: money is
        booked from ``filled_value_fen`` and ``fees_fen``, which are exact."""
        if not self.filled_shares:
            return Decimal(0)
        return (Decimal(self.filled_value_fen) / 100 / self.filled_shares).quantize(AVG_PRICE_PLACES)


def confirm_sent(order: OrderRecord, broker_order_id: str = "") -> OrderRecord:
    """The broker accepted the send: NEW -> SENT (``IllegalTransition`` from any other state)."""
    return replace(order, state=transition(order.state, OrderState.SENT),
                   broker_order_id=broker_order_id or order.broker_order_id)


def assume_sent(order: OrderRecord) -> OrderRecord:
    """An order whose send was never confirmed now has an outcome from the venue (a report, or lookups that
    found nothing): NEW -> SENT, so the outcome folds in as the table allows; unchanged past NEW."""
    return confirm_sent(order) if order.state is OrderState.NEW else order


@dataclass(frozen=True)
class UpdateOutcome:
    order: OrderRecord
    changed: bool
    refused: IllegalTransition | None = None


def path_to(current: OrderState, target: OrderState) -> list[OrderState]:
    """The legal steps from ``current`` to ``target`` when an event skipped intermediate ones.

    ``SENT -> FILLED`` (the fill overtook the ack) becomes ``[ACK, FILLED]``. Empty when already there
    (duplicates); raises ``IllegalTransition`` when no legal path exists (e.g. anything out of a terminal).
    """
    if current is target and target is not OrderState.PARTIAL:
        return []
    if is_allowed(current, target):
        return [target]
    for middle in (OrderState.SENT, OrderState.ACK):
        if is_allowed(current, middle) and is_allowed(middle, target):
            return [middle, target]
    if current is OrderState.NEW and target in (OrderState.PARTIAL, OrderState.FILLED):
        return [OrderState.SENT, OrderState.ACK, target]
    raise IllegalTransition(current, target)


def apply_update(
    order: OrderRecord,
    target: OrderState,
    filled_shares: int | None = None,
    filled_value_fen: int | None = None,
    fees_fen: int | None = None,
    broker_order_id: str = "",
    message: str = "",
) -> UpdateOutcome:
    """Fold one broker report into the record, idempotently.

    Fill quantities are cumulative and only ever grow (a stale report cannot shrink them). A report that
    asks for an illegal state change is refused and the record is returned unchanged with the error, so
    the caller audits it; the fill totals of such a report are still kept when they grow, because money
    that moved at the venue is a fact whatever the status field says.
    """
    new_filled = max(order.filled_shares, filled_shares or 0)
    new_value = max(order.filled_value_fen, filled_value_fen or 0)
    new_fees = max(order.fees_fen, fees_fen or 0)
    if target is OrderState.PARTIAL and new_filled >= order.shares:
        target = OrderState.FILLED
    if target is OrderState.PARTIAL and new_filled == order.filled_shares and order.state is OrderState.PARTIAL:
        steps: list[OrderState] = []
    else:
        try:
            steps = path_to(order.state, target)
        except IllegalTransition as exc:
            grown = replace(order, filled_shares=new_filled, filled_value_fen=new_value, fees_fen=new_fees)
            return UpdateOutcome(grown, grown != order, exc)
    state = order.state
    for step in steps:
        state = transition(state, step)
    updated = replace(
        order,
        state=state,
        filled_shares=new_filled,
        filled_value_fen=new_value,
        fees_fen=new_fees,
        broker_order_id=broker_order_id or order.broker_order_id,
        message=message or order.message,
    )
    return UpdateOutcome(updated, updated != order)
