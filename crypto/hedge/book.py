"""The incremental hedge of one margin order (open mode) or one reverse open (close mode), as pure steps.

A ``HedgeBook`` is data; every event is a function ``(book, event) -> Step(book, sends, audit events)``.
The shell (``crypto.hedge.runner``) sends what a step asks for and feeds the venue's answers back.

Accounting, in base units of the UM leg:
- ``filled``: the margin order's cumulative fill (per order id, the largest report wins, so duplicate
  and reordered reports change nothing);
- ``hedged``: hedge orders the venue *accepted* (their full quantity while live or filled, only their
  filled part once expired or cancelled). It moves at acceptance, not at creation: the older design moved
  it at creation and a rejection then left the fill unhedged for good;
- ``committed``: ``hedged`` plus hedges sent and not answered yet. New hedges are sized from
  ``filled - committed``, so an in-flight hedge is never sent twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from core.events import AuditCode, AuditEvent, Severity
from core.oms.reasons import VenueReason
from crypto.hedge.rules import Defer, DeferReason, Hedge, HedgeFilters, decide_hedge
from crypto.venue.types import OrderStatus, Side, VenueOrder

ZERO = Decimal(0)

Mode = Literal["open", "close"]
ExecMode = Literal["MT", "MM"]  # MT: UM market; MM: GTX post-only limit at a price from the pricing port
ExecKind = Literal["market", "gtx"]


class HedgeState(str, Enum):
    PENDING = "PENDING"  # journaled and sent, no answer yet: committed, not hedged
    UNKNOWN = "UNKNOWN"  # restored from a legacy snapshot: a venue lookup tells what it is
    ACCEPTED = "ACCEPTED"  # live at the venue: hedged
    FILLED = "FILLED"
    REJECTED = "REJECTED"  # never lived: rolled back
    EXPIRED = "EXPIRED"  # expired or cancelled after acceptance: only the filled part stays hedged

    @property
    def is_done(self) -> bool:
        return self in (HedgeState.FILLED, HedgeState.REJECTED, HedgeState.EXPIRED)


# Legal transitions; anything else is a stale or duplicate report and changes nothing.
TRANSITIONS: dict[tuple[HedgeState, HedgeState], HedgeState] = {
    (HedgeState.PENDING, HedgeState.ACCEPTED): HedgeState.ACCEPTED,
    # A market order's first answer is often already FILLED (or EXPIRED for an IOC remainder).
    (HedgeState.PENDING, HedgeState.FILLED): HedgeState.FILLED,
    (HedgeState.PENDING, HedgeState.EXPIRED): HedgeState.EXPIRED,
    (HedgeState.PENDING, HedgeState.REJECTED): HedgeState.REJECTED,
    (HedgeState.UNKNOWN, HedgeState.ACCEPTED): HedgeState.ACCEPTED,
    (HedgeState.UNKNOWN, HedgeState.FILLED): HedgeState.FILLED,
    (HedgeState.UNKNOWN, HedgeState.EXPIRED): HedgeState.EXPIRED,
    (HedgeState.UNKNOWN, HedgeState.REJECTED): HedgeState.REJECTED,
    (HedgeState.ACCEPTED, HedgeState.ACCEPTED): HedgeState.ACCEPTED,  # a partial fill
    (HedgeState.ACCEPTED, HedgeState.FILLED): HedgeState.FILLED,
    (HedgeState.ACCEPTED, HedgeState.EXPIRED): HedgeState.EXPIRED,
}

VENUE_STATUS: dict[OrderStatus, HedgeState] = {
    "open": HedgeState.ACCEPTED,
    "closed": HedgeState.FILLED,
    "canceled": HedgeState.EXPIRED,
    "expired": HedgeState.EXPIRED,
    "rejected": HedgeState.REJECTED,
}


@dataclass(frozen=True)
class HedgeOrder:
    client_order_id: str
    side: Side
    qty: Decimal
    kind: ExecKind
    attempt: int = 0  # GTX re-prices before this one
    state: HedgeState = HedgeState.PENDING
    filled: Decimal = ZERO
    price: Decimal | None = None
    venue_order_id: str = ""
    reason: str = ""

    @property
    def hedged(self) -> Decimal:
        if self.state in (HedgeState.ACCEPTED, HedgeState.FILLED):
            return self.qty
        return self.filled

    @property
    def committed(self) -> Decimal:
        return self.qty if self.state in (HedgeState.PENDING, HedgeState.UNKNOWN) else self.hedged

    @property
    def is_unfinished(self) -> bool:
        return not self.state.is_done


@dataclass(frozen=True)
class MarginLeg:
    """One margin order as the reports told it: its largest cumulative fill, the largest cumulative fee
    taken in the base asset, and whether it is done."""

    order_id: str
    filled: Decimal = ZERO
    done: bool = False
    base_fee: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """The base the order left in the account: a margin buy pays its fee in the base asset."""
        return self.filled - self.base_fee


@dataclass(frozen=True)
class MarginReport:
    """An execution report of a margin order (cumulative, as the venue sends them). ``base_fee`` is the
    order's cumulative fee paid in the base asset (a spot/margin buy on Binance), ``order_qty`` its size
    when the report carries it (a fill above it is refused)."""

    order_id: str
    filled: Decimal
    status: OrderStatus = "open"
    base_fee: Decimal = ZERO
    order_qty: Decimal | None = None


# A quantity in a report: finite, not negative, at most this many significant digits and this many
# decimals, under this bound. Decimal's context keeps 28 digits: a 35-digit fill would be rounded silently
# in every sum after it, and no listed market has a lot finer than 1e-12 or an order of 1e15 coins.
REPORT_MAX_DIGITS = 24
REPORT_MAX_DECIMALS = 12
REPORT_MAX_QTY = Decimal("1e15")


def quantity_refusal(value: Decimal) -> str | None:
    """Why a reported quantity cannot be used (a code), or None."""
    if not value.is_finite():
        return "NOT_FINITE"
    if value < 0:
        return "NEGATIVE"
    if value >= REPORT_MAX_QTY:
        return "TOO_LARGE"
    exponent = value.as_tuple().exponent
    if len(value.as_tuple().digits) > REPORT_MAX_DIGITS or (isinstance(exponent, int)
                                                           and exponent < -REPORT_MAX_DECIMALS):
        return "TOO_MANY_DIGITS"
    return None


def report_refusal(report: MarginReport) -> str | None:
    for value in (report.filled, report.base_fee, report.order_qty):
        if value is not None and (why := quantity_refusal(value)) is not None:
            return why
    if report.order_qty is not None and report.filled > report.order_qty:
        return "FILL_ABOVE_ORDER"
    if report.base_fee > report.filled:
        return "FEE_ABOVE_FILL"
    return None


@dataclass(frozen=True)
class SendHedge:
    """A hedge order to send: the client id is already in the book (journal before send)."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    kind: ExecKind
    attempt: int
    reduce_only: bool


