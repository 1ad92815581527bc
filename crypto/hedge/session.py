"""One hedge run against a venue: the margin order (open) or the reverse open (close), polled step by step,
its execution reports fed to the ``HedgeRunner``, the hedge orders watched until done.

Imperative shell only: decisions are ``crypto.hedge.book``'s and ``crypto.hedge.close``'s. Time passes
through ``advance`` (the local exchange's manual clock in tests, a sleep against a live venue), so the run
never depends on machine speed. The book is journaled after every step (``store``), the margin order's
client id before it is sent, so a run restarted on the same state never places a second margin order and
never hedges twice.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.events import AuditCode, AuditEvent, Severity
from crypto.hedge.book import (
    ExecMode,
    HedgeBook,
    HedgeState,
    MarginReport,
    Mode,
    first_unfinished,
    um_hedge_position,
)
from crypto.hedge.close import CloseRefusal, Exposure, close_book, plan_close
from crypto.hedge.ports import BookPricing, VenueExposure, VenueMarks, VenueRoute
from crypto.hedge.rules import HedgeFilters, opposite
from crypto.hedge.runner import HedgeRunner, SwitchableChannel
from crypto.hedge.snapshot import dump_snapshot, restore_snapshot
from crypto.venue.protocol import Venue
from crypto.venue.types import Market, OrderRequest, Side, VenueError, VenueOrder

ZERO = Decimal(0)
LOST_AFTER_LOOKUPS = 3  # while running, an unanswered hedge is lost after this many empty lookups in a row


@dataclass(frozen=True)
class RunConfig:
    mode: Mode
    exec_mode: ExecMode
    spot_symbol: str = "BTC/USDT"
    um_symbol: str = "BTC/USDT:USDT"
    qty: Decimal | None = None  # open: the margin order's size; close: at most this much spot (None = all)
    side: Side = "buy"  # open: the margin order's side
    strategy_id: str = "hedge1"
    max_reprices: int = 3
    cross_first: int = 0  # price the first GTX attempts across the book (exercises the re-price path)
    channel_down: bool = False
    max_steps: int = 400
    hedge_max_age_steps: int = 6  # a resting GTX older than this is pulled (then re-priced, then market)
    margin_max_age_steps: int = 200  # the margin order is cancelled after this; the residual is reported


@dataclass
class RunResult:
    mode: Mode
    exec_mode: ExecMode
    outcome: str  # "done", "refused:<code>", "timeout"
    steps: int = 0
    filled: Decimal = ZERO
    hedged: Decimal = ZERO
    residual: Decimal = ZERO
    residual_bound: Decimal | None = None
    um_position: Decimal = ZERO  # the venue's UM position after the run
    um_from_orders: Decimal = ZERO  # the same, aggregated from the hedge orders' fills
    spot: Decimal = ZERO
    hedge_orders: list[dict[str, str]] = field(default_factory=list)
    audit: dict[str, int] = field(default_factory=dict)
    direct_sends: int = 0
    restored: bool = False

    def to_dict(self) -> dict[str, Any]:
        def fmt(v: Any) -> Any:
            return format(v.normalize(), "f") if isinstance(v, Decimal) else v
        return {k: fmt(v) for k, v in self.__dict__.items()}


def new_run_tag() -> str:
    """Four random base-36 characters for a new book's client ids (see ``HedgeBook.run_tag``)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(4))


def filters_of(market: Market) -> HedgeFilters:
    return HedgeFilters(market.qty_step, market.min_qty, market.min_notional)


