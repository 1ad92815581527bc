"""The execution engine: a thin imperative shell around the pure decisions, talking only to a ``Venue``.

One process owns a state folder (a file lock): the write-ahead journal (``book.EngineBook``), the audit log
(``core.audit``), the control doors' folders (``control/``, ``control_ack/``) and the published status
(``status.json``, written atomically by this one writer).

Idempotency, the rule the whole shell keeps: an order's ``intent`` record, with its client order id, is on
disk before the first send; every retry reuses that id; an order whose send has an unknown outcome (a
timeout, a lost response, a kill -9 between send and record) is looked up by its client id before anything
else is done with it; and a symbol has at most one working order at a time, so a re-post after
``max_order_age_ms`` waits until the venue has ended the previous order. Reconciliation (orders by client
id, then positions through ``core.oms.reconcile``) runs at start and every ``reconcile_interval_ms``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock

from core.audit import AuditWriter, read_log_events, read_log_events_after
from core.control.commands import ControlCommand, InMemoryNonceStore, secret_from_env
from core.control.file_door import process_control_folder
from core.control.killswitch import KillAction, KillSwitchState, handle_command
from core.events import AuditCode, AuditEvent, Severity
from core.execution.rate_limit import RateLimitGuard, on_rate_limited, request_slot, tick_guard
from core.journal import Journal, JournalCorrupt
from core.oms.account import AccountState, HeldPosition
from core.oms.idempotency import next_client_order_id
from core.oms.ledger import bill_key, fill_key, settlement_key
from core.oms.lost_orders import LookupPolicy, LostOrderTracker
from core.oms.order_fsm import OrderState
from core.oms.reasons import VenueReason
from core.oms.reconcile import ReconcileResult, ReconcileSeverity, reconcile, reconcile_events
from core.risk.checks import MarginMode as RiskMargin
from core.risk.checks import OrderIntent, check_order
from core.risk.checks import Side as RiskSide
from core.risk.config import RiskConfig
from core.risk.evaluate import RiskInputs, evaluate
from core.risk.liquidation import plan_liq_reduction
from core.risk.manual import dust_lock, force_reduce
from core.risk.replay import replay as replay_risk
from core.risk.snapshot import RiskSnapshot, snapshot_from_dict, snapshot_to_dict
from core.risk.state import REDUCING_STATES
from crypto.execution.book import EngineBook, intent_record, update_record
from crypto.execution.brackets import BracketKeeper
from crypto.execution.config import ExecConfig, check_margin_regime
from crypto.execution.decisions import OrderPlan, SymbolView, plan_symbol, utc, vet_target
from crypto.execution.orders import LiveOrder, fold_report
from crypto.execution.statedir import AlreadyRunning, StateDirError, check_state_dir, claim
from crypto.trend.strategy import TargetPosition
from crypto.venue.protocol import Venue
from crypto.venue.types import Book, Market, Position, VenueError, VenueOrder
from shared_schema.atomic_io import atomic_write_json
from shared_schema.clock import Clock, SystemClock

log = logging.getLogger("gridbridge.crypto.engine")

JOURNAL_FILE = "crypto_journal.jsonl"
AUDIT_FILE = "audit.jsonl"
STATUS_FILE = "status.json"
LOCK_FILE = "engine.lock"
STATE_FILES = (JOURNAL_FILE, AUDIT_FILE, STATUS_FILE)
__all__ = ["AlreadyRunning", "AnotherEngine", "StateDirError", "CryptoEngine"]
ZERO = Decimal(0)
CAUSE_INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"  # a refused order for margin: reduce-only until Resume
CAUSE_VENUE_AUTH = "VENUE_AUTH"  # the venue refused our keys on a send: reduce-only until Resume

Hook = Callable[[str, LiveOrder], None]


class AnotherEngine(AlreadyRunning):
    """Live orders under our client-id prefix that this state folder's journal never wrote."""