@dataclass(frozen=True)
class HedgeBook:
    strategy_id: str
    symbol: str  # the UM perpetual, ccxt unified (BTC/USDT:USDT)
    mode: Mode
    exec_mode: ExecMode
    hedge_side: Side
    filters: HedgeFilters
    max_reprices: int = 3
    cap: Decimal | None = None  # close mode: the UM position to close, never more
    margin: tuple[MarginLeg, ...] = ()
    orders: tuple[HedgeOrder, ...] = ()
    seq: int = 0
    legacy_committed: Decimal = ZERO  # a legacy snapshot's hedged total, until its orders are looked up
    residual_reported: Decimal | None = None
    planned: Decimal | None = None  # close mode: the margin close's planned size
    # After a retryable refusal (429, 5xx, network) no hedge is sent before ``hold_until_ms``: 1 s, doubling
    # with each refusal in a row, at most 60 s; an accepted hedge resets both.
    refusals_in_row: int = 0
    hold_until_ms: int = 0
    # Part of every client id this book makes (``{strategy_id}{run_tag}h{n}``): a new book (another state
    # folder, the same strategy id, the same venue) never reuses the ids of an earlier one. Binance refuses a
    # client id only among open orders, so a reused id is accepted again and a lookup by it finds the older
    # run's order. The shell draws it when it creates a book; the snapshot keeps it; "" for older snapshots.
    run_tag: str = ""

    @property
    def id_prefix(self) -> str:
        return f"{self.strategy_id}{self.run_tag}"

    @property
    def target(self) -> Decimal:
        """What the hedge should reach: the margin fill; in close mode capped at the UM position, and the
        whole UM position once the margin close completed in full (spot fees and rounding can leave the spot
        leg a little smaller than the UM leg; the remainder is closed rather than left naked)."""
        if self.cap is None:
            return self.net_filled
        if self.margin_done and self.planned is not None and self.filled >= self.planned:
            return self.cap
        return min(self.net_filled, self.cap)

    @property
    def filled(self) -> Decimal:
        return sum((leg.filled for leg in self.margin), ZERO)

    @property
    def net_filled(self) -> Decimal:
        """The margin fill net of fees taken in the base asset: the exposure the hedge offsets."""
        return sum((leg.net for leg in self.margin), ZERO)

    @property
    def hedged(self) -> Decimal:
        return sum((o.hedged for o in self.orders), ZERO) + self.legacy_committed

    @property
    def committed(self) -> Decimal:
        return sum((o.committed for o in self.orders), ZERO) + self.legacy_committed

    @property
    def margin_done(self) -> bool:
        return bool(self.margin) and all(leg.done for leg in self.margin)

    @property
    def residual(self) -> Decimal:
        """Filled and not hedged (open), or the UM position left to close (close, capped)."""
        return self.target - self.hedged

    @property
    def margin_order_ids(self) -> tuple[str, ...]:
        return tuple(leg.order_id for leg in self.margin)

    @property
    def hedge_order_ids(self) -> tuple[str, ...]:
        return tuple(o.client_order_id for o in self.orders)

    def order(self, client_order_id: str) -> HedgeOrder | None:
        return next((o for o in self.orders if o.client_order_id == client_order_id), None)


