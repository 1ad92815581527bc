"""Protective orders: stop-loss first, take-profit second, both reduce-only and one-cancels-other.

``Bracket`` / ``step_bracket`` / ``tick_bracket`` are the pure state machine an execution loop drives:
events in (START, acked, failed, timeout, filled, closed), actions out (place, cancel, look up, resize).

The stop-loss is the one that matters: if it cannot be attached the position is unprotected, so the
account goes REDUCE_ONLY (or the symbol is frozen, by policy) with EXEC_PROTECTIVE_ORDER_MISSING. A
take-profit that fails is only audited (EXEC_TP_ATTACH_FAILED): the position is still protected.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.manual import ManualResult, force_reduce, freeze_symbol
from core.risk.snapshot import CAUSE_PROTECTIVE, RiskSnapshot


class ProtectiveKind(str, Enum):
    SL = "SL"
    TP = "TP"


class MissingSlPolicy(str, Enum):
    REDUCE_ONLY = "REDUCE_ONLY"
    FREEZE_SYMBOL = "FREEZE_SYMBOL"


@dataclass(frozen=True)
class ProtectiveOrder:
    kind: ProtectiveKind
    symbol: str
    qty: Decimal  # positive; closes the position
    trigger_price: Decimal
    close_side: str  # SELL closes a long, BUY closes a short
    oco_group: str
    reduce_only: bool = True


def plan_protective_orders(
    symbol: str, position_qty: Decimal, sl_price: Decimal | None, tp_price: Decimal | None, oco_group: str
) -> tuple[ProtectiveOrder, ...]:
    """The orders to place, in placing order (SL before TP); empty for a flat position."""
    if position_qty == 0:
        return ()
    side = "SELL" if position_qty > 0 else "BUY"
    qty = abs(position_qty)
    long = position_qty > 0
    orders = []
    if (
        sl_price is not None
        and tp_price is not None
        and (sl_price >= tp_price if long else sl_price <= tp_price)
    ):
        raise ValueError("stop-loss must be on the losing side of the take-profit")
    if sl_price is not None:
        orders.append(ProtectiveOrder(ProtectiveKind.SL, symbol, qty, sl_price, side, oco_group))
    if tp_price is not None:
        orders.append(ProtectiveOrder(ProtectiveKind.TP, symbol, qty, tp_price, side, oco_group))
    return tuple(orders)


def oco_to_cancel(orders: tuple[ProtectiveOrder, ...], filled: ProtectiveKind) -> tuple[ProtectiveOrder, ...]:
    """When one side fills, the other side(s) of the same group must be cancelled."""
    return tuple(o for o in orders if o.kind is not filled)


def on_attach_result(
    snapshot: RiskSnapshot,
    symbol: str,
    kind: ProtectiveKind,
    ok: bool,
    now: datetime,
    cfg: RiskConfig,
    policy: MissingSlPolicy = MissingSlPolicy.REDUCE_ONLY,
) -> ManualResult:
    """Fold the venue's answer to a protective order into the risk snapshot and audit."""
    if ok:
        return ManualResult(snapshot)
    if kind is ProtectiveKind.TP:
        ev = AuditEvent(
            now, AuditCode.EXEC_TP_ATTACH_FAILED, Severity.WARN, "take-profit not attached", symbol
        )
        return ManualResult(snapshot, (ev,))
    ev = AuditEvent(
        now,
        AuditCode.EXEC_PROTECTIVE_ORDER_MISSING,
        Severity.CRITICAL,
        f"stop-loss not attached; policy {policy.value}",
        symbol,
        {"policy": policy.value},
    )
    if policy is MissingSlPolicy.FREEZE_SYMBOL:
        res = freeze_symbol(snapshot, symbol, now, cfg, "stop-loss missing")
    else:
        res = force_reduce(snapshot, now, cfg, "stop-loss missing", reason=CAUSE_PROTECTIVE)
    return ManualResult(res.snapshot, (ev, *res.events))


# --- The bracket: one position's stop-loss and take-profit as a small state machine ----------------------
#
# The execution loop feeds it what the venue said (acked, failed, filled, the position closed) and the
# clock (``tick_bracket`` turns an unconfirmed order into a timeout); it answers with actions (place,
# cancel, look up, resize) and audit events. It never talks to a venue and never reads a clock.