class HedgeSession:
    """Runs one hedge; ``advance(step)`` lets venue time pass between polls."""

    def __init__(self, venue: Venue, config: RunConfig, advance: Callable[[], None],
                 state_dir: Path | None = None, audit: Callable[[AuditEvent], None] | None = None) -> None:
        self.venue = venue
        self.config = config
        self.advance = advance
        self.state_dir = state_dir
        self.events: list[AuditEvent] = []
        self._audit_out = audit
        self._now = venue.now_ms()
        self.pricing = BookPricing(venue, config.cross_first)
        self.channel = SwitchableChannel(VenueRoute(venue), up=not config.channel_down)
        self.direct_sends: list[str] = []
        self._ages: dict[str, int] = {}
        self.margin_refusal: str | None = None  # why the venue refused the margin order, if it did
        self._fee_seen: dict[str, tuple[Decimal, Decimal]] = {}  # margin cid -> (filled, base fee) last read

    # ------------------------------------------------------------------ plumbing
    @property
    def snapshot_path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{self.config.strategy_id}-{self.config.mode}.json"

    def _emit(self, event: AuditEvent) -> None:
        self.events.append(event)
        if self._audit_out is not None:
            self._audit_out(event)

    def _store(self, book: HedgeBook) -> None:
        path = self.snapshot_path
        if path is not None:
            from shared_schema.atomic_io import atomic_write_bytes

            atomic_write_bytes(path, dump_snapshot(book).encode("utf-8"))

    def _event(self, code: AuditCode, cause: str, severity: Severity = Severity.INFO, **data: Any) -> None:
        payload = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}
        payload["strategy_id"] = self.config.strategy_id
        self._emit(AuditEvent(datetime.fromtimestamp(self._now / 1000, tz=timezone.utc), code, severity, cause,
                              self.config.um_symbol, payload))

    def _runner(self, book: HedgeBook) -> HedgeRunner:
        venue = self.venue
        direct_sends = self.direct_sends

        class Direct:
            def submit(self, request: OrderRequest) -> VenueOrder:
                direct_sends.append(request.client_order_id)
                return venue.place_order(request)

        return HedgeRunner(book, self.channel, Direct(), venue, self.pricing, VenueMarks(venue),
                           lambda: self._now, self._emit, self._store)

    def _restore(self, filters: HedgeFilters) -> HedgeBook | None:
        path = self.snapshot_path
        if path is None or not path.exists():
            return None
        book, legacy = restore_snapshot(path.read_bytes(), filters, self.config.exec_mode, self.config.max_reprices)
        self._event(AuditCode.HEDGE_RESTORED, "snapshot restored", legacy=legacy,
                    hedge_order_ids=list(book.hedge_order_ids), margin_order_ids=list(book.margin_order_ids))
        return book

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        cfg = self.config
        spot = self.venue.market(cfg.spot_symbol)
        um = self.venue.market(cfg.um_symbol)
        um_filters = filters_of(um)
        book = self._restore(um_filters)
        restored = book is not None
        margin_side: Side
        margin_qty: Decimal
        if book is None:
            if cfg.mode == "open":
                if cfg.qty is None or cfg.qty <= 0:
                    return RunResult(cfg.mode, cfg.exec_mode, "refused:NO_QTY")
                margin_side, margin_qty = cfg.side, cfg.qty
                book = HedgeBook(cfg.strategy_id, cfg.um_symbol, "open", cfg.exec_mode, opposite(cfg.side),
                                 um_filters, cfg.max_reprices, run_tag=new_run_tag())
            else:
                planned = self._plan_close(spot, um_filters)
                if isinstance(planned, CloseRefusal):
                    return RunResult(cfg.mode, cfg.exec_mode, f"refused:{planned.value}",
                                     audit=dict(Counter(e.code.value for e in self.events)))
                book, margin_side, margin_qty = planned
                book = replace(book, run_tag=new_run_tag())
        else:
            margin_side = opposite(book.hedge_side)
            margin_qty = cfg.qty or ZERO
        runner = self._runner(book)
        if restored:
            runner.reconcile()
        margin_id = self._margin_order(runner, margin_side, margin_qty)
        if self.margin_refusal is not None:
            return self._result(runner, f"refused:MARGIN_{self.margin_refusal}", 0, restored)
        outcome = "timeout"
        steps = 0
        for steps in range(1, cfg.max_steps + 1):
            self._now = self.venue.now_ms()
            self._poll_margin(runner, margin_id, steps)
            self._poll_hedges(runner)
            if runner.book.margin_done and first_unfinished(runner.book.orders) is None:
                runner.reevaluate()
                if first_unfinished(runner.book.orders) is None:
                    outcome = "done"
                    break
            self.advance()
        return self._result(runner, outcome, steps, restored)

    def _plan_close(self, spot: Market, um_filters: HedgeFilters) -> tuple[HedgeBook, Side, Decimal] | CloseRefusal:
        cfg = self.config
        exposure = VenueExposure(self.venue).exposure(cfg.spot_symbol, cfg.um_symbol)
        if cfg.qty is not None and abs(exposure.spot) > cfg.qty:
            exposure = Exposure(cfg.qty if exposure.spot > 0 else -cfg.qty, exposure.um)
        side: Side = "sell" if exposure.spot > 0 else "buy"
        price = self.pricing.taker_price(cfg.spot_symbol, side)
        mark = VenueMarks(self.venue).mark(cfg.um_symbol)
        allowance = um_filters.residual_bound(mark) if mark is not None else None
        plan = plan_close(exposure, filters_of(spot), price, allowance)
        if isinstance(plan, CloseRefusal):
            self._event(AuditCode.HEDGE_CLOSE_REFUSED, plan.value, Severity.WARN, spot=exposure.spot,
                        um=exposure.um)
            return plan
        self._event(AuditCode.HEDGE_CLOSE_PLANNED, "reverse open from the exposure view", spot=exposure.spot,
                    um=exposure.um, margin_side=plan.margin_side, margin_qty=plan.margin_qty, um_side=plan.um_side,
                    um_cap=plan.um_cap)
        return (close_book(cfg.strategy_id, cfg.um_symbol, plan, cfg.exec_mode, um_filters, cfg.max_reprices),
                plan.margin_side, plan.margin_qty)

    def _margin_order(self, runner: HedgeRunner, side: Side, qty: Decimal) -> str:
        """Place the margin limit order once: its client id is in the journaled book before it is sent."""
        if runner.book.margin:
            cid = runner.book.margin[0].order_id
            if self.venue.fetch_order(self.config.spot_symbol, cid) is not None or runner.book.margin[0].done:
                return cid
        else:
            cid = f"{runner.book.id_prefix}{'m' if self.config.mode == 'open' else 'x'}0"
            runner.on_margin_report(MarginReport(cid, ZERO, "open"))  # journal the id before the send
        if qty <= 0:  # a restored book whose margin order never reached the venue, and no size given again
            runner.on_margin_report(MarginReport(cid, ZERO, "rejected"))
            return cid
        price = self.pricing.taker_price(self.config.spot_symbol, side)
        request = OrderRequest(self.config.spot_symbol, side, qty, "limit", cid, price=price, account="margin")
        try:
            placed = self.venue.place_order(request)
        except VenueError as exc:
            self._event(AuditCode.ORDER_REJECTED, exc.reason.value, Severity.WARN, client_order_id=cid,
                        message=exc.message)
            self.margin_refusal = exc.reason.value
            runner.on_margin_report(MarginReport(cid, ZERO, "rejected"))
            return cid
        runner.on_margin_report(self._report(placed))
        return cid

    def _report(self, order: VenueOrder) -> MarginReport:
        """The execution report of the margin order, with its fee taken in the base asset (a buy on Binance
        spot/margin pays it in the coin bought): the hedge covers what the account holds, not what it bought."""
        return MarginReport(order.client_order_id, order.filled, order.status, self._base_fee(order), order.qty)

    def _base_fee(self, order: VenueOrder) -> Decimal:
        if order.filled <= 0 or order.side != "buy":
            return ZERO
        if self._fee_seen.get(order.client_order_id, (None, ZERO))[0] == order.filled:
            return self._fee_seen[order.client_order_id][1]  # no new fill: no new request
        base = self.venue.market(self.config.spot_symbol).base
        try:
            fills = self.venue.fills(self.config.spot_symbol, None)
        except VenueError as exc:
            # Not knowing the fee must not stop the hedge: keep the last known one (the hedge is then at
            # most one fee too large until the next report) and say so.
            self._event(AuditCode.HEDGE_DEFERRED, "FEE_UNKNOWN", Severity.WARN, reason="FEE_UNKNOWN",
                        client_order_id=order.client_order_id, error=exc.reason.value)
            return self._fee_seen.get(order.client_order_id, (None, ZERO))[1]
        fee = sum((f.fee for f in fills
                   if (f.client_order_id == order.client_order_id or f.venue_order_id == order.venue_order_id)
                   and f.fee_asset == base and f.fee > 0), ZERO)
        fee = min(fee, order.filled)
        self._fee_seen[order.client_order_id] = (order.filled, fee)
        return fee

    def _poll_margin(self, runner: HedgeRunner, cid: str, step: int) -> None:
        leg = next((m for m in runner.book.margin if m.order_id == cid), None)
        if leg is None or leg.done:
            return
        order = self.venue.fetch_order(self.config.spot_symbol, cid)
        if order is None:
            return
        if order.is_live and step >= self.config.margin_max_age_steps:
            order = self.venue.cancel_order(self.config.spot_symbol, cid) or order
        runner.on_margin_report(self._report(order))

    def _poll_hedges(self, runner: HedgeRunner) -> None:
        if any(o.state in (HedgeState.PENDING, HedgeState.UNKNOWN) for o in runner.book.orders):
            runner.reconcile(lost_after=LOST_AFTER_LOOKUPS)
        for order in [o for o in runner.book.orders if o.state == HedgeState.ACCEPTED]:
            found = self.venue.fetch_order(runner.book.symbol, order.client_order_id)
            if found is None:
                continue
            age = self._ages.get(order.client_order_id, 0) + 1
            self._ages[order.client_order_id] = age
            if found.is_live and order.kind == "gtx" and age > self.config.hedge_max_age_steps:
                found = self.venue.cancel_order(runner.book.symbol, order.client_order_id) or found
            runner.on_hedge_update(found)

    def _result(self, runner: HedgeRunner, outcome: str, steps: int, restored: bool) -> RunResult:
        cfg = self.config
        book = runner.book
        self._now = self.venue.now_ms()
        mark = VenueMarks(self.venue).mark(cfg.um_symbol)
        um_pos = sum((p.qty for p in self.venue.positions([cfg.um_symbol]) if p.symbol == cfg.um_symbol), ZERO)
        base = self.venue.market(cfg.spot_symbol).base
        spot_bal = self.venue.balances("margin").get(base)
        return RunResult(
            mode=cfg.mode, exec_mode=cfg.exec_mode, outcome=outcome, steps=steps, filled=book.filled,
            hedged=book.hedged, residual=book.residual,
            residual_bound=None if mark is None else book.filters.residual_bound(mark), um_position=um_pos,
            um_from_orders=um_hedge_position(book.orders), spot=spot_bal.total if spot_bal else ZERO,
            hedge_orders=[{"client_order_id": o.client_order_id, "kind": o.kind, "qty": format(o.qty, "f"),
                           "filled": format(o.filled, "f"), "state": o.state.value, "attempt": str(o.attempt),
                           "reason": o.reason} for o in book.orders],
            audit=dict(Counter(e.code.value for e in self.events)), direct_sends=len(self.direct_sends),
            restored=restored)