@dataclass(frozen=True)
class Step:
    book: HedgeBook
    sends: tuple[SendHedge, ...] = ()
    events: tuple[AuditEvent, ...] = ()


def _ts(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)


def _event(book: HedgeBook, code: AuditCode, ts_ms: int, cause: str, severity: Severity = Severity.INFO,
           **data: Any) -> AuditEvent:
    payload = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}
    payload["strategy_id"] = book.strategy_id
    payload["mode"] = book.mode
    return AuditEvent(_ts(ts_ms), code, severity, cause, book.symbol, payload)


BACKOFF_BASE_MS = 1_000
BACKOFF_MAX_MS = 60_000


def backoff_ms(refusals_in_row: int) -> int:
    return min(BACKOFF_BASE_MS * 2 ** max(0, min(refusals_in_row - 1, 16)), BACKOFF_MAX_MS)


def client_order_id(strategy_id: str, seq: int, mode: Mode = "open") -> str:
    """Deterministic and short (Binance allows 36 characters of [.A-Z:/a-z0-9_-]); open hedges ``h``, close
    legs ``c``, so a close never reuses an open's id."""
    return f"{strategy_id}{'h' if mode == 'open' else 'c'}{seq}"[-36:]


def _replace_order(book: HedgeBook, new: HedgeOrder) -> HedgeBook:
    return replace(book, orders=tuple(new if o.client_order_id == new.client_order_id else o for o in book.orders))


def evaluate(book: HedgeBook, mark: Decimal | None, ts_ms: int, kind: ExecKind | None = None,
             attempt: int = 0) -> Step:
    """Size and send what is unhedged now, or defer with the reason; report the residual once the margin
    order is done and nothing is left in flight."""
    decision = decide_hedge(book.target, book.committed, mark, book.filters, book.cap,
                            notional_exempt=book.mode == "close" and book.margin_done)
    # A hold further away than the longest back-off was stamped by a clock that jumped (a venue time from
    # 2099): it is void, or one bad reading would stop the hedge for good.
    if isinstance(decision, Hedge) and ts_ms < book.hold_until_ms <= ts_ms + BACKOFF_MAX_MS:
        decision = Defer(DeferReason.BACKOFF, decision.delta, decision.qty, None)
    if isinstance(decision, Hedge):
        send_kind: ExecKind = kind or ("market" if book.exec_mode == "MT" else "gtx")
        seq, taken = book.seq, set(book.hedge_order_ids)
        while client_order_id(book.id_prefix, seq, book.mode) in taken:  # a restored book's ids are never reused
            seq += 1
        cid = client_order_id(book.id_prefix, seq, book.mode)
        order = HedgeOrder(cid, book.hedge_side, decision.qty, send_kind, attempt)
        book = replace(book, orders=(*book.orders, order), seq=seq + 1)
        send = SendHedge(cid, book.symbol, book.hedge_side, decision.qty, send_kind, attempt,
                         reduce_only=book.mode == "close")
        event = _event(book, AuditCode.HEDGE_SENT, ts_ms, "hedge sized from the unhedged fill",
                       client_order_id=cid, side=book.hedge_side, qty=decision.qty, kind=send_kind,
                       attempt=attempt, filled=book.filled, committed=book.committed)
        return Step(book, (send,), (event,))
    events: list[AuditEvent] = []
    if isinstance(decision, Defer):
        events.append(_event(book, AuditCode.HEDGE_DEFERRED, ts_ms, decision.reason.value,
                             reason=decision.reason.value, delta=decision.delta, qty=decision.qty,
                             notional=decision.notional, filled=book.filled, hedged=book.hedged))
    # Reported once every hedge is answered (live GTX orders count as hedged; if one expires, the rollback
    # re-evaluates and a changed residual is reported again).
    unanswered = any(o.state in (HedgeState.PENDING, HedgeState.UNKNOWN) for o in book.orders)
    if book.margin_done and not unanswered and book.legacy_committed == 0:
        residual = book.residual
        if residual != book.residual_reported:
            book = replace(book, residual_reported=residual)
            severity = Severity.WARN if residual > 0 else Severity.INFO
            events.append(_event(book, AuditCode.HEDGE_RESIDUAL, ts_ms, "margin order done", severity,
                                 residual=residual, filled=book.filled, hedged=book.hedged,
                                 bound=None if mark is None else book.filters.residual_bound(mark)))
    return Step(book, (), tuple(events))