class ProtectiveConfig(BaseModel):
    """When protective orders are on, how long a stop may stay unconfirmed, and what a missing stop does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    attach_timeout_ms: int = Field(default=3000, gt=0)
    missing_sl_policy: MissingSlPolicy = MissingSlPolicy.REDUCE_ONLY

    @property
    def attach_timeout(self) -> timedelta:
        return timedelta(milliseconds=self.attach_timeout_ms)


class BracketState(str, Enum):
    IDLE = "IDLE"  # planned, nothing sent
    SL_PENDING = "SL_PENDING"  # stop sent, not yet confirmed
    TP_PENDING = "TP_PENDING"  # stop live, take-profit sent
    ARMED = "ARMED"  # stop live, and the take-profit too when one was planned
    SL_ONLY = "SL_ONLY"  # stop live, take-profit failed (audited, still protected)
    UNPROTECTED = "UNPROTECTED"  # stop failed or unconfirmed in time: new exposure refused
    CLOSED = "CLOSED"  # one side filled (the other cancelled) or the position closed otherwise


class BracketTrigger(str, Enum):
    START = "START"
    SL_ACK = "SL_ACK"
    SL_FAILED = "SL_FAILED"
    SL_TIMEOUT = "SL_TIMEOUT"
    TP_ACK = "TP_ACK"
    TP_SKIPPED = "TP_SKIPPED"  # internal: no take-profit planned
    TP_FAILED = "TP_FAILED"
    TP_TIMEOUT = "TP_TIMEOUT"
    SL_FILLED = "SL_FILLED"
    TP_FILLED = "TP_FILLED"
    PARTIAL_FILL = "PARTIAL_FILL"  # one side filled in part: the other is resized
    POSITION_CLOSED = "POSITION_CLOSED"  # closed by the strategy or a forced reduction: cancel both
    RETRY_SL = "RETRY_SL"  # the loop tries the stop again with a new client id


B = BracketState
G = BracketTrigger

BRACKET_TRANSITIONS: dict[tuple[BracketState, BracketTrigger], BracketState] = {
    (B.IDLE, G.START): B.SL_PENDING,
    (B.SL_PENDING, G.SL_ACK): B.TP_PENDING,
    (B.SL_PENDING, G.SL_FAILED): B.UNPROTECTED,
    # Unconfirmed within attach_timeout_ms: treated as missing (exposure refused) AND looked up by client
    # id, because a timeout is an unknown outcome and the stop may be live after all.
    (B.SL_PENDING, G.SL_TIMEOUT): B.UNPROTECTED,
    # A fast market can trigger the stop before its acknowledgement arrives.
    (B.SL_PENDING, G.SL_FILLED): B.CLOSED,
    (B.SL_PENDING, G.PARTIAL_FILL): B.SL_PENDING,
    (B.SL_PENDING, G.POSITION_CLOSED): B.CLOSED,
    (B.TP_PENDING, G.TP_ACK): B.ARMED,
    (B.TP_PENDING, G.TP_SKIPPED): B.ARMED,
    (B.TP_PENDING, G.TP_FAILED): B.SL_ONLY,
    (B.TP_PENDING, G.TP_TIMEOUT): B.SL_ONLY,
    (B.TP_PENDING, G.SL_FILLED): B.CLOSED,
    (B.TP_PENDING, G.TP_FILLED): B.CLOSED,  # a marketable take-profit fills before its ack
    (B.TP_PENDING, G.PARTIAL_FILL): B.TP_PENDING,
    (B.TP_PENDING, G.POSITION_CLOSED): B.CLOSED,
    (B.ARMED, G.SL_FILLED): B.CLOSED,
    (B.ARMED, G.TP_FILLED): B.CLOSED,
    (B.ARMED, G.PARTIAL_FILL): B.ARMED,
    (B.ARMED, G.POSITION_CLOSED): B.CLOSED,
    (B.SL_ONLY, G.SL_FILLED): B.CLOSED,
    # A take-profit that timed out was only unconfirmed: it can still fill.
    (B.SL_ONLY, G.TP_FILLED): B.CLOSED,
    (B.SL_ONLY, G.TP_ACK): B.SL_ONLY,
    (B.SL_ONLY, G.PARTIAL_FILL): B.SL_ONLY,
    (B.SL_ONLY, G.POSITION_CLOSED): B.CLOSED,
    # The lookup after a timeout found the stop live: protected again; the risk latch stays until Resume.
    (B.UNPROTECTED, G.SL_ACK): B.TP_PENDING,
    (B.UNPROTECTED, G.SL_FAILED): B.UNPROTECTED,  # the lookup confirms it is not there
    (B.UNPROTECTED, G.SL_FILLED): B.CLOSED,
    (B.UNPROTECTED, G.PARTIAL_FILL): B.UNPROTECTED,
    (B.UNPROTECTED, G.RETRY_SL): B.SL_PENDING,
    (B.UNPROTECTED, G.POSITION_CLOSED): B.CLOSED,
}

# Repeats the venue sends (an ack seen twice, the cancelled side's late ack, a second close report): already
# reflected in the state, so they change nothing and are not refusals. Anything else off the table is.
BRACKET_REPEATS: frozenset[tuple[BracketState, BracketTrigger]] = frozenset({
    (B.TP_PENDING, G.SL_ACK),
    (B.ARMED, G.SL_ACK),
    (B.ARMED, G.TP_ACK),
    (B.SL_ONLY, G.SL_ACK),
    (B.SL_ONLY, G.TP_FAILED),  # the venue's reject of a take-profit we had already given up on
    (B.UNPROTECTED, G.SL_TIMEOUT),
    (B.CLOSED, G.SL_ACK),
    (B.CLOSED, G.TP_ACK),
    (B.CLOSED, G.POSITION_CLOSED),
})

del B, G


class BracketActionKind(str, Enum):
    PLACE = "PLACE"
    CANCEL = "CANCEL"
    LOOKUP = "LOOKUP"  # fetch by client id: the outcome of a send is unknown
    RESIZE = "RESIZE"  # amend (or cancel and re-place) to the new quantity


@dataclass(frozen=True)
class BracketAction:
    kind: BracketActionKind
    order: ProtectiveOrder
    client_order_id: str
    reason: str = ""


@dataclass(frozen=True)
class BracketEvent:
    """What the venue (or the loop) reported. ``client_order_id`` is the new stop's id for RETRY_SL;
    ``kind`` and ``remaining_qty`` (the position left, unsigned) describe a PARTIAL_FILL."""

    trigger: BracketTrigger
    client_order_id: str = ""
    kind: ProtectiveKind | None = None
    remaining_qty: Decimal | None = None


@dataclass(frozen=True)
class Bracket:
    """One position's protective pair and where it stands."""

    sl: ProtectiveOrder
    tp: ProtectiveOrder | None
    sl_client_id: str
    tp_client_id: str | None
    state: BracketState = BracketState.IDLE
    sl_sent_at: datetime | None = None
    tp_sent_at: datetime | None = None

    @property
    def symbol(self) -> str:
        return self.sl.symbol

    @property
    def is_protected(self) -> bool:
        """A confirmed stop is live (ARMED, SL_ONLY, or waiting on the take-profit)."""
        return self.state in (BracketState.TP_PENDING, BracketState.ARMED, BracketState.SL_ONLY)


