"""The executor process: a thin loop around the pure pipeline, the ExecutorState and the broker.

Each turn: read quotes (and let a simulated venue match), fold broker events in, judge new signals,
sweep unknown outcomes and old orders, publish ``shared_pool.json`` and ``order_result.json``. Every state
change is a journal record written (fsync) before it is applied or acted on, so a kill -9 at any point is
followed by a restart that neither loses a signal nor sends an order twice: an order whose send was not
confirmed is looked up by its client_order_id before anything else happens to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from core.events import AuditCode, Severity
from core.execution.rate_limit import TokenBucket, acquire
from core.journal import Journal, JournalCorrupt
from settings.config import GridbridgeConfig
from shared_schema.clock import Clock, SystemClock
from shared_schema.failpoints import failpoint
from shared_schema.models import QUOTE_FILE, SIGNAL_FILE, Reason, ResultStatus
from shared_schema.watch import ChangeWatcher, WatchMode, run_turns
from windows.audit_map import AuditEffect, OrderOutcome, RiskMarked
from windows.brokers.protocol import Broker, OrderRequest, OrderUpdate, TemporaryBrokerError
from windows.executor_state import ExecutorState, ReplayDiverged
from windows.intake import Intake
from windows.journal_records import (
    HaltRecord,
    InputRecord,
    JournalRecord,
    ResultRecord,
    SentRecord,
    SnapshotRecord,
    UpdateRecord,
    as_record,
)
from windows.lease import LeaseLost, LeaseRefused, LeaseSettings, SharedLease, Verdict, claimant_for
from windows.market_view import MarketView
from windows.pipeline import ENTRY_FAULT, fee_model
from windows.publisher import AlertBoard, Publisher
from windows.risk_actions import RiskActions
from windows.risk_shell import ExecutorRisk, RiskSettings
from windows.sweeper import Sweeper
from windows.vault import GlobalVault, VaultLimits

log = logging.getLogger("gridbridge.executor")

JOURNAL_FILE = "executor_journal.jsonl"
LOCK_FILE = "executor.lock"
ENTRY_RECORD_KINDS = frozenset({"signal", "result", "input", "alloc", "intent"})
"""The records the per-entry fault barrier covers (``Intake.process_signals``), live and at replay."""


class AlreadyRunning(RuntimeError):
    """Another executor holds this state dir."""


@dataclass
class LoopStats:
    """Counters of the loop's own limits (tests read them)."""

    rate_limited: int = 0  # signal files left for a later turn because the venue's order rate was spent


def build_vault(config: GridbridgeConfig) -> GlobalVault:
    v = config.vault
    return GlobalVault(VaultLimits.from_yuan(v.physical_pool, v.nominal_caps, v.reserve_ratio), fee_model(config))