def on_margin_report(book: HedgeBook, report: MarginReport, mark: Decimal | None, ts_ms: int) -> Step:
    """One execution report of a margin order: fold its cumulative fill (and base fee) in, then evaluate.
    A report with an unusable field is refused (``HEDGE_REPORT_REFUSED``) and changes nothing."""
    why = report_refusal(report)
    if why is not None:
        return Step(book, (), (_event(book, AuditCode.HEDGE_REPORT_REFUSED, ts_ms, why, Severity.WARN, reason=why,
                                      order_id=report.order_id, filled=report.filled, base_fee=report.base_fee),))
    done = report.status != "open"
    legs = list(book.margin)
    for i, leg in enumerate(legs):
        if leg.order_id == report.order_id:
            filled, fee = max(leg.filled, report.filled), max(leg.base_fee, report.base_fee)
            if fee > filled:
                return Step(book, (), (_event(book, AuditCode.HEDGE_REPORT_REFUSED, ts_ms, "FEE_ABOVE_FILL",
                                              Severity.WARN, reason="FEE_ABOVE_FILL", order_id=report.order_id,
                                              filled=filled, base_fee=fee),))
            legs[i] = MarginLeg(leg.order_id, filled, leg.done or done, fee)
            break
    else:
        legs.append(MarginLeg(report.order_id, report.filled, done, report.base_fee))
    return evaluate(replace(book, margin=tuple(legs)), mark, ts_ms)


def _after_rollback(book: HedgeBook, old: HedgeOrder, mark: Decimal | None, ts_ms: int,
                    would_take: bool, events: list[AuditEvent]) -> Step:
    """A GTX that would have crossed (or rested and was pulled) is re-priced up to ``max_reprices`` times,
    then sent as market; any other rollback waits for the next fill or re-evaluation."""
    if old.kind != "gtx" or not (would_take or old.state == HedgeState.EXPIRED):
        return Step(book, (), tuple(events))
    if old.attempt < book.max_reprices:
        step = evaluate(book, mark, ts_ms, "gtx", old.attempt + 1)
        code = AuditCode.HEDGE_REPRICED
    else:
        step = evaluate(book, mark, ts_ms, "market", old.attempt + 1)
        code = AuditCode.HEDGE_MARKET_FALLBACK
    if step.sends:
        events.append(_event(book, code, ts_ms, "GTX would take liquidity" if would_take else "GTX expired",
                             replaced=old.client_order_id, by=step.sends[0].client_order_id,
                             attempt=old.attempt + 1))
    return Step(step.book, step.sends, (*events, *step.events))