@dataclass
class EngineStats:
    """Counters the e2e report and tests read (never used for decisions)."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unknown: int = 0
    rate_limited: int = 0
    lookups: int = 0
    cancels: int = 0
    cancel_ok: int = 0
    place_latency_ms: list[float] = field(default_factory=list)
    cancel_latency_ms: list[float] = field(default_factory=list)
    reject_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReconcileReport:
    """One reconciliation: positions graded by the core, plus the order-level findings."""

    ts_ms: int
    positions: ReconcileResult
    orphans: tuple[str, ...] = ()  # our client ids live at the venue that the journal does not know
    resolved: tuple[str, ...] = ()  # unknown outcomes settled by a lookup
    duplicates: tuple[str, ...] = ()  # intents with more than one live venue order (must stay empty)

    @property
    def clean(self) -> bool:
        return self.positions.severity is ReconcileSeverity.NONE and not self.orphans and not self.duplicates


class CryptoEngine:
    """The crypto execution loop's shell: ``start`` (lock, replay, reconcile), ``cycle`` (doors, venue sync,
    risk, decisions, sends), ``close`` (release the folder)."""

    def __init__(
        self,
        venue: Venue,
        state_dir: Path | str,
        cfg: ExecConfig | None = None,
        risk_cfg: RiskConfig | None = None,
        clock: Clock | None = None,
        fsync: bool = True,
        environ: Mapping[str, str] | None = None,
        hook: Hook | None = None,
        stopwatch: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.venue = venue
        self.state_dir = Path(state_dir)
        check_state_dir(self.state_dir, STATE_FILES)  # a link or a file in the way: refused before any write
        self.cfg = cfg or ExecConfig()
        self.risk_cfg = risk_cfg or RiskConfig()
        check_margin_regime(self.cfg, self.risk_cfg.require_isolated_margin)  # before anything is written
        self.clock = clock or SystemClock()
        self.environ = environ or {}
        self.hook = hook  # test seam: called at named points ("after_send") with the order
        self.stopwatch = stopwatch  # wall seconds, for latency figures only (never for a decision)
        self._lock: FileLock | None = None
        self.journal = Journal(self.state_dir / JOURNAL_FILE, fsync=fsync)
        self.audit = AuditWriter(self.state_dir / AUDIT_FILE, fsync=fsync, max_bytes=self.cfg.audit_max_bytes)
        self.book = EngineBook(self.cfg.id_prefix)
        self.risk = RiskSnapshot()
        self.kill = KillSwitchState()
        self.nonces = InMemoryNonceStore()
        self.stats = EngineStats()
        self.markets: dict[str, Market] = {}
        self.leverage: dict[str, Decimal] = {}
        self.venue_positions: dict[str, Position] = {}
        self.books: dict[str, Book] = {}
        self.marks: dict[str, Decimal] = {}
        self.equity: Decimal | None = None
        self.targets: dict[str, TargetPosition] = {}
        self.ledger_fills_read: dict[str, int] = {}  # fills_seen at the last fill read, per symbol
        self.ledger_funding_read: dict[str, int] = {}  # engine ms of the last funding-bill read, per symbol
        self.rejected_targets: dict[str, tuple[str, str, str]] = {}  # the last refused target per key (audited once)
        self.event_window = False
        self.guard = RateLimitGuard.start(self.cfg.rate_limit())
        self.rng = random.Random(0)  # backoff jitter: seeded, so a run is reproducible
        self.retry_ok: set[str] = set()  # NEW orders the venue surely refused (rate limit): re-send, no lookup
        self.send_attempts: dict[str, int] = {}
        self.lookups = LostOrderTracker(LookupPolicy.every(timedelta(milliseconds=self.cfg.lookup_gap_ms),
                                                           self.cfg.lost_after_lookups))
        self.last_reconcile: ReconcileReport | None = None
        self.brackets = BracketKeeper(self)
        self.cycles = 0
        self.started = False
        self.started_ok = False  # start() got past its first venue writes
        self.status_write_failed = False
        self.door_alerts: set[str] = set()
        self.clock_outliers: set[str] = set()  # ids of venue records whose time was an outlier (audited once)

    # -- time and records ----------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def now(self) -> datetime:
        return utc(self.now_ms())

    def _record(self, rec: dict[str, Any]) -> None:
        """Write-ahead: durable on disk, then applied."""
        self.journal.append(rec)
        self.book.apply(rec)

    def audit_events(self, events: Iterable[AuditEvent]) -> None:
        self.audit.extend(tuple(events))

    def note(self, code: AuditCode, cause: str, symbol: str | None = None, sev: Severity = Severity.INFO,
              **data: Any) -> None:
        self.audit_events((AuditEvent(self.now(), code, sev, cause, symbol,
                                {k: (str(v) if isinstance(v, Decimal) else v) for k, v in data.items()}),))

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> ReconcileReport:
        """Lock the folder, rebuild the state from the journal and the audit log, set margin and leverage,
        and reconcile with the venue before anything is sent. A start that fails lets go of the folder, so it
        can simply be called again (a venue read refused for rate limit at start, say)."""
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()  # a retry after a failed start: claim afresh
        self._lock = claim(self.state_dir, LOCK_FILE, STATE_FILES)
        try:
            return self._start()
        except BaseException:
            self._lock.release()
            raise

    def _start(self) -> ReconcileReport:
        self.book = EngineBook(self.cfg.id_prefix)  # rebuilt from the journal on every (re)try
        self.brackets.brackets.clear()
        try:
            self.book.apply_all(self.journal.replay())
        except JournalCorrupt as exc:
            raise StateDirError(f"{exc}: the engine does not start on a damaged journal") from None
        self.risk = self._replay_risk()
        self.kill = replace(self.kill, halted=self.book.halted)
        self.risk = replace(self.risk, halted=self.book.halted)
        self.markets = {s: self.venue.market(s) for s in self.cfg.symbols}
        self.started = True
        self._apply_leverage()
        report = self.reconcile(adopt_new=True)  # raises AnotherEngine on foreign orders under our prefix
        self.started_ok = True
        if self.cfg.protective:
            self.brackets.adopt_at_start()  # the live stop stays: the position is never without it
        else:
            for order in self.book.live():
                if order.purpose in ("sl", "tp"):
                    self.cancel(order, "PROTECTIVE_OFF")  # protective orders switched off since the last run
        self.compact_if_due()  # a long journal left by a crash is folded now: the next start is quick
        self.publish_status()
        return report

    def _replay_risk(self) -> RiskSnapshot:
        """The risk state the audit log describes: from the journal snapshot's risk and audit position plus
        the audit written after it (a restart reads the tail, not a week of history), else the whole log."""
        audit_path = self.state_dir / AUDIT_FILE
        extra = self.book.restored_extra
        if "risk" in extra and "audit_pos" in extra:
            try:
                seq, offset = extra["audit_pos"]
                return replay_risk(read_log_events_after(audit_path, (int(seq), int(offset))),
                                   snapshot_from_dict(extra["risk"]))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("journal snapshot does not fit %s (%s): replaying the whole audit log", audit_path, exc)
        if audit_path.exists() or self.audit.seq > 1:
            return replay_risk(read_log_events(audit_path))
        return self.risk

    def compact_if_due(self) -> None:
        """Fold the journal into one snapshot record (with the risk snapshot and the audit position) once its
        tail is ``compact_after_records`` long: the journal stays bounded and a restart replays little."""
        if self.journal.records_since_snapshot < self.cfg.compact_after_records:
            return
        snapshot = self.book.snapshot_record(self.now_ms())
        snapshot["risk"] = snapshot_to_dict(self.risk)
        snapshot["audit_pos"] = list(self.audit.position())
        self.journal.compact(snapshot)
        self.book.apply(snapshot)  # memory as a restart would rebuild it: ended orders dropped (memory flat)

    def close(self) -> None:
        self.journal.close()
        self.audit.close()
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> CryptoEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leverage_for(self, symbol: str) -> Decimal:
        """The leverage the engine sets: its configured one, capped by the whitelist (1x in an event window)."""
        return min(self.cfg.leverage, self.risk_cfg.leverage_cap(symbol, self.event_window or self.risk.extreme))

    def _apply_leverage(self) -> None:
        for symbol in self.cfg.symbols:
            if not self.markets[symbol].is_swap:
                continue
            wanted = self.leverage_for(symbol)
            if self.leverage.get(symbol) == wanted:
                continue
            try:
                if symbol not in self.leverage:
                    self.venue.set_margin_mode(symbol, self.cfg.margin_mode)
                self.venue.set_leverage(symbol, wanted, self.cfg.margin_mode)
                self.leverage[symbol] = wanted
                self.note(AuditCode.EXEC_LEVERAGE_SET, f"leverage {wanted}x {self.cfg.margin_mode}", symbol,
                           leverage=wanted, margin_mode=self.cfg.margin_mode, event_window=self.event_window)
            except VenueError as exc:
                self.note(AuditCode.ORDER_ERROR, f"set leverage refused: {exc}", symbol, Severity.ERROR,
                           reason=exc.reason.value, venue_code=exc.venue_code, leverage=wanted)
                if exc.reason is VenueReason.AUTH and not self.started_ok and self.cycles == 0:
                    raise  # keys that cannot trade (wrong, read-only): fail the start loudly, not every order

    def set_event_window(self, on: bool) -> None:
        """An event window caps every symbol at the stressed leverage (1x) and halves the budget."""
        if on != self.event_window:
            self.event_window = on
            self.risk = replace(self.risk, event_window=on)  # the caps apply now, not at the next evaluation
            self._apply_leverage()

    # -- orders --------------------------------------------------------------------------------------
    def reserve_client_order_id(self) -> str:
        """A fresh client id for an order decided now but journaled when placed (a bracket's stop and
        take-profit). Never reused: the counter moves on, and the id's time part keeps it unique even if
        the counter is lost in a crash before the order is journaled."""
        assert self.book.seq is not None
        self.book.seq, coid = next_client_order_id(self.book.seq, self.now_ms())
        return coid

    def new_order(self, plan: OrderPlan, intent_id: str | None = None,
                  client_order_id: str | None = None) -> LiveOrder:
        """Journal a new order (write-ahead) and return it, NEW; ``send`` puts it on the venue."""
        now = self.now_ms()
        assert self.book.seq is not None
        if client_order_id is None:
            seq, coid = next_client_order_id(self.book.seq, now)
        else:
            seq, coid = self.book.seq, client_order_id
        order = LiveOrder(
            client_order_id=coid, intent_id=intent_id or f"{plan.symbol}|{plan.purpose}|{seq.counter}",
            symbol=plan.symbol, side=plan.side, qty=plan.qty, type=plan.type, purpose=plan.purpose,
            price=plan.price, trigger_price=plan.trigger_price, reduce_only=plan.reduce_only,
            post_only=self.cfg.post_only and plan.type == "limit" and plan.purpose in ("target", "probe"),
            created_ms=now, updated_ms=now,
        )
        self._record(intent_record(order, seq.counter))
        self.book.seq = seq
        return order

    def place(self, plan: OrderPlan, intent_id: str | None = None,
              client_order_id: str | None = None) -> LiveOrder | None:
        """A new order for ``intent_id`` unless that intent already has a non-terminal one (then that one is
        returned, resolved by lookup if its outcome is unknown: never two live orders for one intent) or is
        done (filled: returned as it is). Only an intent whose last order was cancelled or refused gets a new
        order (a re-post, under a new client id)."""
        if intent_id is not None:
            existing = self.book.intent_order(intent_id)
            if existing is not None and not existing.is_terminal:
                return self.resolve(existing)
            if existing is not None and existing.state is OrderState.FILLED:
                return existing
        if not self._may_send():
            return None
        return self.send(self.new_order(plan, intent_id, client_order_id))

    def request_open(self, plan: OrderPlan, leverage: Decimal, intent_id: str | None = None) -> LiveOrder | None:
        """An explicit opening order at ``leverage``: the core's pre-trade checks first (whitelist, 1x in an event
        window, isolated margin, risk state); a refusal is audited RISK_ORDER_REFUSED and nothing is sent."""
        pos = self.venue_positions.get(plan.symbol)
        intent = OrderIntent(plan.symbol, RiskSide.BUY if plan.side == "buy" else RiskSide.SELL, plan.qty, True,
                             leverage, RiskMargin.CROSS if (pos is not None and pos.margin_mode == "cross")
                             else RiskMargin.ISOLATED)
        reason = check_order(self.risk, intent, self.risk_cfg)
        if reason is not None:
            self.note(AuditCode.RISK_ORDER_REFUSED, f"open refused: {reason.value}", plan.symbol, Severity.WARN,
                       reason=reason.value, leverage=leverage, qty=plan.qty, side=plan.side)
            return None
        if self.leverage.get(plan.symbol) != leverage and self.markets[plan.symbol].is_swap:
            try:
                self.venue.set_leverage(plan.symbol, leverage, self.cfg.margin_mode)
            except VenueError as exc:
                self.note(AuditCode.ORDER_ERROR, f"set leverage refused: {exc}", plan.symbol, Severity.WARN,
                           reason=exc.reason.value, leverage=leverage)
                return None
            self.leverage[plan.symbol] = leverage
        return self.place(plan, intent_id)

    def _may_send(self) -> bool:
        """One request slot from the core's rate-limit guard (never during a backoff; our bucket otherwise)."""
        now = self.now()
        step = tick_guard(self.guard, now, self.cfg.rate_limit())
        self.guard = step.guard
        self.audit_events(step.events)
        slot = request_slot(self.guard, now)
        self.guard = slot.guard
        return slot.granted

    def send(self, order: LiveOrder) -> LiveOrder:
        """Send a journaled NEW order (same client id every time) and fold the answer."""
        self.stats.sent += 1
        self.send_attempts[order.client_order_id] = self.send_attempts.get(order.client_order_id, 0) + 1
        margin = self.cfg.margin_mode if self.markets.get(order.symbol, None) is None or \
            self.markets[order.symbol].is_swap else None
        started = self.stopwatch()
        try:
            report = self.venue.place_order(order.request(margin))
        except VenueError as exc:
            return self._send_failed(order, exc)
        self.stats.place_latency_ms.append((self.stopwatch() - started) * 1000)
        if self.hook is not None:
            self.hook("after_send", order)
        self.stats.accepted += 1
        self.retry_ok.discard(order.client_order_id)
        self._record({"k": "sent", "coid": order.client_order_id, "status": "SENT",
                      "voi": report.venue_order_id, "t": self.now_ms()})
        self._submitted_event(self.book.orders[order.client_order_id])
        return self._fold(self.book.orders[order.client_order_id], report)

    def _submitted_event(self, order: LiveOrder) -> None:
        self.note(AuditCode.ORDER_SUBMITTED, f"{order.side} {order.qty} {order.symbol} {order.type}",
                   order.symbol, client_order_id=order.client_order_id, intent_id=order.intent_id,
                   side=order.side, qty=order.qty, price=order.price, type=order.type,
                   reduce_only=order.reduce_only, purpose=order.purpose)

    def _send_failed(self, order: LiveOrder, exc: VenueError) -> LiveOrder:
        coid, now = order.client_order_id, self.now_ms()
        reason = exc.reason
        self.stats.reject_reasons[reason.value] = self.stats.reject_reasons.get(reason.value, 0) + 1
        if reason is VenueReason.UNKNOWN_OUTCOME:
            self.stats.unknown += 1
            self._record({"k": "sent", "coid": coid, "status": "UNKNOWN", "msg": str(exc)[:200], "t": now})
            self.note(AuditCode.ORDER_ERROR, "send outcome unknown: looked up by client id", order.symbol,
                       Severity.WARN, client_order_id=coid, reason=reason.value)
            return self.resolve(self.book.orders[coid], force=True)
        if reason is VenueReason.DUPLICATE_CLIENT_ID:
            # The venue already holds this id: our earlier send landed. Adopt it, never send another.
            return self.resolve(self.book.orders[coid], force=True)
        if reason in (VenueReason.RATE_LIMIT, VenueReason.NETWORK) or (
            reason is VenueReason.VENUE_ERROR and self.send_attempts.get(coid, 0) <= self.cfg.send_retries
        ):
            if reason is VenueReason.RATE_LIMIT:
                self._rate_limited(order, exc)
            self.retry_ok.add(coid)
            self._record({"k": "sent", "coid": coid, "status": "RETRY", "msg": str(exc)[:200], "t": now})
            return self.book.orders[coid]
        self.stats.rejected += 1
        self.retry_ok.discard(coid)
        self._record({"k": "sent", "coid": coid, "status": "REJECTED", "msg": str(exc)[:200], "t": now})
        self._submitted_event(order)
        self.note(AuditCode.ORDER_REJECTED, f"venue refused: {reason.value}", order.symbol, Severity.WARN,
                   client_order_id=coid, reason=reason.value, venue_code=exc.venue_code, message=exc.message[:200])
        if reason is VenueReason.INSUFFICIENT_FUNDS and not order.reduce_only:
            res = force_reduce(self.risk, self.now(), self.risk_cfg, f"insufficient margin for {coid}",
                               reason=CAUSE_INSUFFICIENT_MARGIN)
            self.risk = res.snapshot
            self.audit_events(res.events)
        if reason is VenueReason.AUTH and not order.reduce_only:
            # The keys stopped working (revoked, expired, wrong): no new exposure until an operator's RESUME,
            # rather than a new refused order every cycle.
            res = force_reduce(self.risk, self.now(), self.risk_cfg, f"venue refused our keys for {coid}",
                               reason=CAUSE_VENUE_AUTH)
            self.risk = res.snapshot
            self.audit_events(res.events)
        return self.book.orders[coid]

    def _rate_limited(self, order: LiveOrder | None, exc: VenueError) -> None:
        """A venue rate-limit refusal into the core's guard: audited; repeated ones back off exponentially and
        downgrade (only reducing orders and cancels go out, risk DEGRADED) until a quiet period passes."""
        self.stats.rate_limited += 1
        step = on_rate_limited(self.guard, self.now(), self.cfg.rate_limit(), self.rng,
                               None if order is None else order.symbol)
        self.guard = step.guard
        self.audit_events(step.events)

    @property
    def downgraded(self) -> bool:
        return self.guard.degraded

    def resolve(self, order: LiveOrder, force: bool = False) -> LiveOrder:
        """Settle a NEW order of unknown outcome: look it up by client id; found -> fold the venue's report;
        not found -> re-send with the same id (refused as a duplicate if the first landed after all), and
        after ``lost_after_lookups`` spaced misses declare it lost."""
        coid, now = order.client_order_id, self.now()
        if order.state is not OrderState.NEW:
            return order
        if coid in self.retry_ok:
            return self.send(order) if self._may_send() else order
        if not force and not self.lookups.is_due(coid, now):
            return order
        self.stats.lookups += 1
        try:
            report = self.venue.fetch_order(order.symbol, coid)
        except VenueError as exc:
            self.lookups.wait(coid, now)  # no answer is no miss
            if exc.reason is VenueReason.RATE_LIMIT:
                self._rate_limited(order, exc)
            return order
        if report is not None:
            self.lookups.forget(coid)
            self._record({"k": "sent", "coid": coid, "status": "SENT", "voi": report.venue_order_id,
                          "t": self.now_ms()})
            self._submitted_event(self.book.orders[coid])
            return self._fold(self.book.orders[coid], report)
        if self.lookups.missed(coid, now) or self.send_attempts.get(coid, 0) > self.cfg.send_retries:
            self.lookups.forget(coid)
            self._record({"k": "lost", "coid": coid, "t": self.now_ms()})
            self.note(AuditCode.EXEC_ORDER_LOST, "unknown outcome never found at the venue: lost", order.symbol,
                       Severity.WARN, client_order_id=coid)
            return self.book.orders[coid]
        return self.send(order) if self._may_send() else order

    def _fold(self, order: LiveOrder, report: VenueOrder) -> LiveOrder:
        folded = fold_report(order, report, self.now_ms())
        if folded.refused is not None:
            self.note(AuditCode.OMS_ILLEGAL_TRANSITION, str(folded.refused), order.symbol, Severity.WARN,
                       client_order_id=order.client_order_id)
        if not folded.changed:
            return order
        self._record(update_record(folded.order))
        new = self.book.orders[order.client_order_id]
        if folded.fill_delta > 0:
            self._fill_event(new, folded.fill_delta)
        elif new.state is OrderState.CANCELLED:
            self.note(AuditCode.ORDER_CANCELLED, "cancelled", new.symbol, client_order_id=new.client_order_id,
                       filled=new.filled)
        elif new.state is OrderState.REJECTED:
            self.note(AuditCode.ORDER_REJECTED, f"venue ended it: {report.status}", new.symbol, Severity.WARN,
                       client_order_id=new.client_order_id, reason=report.status)
        if new.purpose in ("sl", "tp") and new.state in (OrderState.FILLED, OrderState.REJECTED):
            self.brackets.on_report(new)  # the bracket cancels the other side (OCO) or audits the failure
        return new

    def _fill_event(self, order: LiveOrder, delta: Decimal) -> None:
        code = AuditCode.ORDER_FILLED if order.state is OrderState.FILLED else AuditCode.ORDER_PARTIAL
        self.note(code, f"{order.side} {delta} {order.symbol} filled ({order.filled}/{order.qty})", order.symbol,
                   client_order_id=order.client_order_id, fill_qty=delta, filled=order.filled,
                   remaining=order.remaining, avg_price=order.avg_price, opens=not order.reduce_only and
                   order.purpose == "target", leverage=self.leverage.get(order.symbol, Decimal(1)),
                   max_leverage=self.risk_cfg.leverage_cap(order.symbol, self.risk.is_stressed),
                   risk_state=self.risk.state.value, position=self.book.position(order.symbol))

    def cancel(self, order: LiveOrder, why: str) -> LiveOrder:
        """Journal the request, ask the venue, fold what it says (a vanished order is looked up)."""
        coid = order.client_order_id
        if order.is_terminal:
            return order
        if order.state is OrderState.NEW:
            return self.resolve(order, force=True)
        self._record({"k": "cancel_req", "coid": coid, "why": why, "t": self.now_ms()})
        self.stats.cancels += 1
        started = self.stopwatch()
        try:
            report = self.venue.cancel_order(order.symbol, coid)
        except VenueError as exc:
            if exc.reason is VenueReason.RATE_LIMIT:
                self._rate_limited(order, exc)
            else:
                self.note(AuditCode.ORDER_ERROR, f"cancel failed: {exc.reason.value}", order.symbol,
                           Severity.WARN, client_order_id=coid, reason=exc.reason.value)
            return self.book.orders[coid]
        self.stats.cancel_latency_ms.append((self.stopwatch() - started) * 1000)
        if report is None:
            try:
                report = self.venue.fetch_order(order.symbol, coid)
            except VenueError:
                return self.book.orders[coid]
        if report is None:
            self._record({"k": "cancelled", "coid": coid, "t": self.now_ms()})
            self.stats.cancel_ok += 1
            return self.book.orders[coid]
        new = self._fold(self.book.orders[coid], report)
        if new.is_terminal:
            self.stats.cancel_ok += 1
        return new

    # -- venue sync, reconciliation and risk ---------------------------------------------------------
    def sync_orders(self) -> None:
        """Fold the venue's view of every order we hold as live (NEW ones are resolved by lookup)."""
        try:
            open_by_id = {o.client_order_id: o for o in self.venue.open_orders()}
        except VenueError as exc:
            if exc.reason is VenueReason.RATE_LIMIT:
                self._rate_limited(None, exc)
            else:
                self.note(AuditCode.EXEC_HEALTH_DEGRADED, f"open orders unreadable: {exc.reason.value}", None,
                           Severity.WARN, reason=exc.reason.value)
            return
        for order in list(self.book.live()):
            if order.state is OrderState.NEW:
                self.resolve(order)
                continue
            report = open_by_id.get(order.client_order_id)
            if report is None:
                try:
                    report = self.venue.fetch_order(order.symbol, order.client_order_id)
                except VenueError:
                    continue
                if report is None:
                    continue
            self._fold(order, report)

    def refresh_market(self) -> None:
        """Positions, equity, books and marks of every symbol (one read each)."""
        self.venue_positions = {p.symbol: p for p in self.venue.positions(list(self.cfg.symbols)) if p.qty != 0}
        balances = self.venue.balances("trading")
        bal = balances.get(self.cfg.settle_asset)
        # OKX's trading-account balance total is its equity (eq = cash balance + unrealised PnL).
        self.equity = None if bal is None else bal.total
        for symbol in self.cfg.symbols:
            self.books[symbol] = self.venue.order_book(symbol, self.cfg.depth_levels)
            self.marks[symbol] = self.venue.mark_price(symbol)

    def reconcile(self, adopt_new: bool = False) -> ReconcileReport:
        """Orders first (lookups by client id, orphans cancelled), then positions through the core."""
        now = self.now_ms()
        resolved: list[str] = []
        for order in list(self.book.live()):
            if order.state is OrderState.NEW:
                after = self.resolve(order, force=True)
                if after.state is not OrderState.NEW:
                    resolved.append(order.client_order_id)
        self.sync_orders()
        orphans: list[str] = []
        duplicates: list[str] = []
        try:
            open_orders = self.venue.open_orders()
        except VenueError:
            open_orders = []
        live_by_intent: dict[str, int] = {}
        for vo in open_orders:
            known = self.book.orders.get(vo.client_order_id)
            if known is None:
                if vo.client_order_id.startswith(self.cfg.id_prefix):
                    orphans.append(vo.client_order_id)
                    if self.cfg.orphan_policy == "cancel":
                        try:
                            self.venue.cancel_order(vo.symbol, vo.client_order_id)
                        except VenueError:
                            pass
                continue
            live_by_intent[known.intent_id] = live_by_intent.get(known.intent_id, 0) + 1
        duplicates = sorted(i for i, n in live_by_intent.items() if n > 1)
        self.refresh_market()
        venue_qty = {s: p.qty for s, p in self.venue_positions.items()}
        for symbol in self.cfg.symbols:
            if symbol not in self.book.adopted and (adopt_new or symbol in venue_qty):
                # First sight of this symbol: the venue's position is the starting truth (journaled), and the
                # ledger opens it at the venue's entry price; the venue's fills count from the venue's time now
                # (not ours: a skewed local clock would drop or double a fill).
                self._record({"k": "adopt", "sym": symbol, "qty": str(venue_qty.get(symbol, ZERO)), "t": now,
                              "vt": self._venue_time(now)})
                pos = self.venue_positions.get(symbol)
                if pos is not None and pos.qty != 0 and pos.entry_price > 0:
                    self._record({"k": "lfill", "id": f"adopt-{symbol}-{now}", "sym": symbol, "qty": str(pos.qty),
                                  "px": str(pos.entry_price), "fee": "0", "t": self.book.ledger_floor[symbol]})
        self.sync_ledger(reconciling=True)
        local = {s: q for s, q in self.book.positions.items() if q != 0}
        result = reconcile(local, venue_qty, None, None)
        events = reconcile_events(result, self.now())
        for coid in orphans:
            events.append(AuditEvent(self.now(), AuditCode.OMS_RECONCILE_MISMATCH, Severity.ERROR,
                                     "order at the venue unknown to the journal: cancelled", None,
                                     {"client_order_id": coid, "grade": "ORPHAN"}))
        if orphans and self.cfg.orphan_policy == "refuse":
            self._foreign_orders(orphans)
        report = ReconcileReport(now, result, tuple(orphans), tuple(resolved), tuple(duplicates))
        if report.clean:
            events.append(AuditEvent(self.now(), AuditCode.OMS_RECONCILE_OK, Severity.INFO,
                                     "venue and journal agree", None,
                                     {"positions": {s: str(q) for s, q in local.items()},
                                      "resolved": list(resolved)}))
        self.audit_events(events)
        self.last_reconcile = report
        self._evaluate_risk(result)
        return report

    def _foreign_orders(self, orphans: list[str]) -> None:
        """Orders under our id prefix that this journal never wrote (it writes every intent before sending):
        another engine trades this account with this prefix from another state folder, or this folder lost
        its journal. Cancelling them would fight the other engine order for order; so nothing is cancelled,
        at start the engine refuses to run (``AnotherEngine``), later it halts new orders (kill switch, lifted
        by a signed RESUME). ``orphan_policy="cancel"`` (close-all, a known lost folder) cancels them instead."""
        message = (f"{len(orphans)} live order(s) with prefix {self.cfg.id_prefix!r} unknown to this journal "
                   f"(e.g. {orphans[0]}): another engine on this account, or a lost state folder")
        self.note(AuditCode.OMS_RECONCILE_MISMATCH, message, None, Severity.CRITICAL, grade="FOREIGN",
                  client_order_ids=orphans[:20])
        if not self.started_ok:
            raise AnotherEngine(f"{message}; use another id_prefix, or cancel them (close-all)")
        if not self.kill.halted:
            self.kill = replace(self.kill, halted=True)
            self.risk = replace(self.risk, halted=True)
            self._record({"k": "halt", "on": True, "t": self.now_ms()})

    def _venue_time(self, fallback_ms: int, readings: int = 3) -> int:
        """The venue's server time, the median of ``readings`` answers: one outlier answer (a year 2099 or
        1970) never becomes a watermark. Fills and bills are stamped by the venue's clock, so they are
        compared with this, never with ours (a skewed local clock would drop or double a fill)."""
        got: list[int] = []
        for _ in range(readings):
            try:
                got.append(int(self.venue.now_ms()))
            except VenueError:
                continue
        if not got:
            return fallback_ms
        got.sort()
        if got[-1] - got[0] > self.cfg.max_clock_skew_ms:
            self._outlier("venue-time", got[-1], got[len(got) // 2])
        return got[len(got) // 2]

    def _outlier(self, key: str, ts_ms: int, reference_ms: int) -> None:
        if key not in self.clock_outliers:
            self.clock_outliers.add(key)
            self.note(AuditCode.EXEC_VENUE_CLOCK_OUTLIER, f"venue time {ts_ms} is {ts_ms - reference_ms} ms from "
                      "the venue's clock: clamped, not followed", None, Severity.WARN, key=key[:60], venue_ms=ts_ms,
                      reference_ms=reference_ms)

    def sync_ledger(self, reconciling: bool = False, funding: bool | None = None) -> None:
        """Book the venue's own fills and funding bills into core's ledger, each once by its id and journaled
        first: average entry, realised PnL, fees and funding exactly as the venue charged them. Reads are
        spent only where something can have changed: fills when this process folded a fill report since the
        last read (or, reconciling, when the ledger's quantity differs from the venue's: a trade from
        outside); funding bills every ``funding_read_interval_ms`` for a symbol with a position. A fill or
        bill that cannot be booked (no id, qty 0, price <= 0) is audited and skipped; a read that fails is
        retried at the next sync."""
        now = self.now_ms()
        venue_now: list[int] = []  # read lazily, once: only a record stamped far past the watermark needs it

        def watermark(key: str, stream: str, ts_ms: int, floor_ms: int) -> int:
            """The record's time for the read watermark: a time far past the newest booked is checked
            against the venue's clock, and an outlier (2099) is clamped to it and audited once."""
            skew = self.cfg.max_clock_skew_ms
            if ts_ms <= max(self.book.ledger_since.get(stream, floor_ms), floor_ms) + skew:
                return ts_ms
            if not venue_now:
                venue_now.append(self._venue_time(ts_ms, readings=1))
            if ts_ms <= venue_now[0] + skew:
                return ts_ms
            self._outlier(key, ts_ms, venue_now[0])
            return venue_now[0]

        for symbol in self.cfg.symbols:
            floor = self.book.ledger_floor.get(symbol)
            if floor is None or not self.markets[symbol].is_swap:
                continue
            seen = self.book.fills_seen.get(symbol, 0)
            venue_qty = self.venue_positions[symbol].qty if symbol in self.venue_positions else ZERO
            held = self.book.ledger.position(symbol).qty
            read_fills = self.ledger_fills_read.get(symbol) != seen or (reconciling and venue_qty != held)
            last_funding = self.ledger_funding_read.get(symbol)
            read_bills = funding if funding is not None else (
                (held != 0 or venue_qty != 0)
                and (last_funding is None or now - last_funding >= self.cfg.funding_read_interval_ms))
            fills = self._ledger_read(self.venue.fills, symbol, f"fill:{symbol}", floor) if read_fills else []
            if fills is None:
                continue  # refused (rate limit, venue busy): the next sync reads again
            self.ledger_fills_read[symbol] = seen
            for f in sorted(fills, key=lambda f: (f.ts_ms, f.trade_id)):
                if f.ts_ms < floor or self.book.ledger.is_booked(fill_key(f.trade_id)):
                    continue
                if not f.trade_id or f.qty <= 0 or f.price <= 0 or f.fee_asset != self.cfg.settle_asset:
                    if f"unbookable:{f.trade_id}" not in self.clock_outliers:  # audited once per fill
                        self.clock_outliers.add(f"unbookable:{f.trade_id}")
                        self.note(AuditCode.OMS_RECONCILE_MISMATCH, "venue fill not bookable", symbol,
                                  Severity.WARN, trade_id=f.trade_id, qty=f.qty, price=f.price,
                                  fee_asset=f.fee_asset)
                    continue
                self._record({"k": "lfill", "id": f.trade_id, "sym": symbol,
                              "qty": str(f.qty if f.side == "buy" else -f.qty), "px": str(f.price),
                              "fee": str(f.fee), "t": watermark(f"fill:{f.trade_id}", f"fill:{symbol}", f.ts_ms, floor),
                              "vt": f.ts_ms, "coid": f.client_order_id})
            bills = self._ledger_read(self.venue.funding_payments, symbol, f"funding:{symbol}", floor) \
                if read_bills else []
            if bills is None:
                continue
            if read_bills:
                self.ledger_funding_read[symbol] = now
            for b in sorted(bills, key=lambda b: (b.ts_ms, b.bill_id)):
                if b.ts_ms < floor or not b.bill_id or self.book.ledger.is_booked(bill_key(b.bill_id)) \
                        or self.book.ledger.is_booked(settlement_key(symbol, b.ts_ms)):
                    continue
                self._record({"k": "lfund", "id": b.bill_id, "sym": symbol, "amt": str(b.amount),
                              "t": watermark(f"bill:{b.bill_id}", f"funding:{symbol}", b.ts_ms, floor),
                              "vt": b.ts_ms})

    def _ledger_read(self, read: Callable[[str, int], list[Any]], symbol: str, stream: str,
                     floor: int) -> list[Any] | None:
        """One ledger read from a little before the newest booked record; None when the venue refused it."""
        try:
            return read(symbol, self.book.ledger_read_from(stream, floor))
        except VenueError as exc:
            if exc.reason is VenueReason.RATE_LIMIT:
                self._rate_limited(None, exc)
            return None

    def ledger_view(self) -> dict[str, dict[str, str]]:
        """Per symbol, exact: quantity, average entry, realised and unrealised PnL (at the last mark), fees
        and funding, as the ledger booked them from the venue's fills and bills."""
        out: dict[str, dict[str, str]] = {}
        for symbol, p in sorted(self.book.ledger.positions.items()):
            mark = self.marks.get(symbol)
            marked = replace(p, mark=mark) if mark is not None and mark > 0 else p
            out[symbol] = {"qty": str(p.qty), "avg_entry": str(p.entry), "realised_pnl": str(p.realised_pnl),
                           "unrealised_pnl": str(marked.unrealised_pnl), "fees": str(p.fees),
                           "funding": str(p.funding), "mark": None if mark is None else str(mark)}  # type: ignore[dict-item]
        return out

    def _account(self) -> AccountState:
        positions = {}
        for symbol, p in self.venue_positions.items():
            positions[symbol] = HeldPosition(symbol, p.qty, p.qty * p.entry_price, p.mark_price, p.liq_price)
        equity = self.equity if self.equity is not None else ZERO
        return AccountState(equity=equity, peak_equity=max(self.risk.peak_equity, equity), cash=equity,
                            positions=positions)

    def _evaluate_risk(self, rec: ReconcileResult | None = None) -> None:
        account = self._account()
        exposure = sum((p.notional for p in account.positions.values()), ZERO)
        inputs = _risk_inputs(account, exposure, self.event_window, rec, self.venue_positions, self.downgraded)
        result = evaluate(self.risk, inputs, self.now(), self.risk_cfg)
        self.risk = replace(result.snapshot, halted=self.kill.halted)
        events = list(result.events)
        events.append(AuditEvent(self.now(), AuditCode.EQUITY_SNAPSHOT, Severity.INFO, "cycle", None, {
            "equity": str(account.equity), "peak_equity": str(self.risk.peak_equity),
            "liq_distance_p95": None if account.liq_distance_pct is None else str(account.liq_distance_pct),
            "exposure": str(exposure), "risk_state": self.risk.state.value}))
        self.audit_events(events)

    # -- the cycle -----------------------------------------------------------------------------------
    def cycle(self, targets: Mapping[str, TargetPosition] | None = None) -> dict[str, str]:
        """One turn: control doors, venue sync, timed reconciliation, risk, then per symbol the plan."""
        if not self.started:
            raise RuntimeError("start() the engine first")
        self.cycles += 1
        step = tick_guard(self.guard, self.now(), self.cfg.rate_limit())
        self.guard = step.guard
        self.audit_events(step.events)
        self.process_controls()
        if targets is not None:
            self.take_targets(targets)
        backoff_until = self.guard.backoff_until
        if backoff_until is not None and self.now() < backoff_until:
            # Backing off means not asking at all: no reads, no sends until the backoff has passed.
            self.publish_status()
            return {s: "BACKOFF" for s in self.cfg.symbols}
        try:
            if self.last_reconcile is None or \
                    self.now_ms() - self.last_reconcile.ts_ms >= self.cfg.reconcile_interval_ms:
                self.reconcile()
            else:
                self.sync_orders()
                self.refresh_market()
                self._evaluate_risk()
                self.sync_ledger()
        except VenueError as exc:
            # The venue did not answer a read: no decision on stale data this cycle; a rate-limit refusal
            # feeds the guard (backoff, downgrade), anything else is noted and the next cycle tries again.
            if exc.reason is VenueReason.RATE_LIMIT:
                self._rate_limited(None, exc)
            else:
                self.note(AuditCode.EXEC_HEALTH_DEGRADED, f"venue read failed: {exc.reason.value}", None,
                           Severity.WARN, reason=exc.reason.value, venue_code=exc.venue_code)
            self.publish_status()
            return {s: "VENUE_READ_FAILED" for s in self.cfg.symbols}
        cuts: dict[str, Decimal] = {}
        if self.risk.liq_blocked:
            plan = plan_liq_reduction(self._account().positions.values(), self.risk_cfg,
                                      {s: m.qty_step for s, m in self.markets.items()})
            cuts = {r.symbol: r.qty for r in plan.reductions}
        reasons: dict[str, str] = {}
        for symbol in self.cfg.symbols:
            reasons[symbol] = self._work_symbol(symbol, cuts.get(symbol))
        self.compact_if_due()
        self.publish_status()
        return reasons

    def take_targets(self, targets: Mapping[str, TargetPosition]) -> None:
        """The strategy's targets, each vetted (``vet_target``) against the last marks and equity: an accepted
        one replaces the symbol's target (SIGNAL_ACCEPTED), a refused one is audited SIGNAL_REJECTED once
        (the same refused value again is not re-audited) and the symbol keeps what it had."""
        for key, t in targets.items():
            symbol = t.symbol
            why = "KEY_NOT_SYMBOL" if key != symbol else vet_target(
                symbol, t.qty, t.stop_price, self.cfg.symbols, self.marks.get(symbol), self.equity,
                self.leverage_for(symbol) if symbol in self.cfg.symbols else Decimal(1))
            if why is None:
                self.targets[symbol] = t
                self.rejected_targets.pop(symbol, None)
                self.note(AuditCode.SIGNAL_ACCEPTED, "target received", symbol, target=str(t.qty), reason=t.reason)
                continue
            seen = (str(t.qty), str(t.stop_price), why)
            if self.rejected_targets.get(str(key)) != seen:
                self.rejected_targets[str(key)] = seen
                self.note(AuditCode.SIGNAL_REJECTED, f"target refused: {why}", symbol if symbol in self.cfg.symbols
                          else None, Severity.WARN, reason=why, target=str(t.qty)[:40], key=str(key)[:40],
                          stop_price=str(t.stop_price)[:40])

    def view(self, symbol: str) -> SymbolView:
        pos = self.venue_positions.get(symbol)
        return SymbolView(
            symbol=symbol, market=self.markets[symbol], book=self.books[symbol], mark=self.marks[symbol],
            position=self.book.position(symbol), live=tuple(self.book.live(symbol)),
            last_trade_ms=self.book.last_trade_ms.get(symbol), leverage=self.leverage.get(symbol, Decimal(1)),
            margin_mode=None if pos is None else pos.margin_mode,
        )

    def _work_symbol(self, symbol: str, liq_cut: Decimal | None = None) -> str:
        view = self.view(symbol)
        target = self.targets.get(symbol)
        plan = plan_symbol(view, None if target is None else target.qty, self.risk, self.risk_cfg, self.cfg,
                           self.now_ms(), downgraded=self.downgraded, halted=self.kill.halted, liq_cut=liq_cut)
        self.audit_events(plan.events)
        if plan.dust_lock:
            res = dust_lock(self.risk, symbol, self.now(), self.risk_cfg, "closing order under the venue minimum")
            self.risk = res.snapshot
            self.audit_events(res.events)
        for coid, why in plan.cancels:
            self.cancel(self.book.orders[coid], why)
        reason = plan.reason
        if plan.order is not None:
            if (self.cfg.protective and plan.order.opens and self.book.position(symbol) != 0
                    and not self.brackets.is_protected(symbol)):
                reason = "PROTECTIVE_PENDING"  # no new exposure until the stop is confirmed
            else:
                self.place(plan.order)
        if self.cfg.protective and not self.kill.halted:
            self.brackets.work(symbol, None if target is None else target.stop_price)
        return reason

    # -- control doors -------------------------------------------------------------------------------
    def process_controls(self) -> None:
        """The kill-switch doors of the ETF side (signed command files in the state folder), same handler."""
        secret = secret_from_env(self.environ)
        result = process_control_folder(self.state_dir, secret, self.nonces, self.now(), self._apply_command)
        self.audit_events(result.events)
        standing = set(result.alerts)
        if secret is None:
            standing.add("control door: GRIDBRIDGE_CONTROL_SECRET is not set; signed commands cannot be verified")
        # Standing conditions (a linked control/ folder, no secret) are audited once when they start and once
        # when they end, not every cycle.
        for alert in sorted(standing - self.door_alerts):
            self.note(AuditCode.EXEC_CONTROL_DOOR_ALERT, alert[:300], None, Severity.ERROR)
        for alert in sorted(self.door_alerts - standing):
            self.note(AuditCode.EXEC_CONTROL_DOOR_CLEARED, alert[:300], None)
        self.door_alerts = standing

    def _apply_command(self, command: ControlCommand) -> str | None:
        outcome = handle_command(self.kill, self.risk, command, self.now(), self.risk_cfg, "file")
        self.audit_events(outcome.events)
        if not outcome.accepted:
            return outcome.refused
        self.kill, self.risk = outcome.state, outcome.risk
        if KillAction.STOP_NEW_ORDERS in outcome.actions:
            self._record({"k": "halt", "on": True, "t": self.now_ms()})
        if KillAction.RESUME_ORDERS in outcome.actions:
            self._record({"k": "halt", "on": False, "t": self.now_ms()})
        if KillAction.CANCEL_OPEN_ORDERS in outcome.actions:
            for order in list(self.book.live()):
                self.cancel(order, "FORCE_HALT")
        return None

    # -- close-all and status ------------------------------------------------------------------------
    def close_all(self, max_cycles: int = 20, wait: Callable[[], None] | None = None) -> dict[str, str]:
        """Economic full close: cancel every working order, then reduce every position to zero (market
        orders, reduce-only); a remainder under the venue minimum is dust and gets DUST_LOCKED."""
        for order in list(self.book.live()):
            self.cancel(order, "CLOSE_ALL")
        cfg = self.cfg
        self.cfg = cfg.model_copy(update={"order_type": "market", "min_interval_ms": 0, "hysteresis": Decimal(0)})
        try:
            flat = {s: TargetPosition(s, ZERO, None, "CLOSE_ALL") for s in cfg.symbols}
            reasons: dict[str, str] = {}
            for _ in range(max_cycles):
                reasons = self.cycle(flat)
                if all(r in ("AT_TARGET", "EXEC_DUST_POSITION_STUCK") for r in reasons.values()) and not self.book.live():
                    break
                if wait is not None:
                    wait()
            return reasons
        finally:
            self.cfg = cfg

    def status(self) -> dict[str, Any]:
        rec = self.last_reconcile
        return {
            "ts": self.clock.now().astimezone(timezone.utc).isoformat(),
            "venue": getattr(self.venue, "name", "?"),
            "risk_state": self.risk.state.value,
            "risk": snapshot_to_dict(self.risk),
            "halted": self.kill.halted,
            "event_window": self.event_window,
            "downgraded": self.downgraded,
            "equity": None if self.equity is None else str(self.equity),
            "positions": {s: str(q) for s, q in sorted(self.book.positions.items())},
            "venue_positions": {s: str(p.qty) for s, p in sorted(self.venue_positions.items())},
            "ledger": self.ledger_view(),
            # Symbols whose ledger quantity (from the venue's fills) differs from the venue's position: fills
            # not read yet (a refused read), or a trade the fills do not show; empty when the books tie.
            "ledger_untied": sorted(s for s in self.cfg.symbols if self.book.ledger.position(s).qty !=
                                    (self.venue_positions[s].qty if s in self.venue_positions else ZERO)),
            "leverage": {s: str(v) for s, v in sorted(self.leverage.items())},
            "dust_locked": sorted(self.risk.dust_locked),
            "orders": [
                {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side, "qty": str(o.qty),
                 "filled": str(o.filled), "price": None if o.price is None else str(o.price),
                 "state": o.state.value, "purpose": o.purpose}
                for o in self.book.live()
            ],
            "last_reconcile": None if rec is None else {
                "ts_ms": rec.ts_ms, "clean": rec.clean, "severity": rec.positions.severity.value,
                "orphans": list(rec.orphans), "duplicates": list(rec.duplicates)},
            "cycles": self.cycles,
            "reducing": self.risk.state in REDUCING_STATES,
        }

    def publish_status(self) -> None:
        """``status.json``, atomically, by this one writer (``crypto status`` reads it). An output of its own:
        a failed write (disk full, a folder in its place) is audited once and cleared once, and the loop goes
        on (the journal, not this file, is what the engine needs to trade)."""
        try:
            atomic_write_json(self.state_dir / STATUS_FILE, self.status())
        except OSError as exc:
            if not self.status_write_failed:
                self.status_write_failed = True
                self.note(AuditCode.EXEC_STATUS_WRITE_FAILED, f"{STATUS_FILE} not written: {exc.strerror or exc}",
                          None, Severity.ERROR)
            return
        if self.status_write_failed:
            self.status_write_failed = False
            self.note(AuditCode.EXEC_STATUS_WRITE_RECOVERED, f"{STATUS_FILE} written again", None)


def _risk_inputs(account: AccountState, exposure: Decimal, event_window: bool, rec: ReconcileResult | None,
                 positions: Mapping[str, Position], downgraded: bool) -> RiskInputs:
    """The risk kernel's inputs, cross-margin positions and a degraded pace included."""
    cross = frozenset(s for s, p in positions.items() if p.margin_mode == "cross")
    return RiskInputs(account=account, exposure=exposure, event_window=event_window, reconcile=rec,
                      cross_margin_symbols=cross, exec_degraded=downgraded)