class IllegalBracketTransition(ValueError):
    def __init__(self, current: BracketState, trigger: BracketTrigger) -> None:
        super().__init__(f"illegal bracket transition {current.value} --{trigger.value}-->")
        self.current = current
        self.trigger = trigger


@dataclass(frozen=True)
class BracketStep:
    """The bracket after one event, the orders to act on, the audit events, and which attach failed (fold
    that into the risk snapshot with ``fold_attach_failure``). ``refused`` is set, and nothing changed, when
    the event has no transition from the current state: audit it, never apply it."""

    bracket: Bracket
    actions: tuple[BracketAction, ...] = ()
    events: tuple[AuditEvent, ...] = ()
    attach_failed: ProtectiveKind | None = None
    refused: IllegalBracketTransition | None = None


def open_bracket(
    symbol: str,
    position_qty: Decimal,
    sl_price: Decimal,
    tp_price: Decimal | None,
    sl_client_id: str,
    tp_client_id: str | None,
    oco_group: str,
) -> Bracket:
    """A bracket for a position (signed qty): stop required, take-profit optional (IDLE: call START)."""
    if position_qty == 0:
        raise ValueError("a flat position needs no protective orders")
    if not sl_client_id or (tp_price is not None and not tp_client_id):
        raise ValueError("every protective order needs a client order id")
    orders = plan_protective_orders(symbol, position_qty, sl_price, tp_price, oco_group)
    tp = orders[1] if len(orders) > 1 else None
    return Bracket(orders[0], tp, sl_client_id, tp_client_id if tp is not None else None)