def on_hedge_order(book: HedgeBook, venue: VenueOrder, mark: Decimal | None, ts_ms: int) -> Step:
    """The venue's view of a hedge order (the answer to the send, a later update, or a lookup)."""
    old = book.order(venue.client_order_id)
    if old is None:
        return Step(book)
    why = quantity_refusal(venue.filled) or quantity_refusal(venue.qty)
    if why is not None:
        return Step(book, (), (_event(book, AuditCode.HEDGE_REPORT_REFUSED, ts_ms, why, Severity.WARN, reason=why,
                                      client_order_id=venue.client_order_id, filled=venue.filled, qty=venue.qty),))
    target = VENUE_STATUS[venue.status]
    state = TRANSITIONS.get((old.state, target))
    if state is None:
        return Step(book)
    if old.state == HedgeState.UNKNOWN:  # a legacy order: its size is the venue's
        old = replace(old, qty=venue.qty, side=venue.side)
    new = replace(old, state=state, filled=max(old.filled, min(venue.filled, old.qty)),
                  venue_order_id=venue.venue_order_id or old.venue_order_id,
                  price=venue.price if venue.price is not None else old.price)
    if new == book.order(venue.client_order_id):
        return Step(book)
    book = resolve_legacy(_replace_order(book, new))
    if state in (HedgeState.ACCEPTED, HedgeState.FILLED) and (book.refusals_in_row or book.hold_until_ms):
        book = replace(book, refusals_in_row=0, hold_until_ms=0)  # the venue takes hedges again
    events: list[AuditEvent] = []
    if old.state in (HedgeState.PENDING, HedgeState.UNKNOWN) and state in (HedgeState.ACCEPTED, HedgeState.FILLED,
                                                                            HedgeState.EXPIRED):
        events.append(_event(book, AuditCode.HEDGE_ACCEPTED, ts_ms, "venue accepted the hedge",
                             client_order_id=new.client_order_id, venue_order_id=new.venue_order_id,
                             qty=new.qty, hedged=book.hedged))
    if state in (HedgeState.EXPIRED, HedgeState.REJECTED) and new.filled < new.qty:
        events.append(_event(book, AuditCode.HEDGE_ROLLED_BACK, ts_ms, venue.status, Severity.WARN,
                             client_order_id=new.client_order_id, rolled_back=new.qty - new.filled,
                             hedged=book.hedged))
        return _after_rollback(book, new, mark, ts_ms, False, events)
    if state.is_done:
        # A done order may let the residual be reported.
        step = evaluate(book, mark, ts_ms)
        return Step(step.book, step.sends, (*events, *step.events))
    return Step(book, (), tuple(events))


def on_hedge_refused(book: HedgeBook, client_order_id: str, reason: VenueReason, mark: Decimal | None,
                     ts_ms: int, message: str = "") -> Step:
    """The send was refused (the order never lived): roll the commitment back."""
    old = book.order(client_order_id)
    if old is None or old.state not in (HedgeState.PENDING, HedgeState.UNKNOWN):
        return Step(book)
    new = replace(old, state=HedgeState.REJECTED, reason=reason.value)
    book = resolve_legacy(_replace_order(book, new))
    if reason.retryable:  # a 429 or a 5xx: back off before the next hedge, never a send per report
        n = book.refusals_in_row + 1
        book = replace(book, refusals_in_row=n, hold_until_ms=ts_ms + backoff_ms(n))
    events = [_event(book, AuditCode.HEDGE_ROLLED_BACK, ts_ms, reason.value, Severity.WARN,
                     client_order_id=client_order_id, rolled_back=old.qty, hedged=book.hedged,
                     message=message)]
    return _after_rollback(book, new, mark, ts_ms, reason == VenueReason.POST_ONLY_WOULD_TAKE, events)


def on_hedge_lost(book: HedgeBook, client_order_id: str, mark: Decimal | None, ts_ms: int) -> Step:
    """A lookup by client id after a restart found no such order: the send never reached the venue."""
    return on_hedge_refused(book, client_order_id, VenueReason.ORDER_NOT_FOUND, mark, ts_ms,
                            "not found by client id after restart")


def resolve_legacy(book: HedgeBook) -> HedgeBook:
    """Once every restored legacy order was looked up, their real states replace the legacy total."""
    if any(o.state == HedgeState.UNKNOWN for o in book.orders):
        return book
    return replace(book, legacy_committed=ZERO)


def um_hedge_position(orders: Iterable[HedgeOrder]) -> Decimal:
    """The UM position the hedge orders built, signed (short negative): filled quantities only."""
    return sum((o.filled if o.side == "buy" else -o.filled for o in orders), ZERO)


def first_unfinished(orders: Iterable[HedgeOrder]) -> HedgeOrder | None:
    """The oldest hedge order still pending, unknown or live: what a lifecycle check waits on."""
    return next((o for o in orders if o.is_unfinished), None)