class Executor:
    """The executor process: lifecycle (lock, lease, replay, recovery), the turn, and the journal.

    The turn's work is done by rooms that share this object's state: ``market`` (quotes and the market
    clock), ``intake`` (the signal file), ``sweeper`` (open-order upkeep and compaction), ``risk_actions``
    (what the risk state demands) and ``publisher`` (the shared files); ``alerts`` is the operator's board.
    """

    def __init__(
        self,
        shared_dir: Path,
        state_dir: Path,
        config: GridbridgeConfig,
        broker: Broker,
        wall_clock: Clock | None = None,
        watch_mode: WatchMode = "auto",
        journal_fsync: bool = True,
    ) -> None:
        self.shared_dir = Path(shared_dir)
        self.state_dir = Path(state_dir)
        self.config = config
        self.broker = broker
        self.wall_clock = wall_clock or SystemClock()
        self.watch_mode = watch_mode
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.state_dir / LOCK_FILE))
        self.state = ExecutorState(build_vault(config), config.executor.result_retention)
        self.journal = Journal(self.state_dir / JOURNAL_FILE, fsync=journal_fsync)
        self._dirty = True  # order_result.json is due: something it shows changed since the last write
        self.alerts = AlertBoard(self.wall_clock, self._mark_dirty)
        self.seen_inputs: set[str] = set()
        # seen_inputs in the order they were recorded (oldest first): what the bound keeps is the keys of
        # junk still in the signal file plus the SEEN_INPUTS_RECENT newest (``Sweeper._bound_seen_inputs``).
        self._input_order: dict[str, None] = {}
        self.stats = LoopStats()
        self.connected = True
        self.watcher: ChangeWatcher | None = None
        self.risk = ExecutorRisk(self.shared_dir, self.state_dir, RiskSettings(
            config=config.risk, include_base_positions=config.executor.include_base_positions_in_risk,
            control_max_ttl=timedelta(seconds=config.executor.control_max_ttl_s)))
        self.lease: SharedLease | None = None  # the shared folder's lease, claimed in start()
        self.lease_lost = False
        self.replay_skipped = 0  # journal records of signal entries that raised on apply at start-up (skipped)
        ex = config.executor
        self._bucket = TokenBucket(Decimal(ex.order_burst), Decimal(str(ex.max_orders_per_s)))
        # The rooms keep references to state, journal, broker, risk, config and clock: none is ever replaced.
        self.market = MarketView(self)
        self.intake = Intake(self)
        self.sweeper = Sweeper(self)
        self.risk_actions = RiskActions(self)
        self.publisher = Publisher(self)

    # --------------------------------------------------------------------------------------- lifecycle

    def start(self, take_over: bool = False) -> None:
        """Take the state folder's lock, then the shared folder's lease (``LeaseRefused`` when another
        executor owns it; ``take_over`` replaces a stale lease), then replay and recover."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise AlreadyRunning(
                f"another executor is already running on state dir {self.state_dir} "
                f"(lock {self.state_dir / LOCK_FILE} is held); refusing to start a second one"
            ) from None
        doors = self._disabled_doors()
        try:
            claimed = self._claim_lease(take_over, doors)
        except LeaseRefused:
            self._lock.release()
            raise
        left_open: list[str] = []
        try:
            for number, record in enumerate(self.journal.replay(), 1):
                try:
                    self._replay_one(record, left_open)
                except (KeyError, TypeError, ValueError) as exc:  # a record this version cannot apply
                    raise JournalCorrupt(f"{self.journal.path}: record {number} cannot be replayed ({exc}); "
                                         "the file is left as it is") from exc
        except JournalCorrupt:
            self._abandon_start()
            raise
        self.risk.load()
        self.risk.follow_halt(self.state.halted, self.now())  # the journal's halt is the one truth
        self._close_replay_faults(left_open)
        self.publisher.resume_seqs()
        self.broker.start()
        self.market.refresh()
        self._announce_start(claimed, doors)
        self.sweeper.recover_open_orders()
        self.risk_actions.reconcile(force=True)
        self.watcher = ChangeWatcher(
            [self.shared_dir / SIGNAL_FILE, self.shared_dir / QUOTE_FILE], self.watch_mode, self.config.executor.poll_interval_s
        )
        self.publish(force=True)
        log.info("executor started: %d journal records replayed, %d open orders",
                 self.state.records_applied, len(self.state.open_orders()))

    def stop(self) -> None:
        if self._lock.is_locked:
            if not self.lease_lost:  # a lost lease's files belong to the new owner now
                self.publish(force=True)
            self.risk.close(self.market.market_now)
        if self.lease is not None and not self.lease_lost:
            self.lease.release()
        if self.watcher is not None:
            self.watcher.close()
        self.broker.stop()
        self.journal.close()
        if self._lock.is_locked:
            self._lock.release()

    def _abandon_start(self) -> None:
        """A start that cannot rebuild its state publishes nothing and lets go of the lease and the lock, so the
        operator can repair the journal and start again."""
        if self.lease is not None:
            self.lease.release()
        self.journal.close()
        self._lock.release()

    def run(self, max_seconds: float | None = None, stop_flag: Any = None) -> None:
        """Loop until ``stop_flag.is_set()`` or ``max_seconds`` of wall time (a shell concern)."""
        assert self.watcher is not None
        run_turns(self.run_once, self.watcher, self.config.executor.poll_interval_s * 4, max_seconds, stop_flag)
    # ----------------------------------------------------------------------------------------- lease

    def _disabled_doors(self) -> list[str]:
        import signal as os_signal

        from core.control.doors import disabled_doors
        from core.control.http_door import token_from_env

        return disabled_doors(self.risk.secret is not None, self.config.executor.control_http_port,
                              token_from_env(os.environ) is not None, hasattr(os_signal, "SIGUSR1"))

    def _claim_lease(self, take_over: bool, doors: list[str]) -> Any:
        ex = self.config.executor
        settings = LeaseSettings(ex.lease_renew_interval_s, ex.lease_stale_after_s, ex.lease_settle_s)
        lease = SharedLease(self.shared_dir, claimant_for(self.shared_dir, self.state_dir), self.wall_clock,
                            settings, disabled_doors=tuple(doors))
        claimed = lease.acquire(take_over)
        self.lease = lease
        return claimed

    def _announce_start(self, claimed: Any, doors: list[str]) -> None:
        """Audit how the lease was taken (a take-over always) and warn about every operator door that is off."""
        self.risk.alert_sink = self.alerts.post  # the control door's alerts (pills, links) reach the operator
        if claimed.verdict in (Verdict.TAKE_OVER, Verdict.RECLAIM):
            code = AuditCode.EXECUTOR_LEASE_TAKEN_OVER if claimed.verdict is Verdict.TAKE_OVER \
                else AuditCode.EXECUTOR_LEASE_RECLAIMED
            prev = claimed.previous
            self.risk.emit(code, self.now(), claimed.message, severity=Severity.WARN,
                           previous_owner=prev.owner_id if prev else None, previous_host=prev.host if prev else None,
                           previous_pid=prev.pid if prev else None, wall=self.wall_clock.now().isoformat())
            if claimed.verdict is Verdict.TAKE_OVER:
                self.alerts.post(f"lease: {claimed.message}")
        for door in doors:
            self.alerts.post(f"control door off: {door}")

    def _renew_lease(self) -> None:
        """Renew the shared folder's lease every ``lease_renew_interval_s`` (wall clock); a lost lease
        stops this executor before it trades again (``LeaseLost``)."""
        lease = self.lease
        if lease is None or not lease.due():
            return
        ok = lease.renew()
        for note in lease.notes:
            self.alerts.post(f"lease: {note}")
        lease.notes.clear()
        if ok:
            return
        self.lease_lost = True
        message = f"lease LOST, stopping: {lease.lost_reason}"
        self.alerts.post(message)
        self.risk.emit(AuditCode.EXECUTOR_LEASE_LOST, self.now(), lease.lost_reason, severity=Severity.CRITICAL,
                       wall=self.wall_clock.now().isoformat())
        self.risk.flush()
        raise LeaseLost(message)

    # ------------------------------------------------------------------------------------------- turn

    def run_once(self) -> None:
        self._renew_lease()
        self.market.refresh()
        self.sweeper.drain_broker()
        self.risk_actions.control()
        self.risk_actions.evaluate()
        self.intake.process_signals()
        self.sweeper.drain_broker()
        self.sweeper.sweep()
        self.risk.flush()
        self.publish()

    def _apply(self, record: JournalRecord | Mapping[str, Any]) -> tuple[AuditEffect, ...]:
        """Apply one record (a line from disk is decoded first); the audit effects it causes."""
        rec = as_record(record)
        effects = self.state.apply(rec) or ()  # () from a stand-in for ``apply`` that returns nothing (tests)
        if isinstance(rec, InputRecord):
            self.seen_inputs.add(rec.key)
            self._input_order[rec.key] = None
        elif isinstance(rec, SnapshotRecord):
            self._input_order = dict.fromkeys(rec.inputs or ())
            self.seen_inputs = set(self._input_order)
        self._dirty = True
        return effects

    def _replay_one(self, record: dict[str, Any], left_open: list[str]) -> None:
        """Apply one journal record at start-up behind the live loop's per-entry fault barrier.

        A record of a signal entry (``ENTRY_RECORD_KINDS``) that raises is skipped, counted
        (``replay_skipped``), logged and alerted: it raised the same way in the live loop, which then
        journaled the signal's ENTRY_FAULT result (or, after a crash in between, ``_close_replay_faults``
        writes it). A ``vault replay diverged`` (``ReplayDiverged``) and a failing record of any other kind
        (a snapshot, a broker report, ...) still stop start-up."""
        try:
            self._apply(record)
        except ReplayDiverged:
            raise
        except Exception as exc:
            if record.get("k") not in ENTRY_RECORD_KINDS:
                raise
            self.replay_skipped += 1
            sid = record.get("id") or self.state.order_owner.get(record.get("coid", ""), "")
            message = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("journal replay: a %s record failed to apply; skipped", record.get("k"))
            self.alerts.post(f"journal replay: the {record.get('k')} record of signal {sid or '?'} failed to apply "
                        f"({message}); skipped")
            if sid:
                left_open.append(sid)

    def _close_replay_faults(self, left_open: list[str]) -> None:
        """A signal whose record was skipped at replay and that the journal left without a final result or an
        order (a crash between the failing record and its fault record) is closed once, as the live loop would."""
        for sid in dict.fromkeys(left_open):
            entry = self.state.signals.get(sid)
            if entry is None or entry.result.status.is_final or any(o.signal_id == sid for o in self.state.orders.values()):
                continue
            self.alerts.post(f"signal {sid}: a journal record failed to apply at replay; rejected INVALID_SIGNAL ENTRY_FAULT")
            self._commit(ResultRecord(signal_id=sid, status=ResultStatus.REJECTED, reason=Reason.INVALID_SIGNAL,
                                      detail=ENTRY_FAULT, message="a journal record of this signal failed to apply at replay",
                                      at=self.now()))

    def _commit(self, record: JournalRecord | Mapping[str, Any]) -> None:
        """Journal then apply, then write the audit the record caused. Durability is grouped:
        ``journal.sync()`` runs before every broker call and every publish, so nothing outside this process
        ever sees a state the journal could lose; and after a halt record, the one halted truth, which the
        risk snapshot and the kill switch then follow (``follow_halt``)."""
        line = dict(record) if not isinstance(record, JournalRecord) else record.encode()
        self.journal.append(line, sync=False)
        effects = self._apply(record)
        if isinstance(record, HaltRecord) or line.get("k") == HaltRecord.kind:
            self.journal.sync()  # before the kill-switch command's audit, so a restart never finds only that
            self.risk.follow_halt(self.state.halted, self.now())
        self._audit(effects)

    def now(self) -> datetime:
        """The market clock: the newest quote time; the wall clock only before any quote exists."""
        return self.market.market_now or self.wall_clock.now()

    def _mark_dirty(self) -> None:
        """Something ``order_result.json`` shows changed (an alert): the result file is due."""
        self._dirty = True

    # ----------------------------------------------------------------------------------------- venue

    def _take_order_token(self, wall: datetime) -> bool:
        """One token of the venue's order rate (``executor.order_burst`` / ``max_orders_per_s``), if any is left."""
        grant = acquire(self._bucket, wall)
        self._bucket = grant.bucket
        return grant.granted

    def _send(self, client_order_id: str) -> None:
        """Place one journaled intent at the venue and journal its answer (UNKNOWN when the call failed)."""
        live = self.state.orders[client_order_id]
        order = live.record
        request = OrderRequest(client_order_id, order.symbol, order.side, order.shares, Decimal(order.price))
        try:
            outcome = self.broker.place_limit_order(request)
        except TemporaryBrokerError as exc:
            self._commit(SentRecord(client_order_id=client_order_id, status="UNKNOWN", message=str(exc), at=self.now()))
            return
        failpoint("executor.after_send")  # at the venue, the journal does not know yet
        self._commit(SentRecord(client_order_id=client_order_id, status=outcome.status.value,
                                broker_order_id=outcome.broker_order_id, message=outcome.message, at=self.now()))

    # --------------------------------------------------------------------------------------- broker

    def _fold_update(self, event: OrderUpdate) -> None:
        live = self.state.orders.get(event.client_order_id)
        if live is None:
            self.alerts.post(f"broker reported an order we did not send: {event.client_order_id} {event.code} {event.side}")
            return
        rec = live.record
        # New money: more shares filled, or the broker's commission for fills already folded (it replaces
        # the vault's estimate, also after the order ended).
        grows = event.filled_shares > rec.filled_shares or event.fees_fen > rec.fees_fen
        if not grows and rec.state.is_terminal and event.state is not rec.state:
            # e.g. CANCELLED reported for a FILLED order: refused (the table has no way out of a
            # terminal state) and audited, never applied.
            self.risk.emit(AuditCode.OMS_ILLEGAL_TRANSITION, self.now(),
                           f"{event.client_order_id}: {rec.state.value} -> {event.state.value} refused",
                           symbol=rec.symbol, severity=Severity.WARN)
            return
        if not grows and (event.state is rec.state or rec.state.is_terminal) and not live.outcome_unknown:
            return  # a duplicate or a stale report: nothing new
        self._commit(UpdateRecord(client_order_id=event.client_order_id, state=event.state,
                                  filled_shares=event.filled_shares, filled_value_fen=event.filled_value_fen,
                                  fees_fen=event.fees_fen, broker_order_id=event.broker_order_id,
                                  message=event.message, at=self.now()))

    def _audit(self, effects: tuple[AuditEffect, ...]) -> None:
        """Write the audit a committed record caused (``windows.audit_map``; never on replay): an order
        outcome goes to the execution-health tracker first, an order event carries the risk marks of now."""
        for effect in effects:
            if isinstance(effect, OrderOutcome):
                for note in self.risk.record_outcome(effect.symbol, effect.at, effect.rejected, effect.slippage_bps):
                    self.alerts.post(note)
            elif isinstance(effect, RiskMarked):
                snap = self.risk.snapshot
                marks = {"risk_state": self.risk.state_name,
                         "risk_equity": snap.equity if snap.peak_equity > 0 else None,
                         "drawdown": round(float(snap.drawdown), 6), "leverage": "1", "max_leverage": "1"}
                self.risk.write([replace(effect.event, data={**effect.event.data, **marks})])
            else:
                self.risk.write([effect])

    # -------------------------------------------------------------------------------------- publish

    def publish(self, force: bool = False) -> None:
        """Write the shared files that are due (``Publisher.publish``)."""
        self.publisher.publish(force)

    def active_alerts(self) -> dict[str, str]:
        """The conditions raised and not yet cleared (key -> published alert)."""
        return self.alerts.active()


def default_state_dir(shared_dir: Path) -> Path:
    """State belongs on the executor's own disk: ``$GRIDBRIDGE_STATE_DIR`` or a folder beside the share."""
    override = os.environ.get("GRIDBRIDGE_STATE_DIR")
    if override:
        return Path(override)
    shared = Path(shared_dir).resolve()
    return shared.parent / (shared.name + "_executor_state")