def _other(b: Bracket, kind: ProtectiveKind) -> tuple[ProtectiveOrder, str] | None:
    """The other side of the pair, if it was ever sent (only a sent order can need cancelling)."""
    if kind is ProtectiveKind.SL:
        sent = b.tp is not None and b.tp_client_id and b.tp_sent_at is not None
        return (b.tp, b.tp_client_id) if sent and b.tp is not None and b.tp_client_id else None
    return (b.sl, b.sl_client_id) if b.sl_sent_at is not None else None


def step_bracket(bracket: Bracket, event: BracketEvent, now: datetime) -> BracketStep:
    """Apply one event through ``BRACKET_TRANSITIONS`` and say what to do next."""
    t = event.trigger
    if (bracket.state, t) in BRACKET_REPEATS:
        return BracketStep(bracket)
    target = BRACKET_TRANSITIONS.get((bracket.state, t))
    if target is None:
        return BracketStep(bracket, refused=IllegalBracketTransition(bracket.state, t))
    b = replace(bracket, state=target)
    actions: list[BracketAction] = []
    events: list[AuditEvent] = []
    failed: ProtectiveKind | None = None
    place = BracketActionKind.PLACE
    if t is BracketTrigger.START or t is BracketTrigger.RETRY_SL:
        if t is BracketTrigger.RETRY_SL:
            if not event.client_order_id or event.client_order_id == bracket.sl_client_id:
                return BracketStep(bracket, refused=IllegalBracketTransition(bracket.state, t))
            b = replace(b, sl_client_id=event.client_order_id)
        b = replace(b, sl_sent_at=now)
        actions.append(BracketAction(place, b.sl, b.sl_client_id, "stop-loss first"))
    elif t is BracketTrigger.SL_ACK:
        events.append(_event(now, AuditCode.EXEC_PROTECTIVE_ATTACHED, Severity.INFO, "stop-loss confirmed", b,
                             ProtectiveKind.SL))
        tp, tp_id = b.tp, b.tp_client_id
        if tp is not None and tp_id:
            b = replace(b, tp_sent_at=now)
            actions.append(BracketAction(place, tp, tp_id, "take-profit after the stop"))
        else:
            b = replace(b, state=BRACKET_TRANSITIONS[(b.state, BracketTrigger.TP_SKIPPED)])
    elif t in (BracketTrigger.SL_FAILED, BracketTrigger.SL_TIMEOUT):
        if bracket.state is BracketState.SL_PENDING:
            failed = ProtectiveKind.SL
        if t is BracketTrigger.SL_TIMEOUT:
            actions.append(BracketAction(BracketActionKind.LOOKUP, b.sl, b.sl_client_id, "stop unconfirmed"))
            events.append(_event(now, AuditCode.EXEC_PROTECTIVE_TIMEOUT, Severity.ERROR,
                                 "stop-loss not confirmed within attach timeout", b, ProtectiveKind.SL))
    elif t is BracketTrigger.TP_ACK:
        events.append(_event(now, AuditCode.EXEC_PROTECTIVE_ATTACHED, Severity.INFO, "take-profit confirmed", b,
                             ProtectiveKind.TP))
    elif t in (BracketTrigger.TP_FAILED, BracketTrigger.TP_TIMEOUT):
        failed = ProtectiveKind.TP
        if t is BracketTrigger.TP_TIMEOUT and b.tp is not None and b.tp_client_id:
            # Not confirmed: cancel by id so an orphan take-profit cannot open a position later.
            actions.append(BracketAction(BracketActionKind.CANCEL, b.tp, b.tp_client_id, "take-profit timed out"))
    elif t in (BracketTrigger.SL_FILLED, BracketTrigger.TP_FILLED):
        filled = ProtectiveKind.SL if t is BracketTrigger.SL_FILLED else ProtectiveKind.TP
        other = _other(b, filled)
        if other is not None:
            order, coid = other
            actions.append(BracketAction(BracketActionKind.CANCEL, order, coid, f"OCO: {filled.value} filled"))
            events.append(_event(now, AuditCode.EXEC_OCO_CANCEL, Severity.INFO,
                                 f"{filled.value} filled: cancel {order.kind.value}", b, order.kind,
                                 client_order_id=coid))
    elif t is BracketTrigger.PARTIAL_FILL:
        if event.kind is None or event.remaining_qty is None or event.remaining_qty <= 0:
            return BracketStep(bracket, refused=IllegalBracketTransition(bracket.state, t))
        b = _resized(b, event.remaining_qty)
        other = _other(b, event.kind)
        if other is not None:
            order, coid = other
            actions.append(BracketAction(BracketActionKind.RESIZE, order, coid, "other side partly filled"))
    elif t is BracketTrigger.POSITION_CLOSED:
        live: list[tuple[ProtectiveOrder | None, str | None, datetime | None]] = [
            (b.sl, b.sl_client_id, b.sl_sent_at), (b.tp, b.tp_client_id, b.tp_sent_at)
        ]
        for live_order, live_id, sent in live:
            if live_order is not None and live_id and sent is not None:
                actions.append(BracketAction(BracketActionKind.CANCEL, live_order, live_id, "position closed"))
    return BracketStep(b, tuple(actions), tuple(events), failed)


def _resized(b: Bracket, qty: Decimal) -> Bracket:
    return replace(b, sl=replace(b.sl, qty=qty), tp=None if b.tp is None else replace(b.tp, qty=qty))


def tick_bracket(bracket: Bracket, now: datetime, cfg: ProtectiveConfig) -> BracketStep:
    """Turn an order unconfirmed for ``attach_timeout_ms`` into its timeout; nothing otherwise."""
    limit = cfg.attach_timeout
    if bracket.state is BracketState.SL_PENDING and bracket.sl_sent_at is not None:
        if now - bracket.sl_sent_at >= limit:
            return step_bracket(bracket, BracketEvent(BracketTrigger.SL_TIMEOUT), now)
    if bracket.state is BracketState.TP_PENDING and bracket.tp_sent_at is not None:
        if now - bracket.tp_sent_at >= limit:
            return step_bracket(bracket, BracketEvent(BracketTrigger.TP_TIMEOUT), now)
    return BracketStep(bracket)


def fold_attach_failure(
    step: BracketStep, snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, pcfg: ProtectiveConfig
) -> ManualResult:
    """A failed stop refuses new exposure (REDUCE_ONLY or a frozen symbol, EXEC_PROTECTIVE_ORDER_MISSING); a
    failed take-profit is only audited (EXEC_TP_ATTACH_FAILED). Unchanged when nothing failed."""
    if step.attach_failed is None:
        return ManualResult(snapshot)
    return on_attach_result(
        snapshot, step.bracket.symbol, step.attach_failed, False, now, cfg, pcfg.missing_sl_policy
    )


def _event(
    now: datetime,
    code: AuditCode,
    severity: Severity,
    cause: str,
    b: Bracket,
    kind: ProtectiveKind,
    client_order_id: str | None = None,
) -> AuditEvent:
    coid = client_order_id or (b.sl_client_id if kind is ProtectiveKind.SL else b.tp_client_id or "")
    return AuditEvent(
        now, code, severity, cause, b.symbol,
        {"kind": kind.value, "client_order_id": coid, "state": b.state.value, "oco_group": b.sl.oco_group},
    )
