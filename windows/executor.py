"""The executor process: a thin loop around the pure pipeline, the ExecutorState and the broker.

Each turn: read quotes (and let a simulated venue match), fold broker events in, judge new signals,
sweep unknown outcomes and old orders, publish ``shared_pool.json`` and ``order_result.json``. Every state
change is a journal record written (fsync) before it is applied or acted on, so a kill -9 at any point is
followed by a restart that neither loses a signal nor sends an order twice: an order whose send was not
confirmed is looked up by its client_order_id before anything else happens to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from core.control.file_door import is_link
from core.control.killswitch import KillAction
from core.events import AuditCode, Severity
from core.execution.rate_limit import TokenBucket, acquire
from core.journal import SNAPSHOT_KIND, Journal
from core.oms.lookups import LookupPolicy, LookupTrack
from core.oms.order_fsm import OrderRecord, OrderState
from core.oms.reconcile import reconcile
from core.risk.engine import cooldown_exposure_target
from settings.config import GridbridgeConfig
from shared_schema.atomic_io import (
    ModelFileReader,
    ReadStatus,
    WriteFailed,
    atomic_write_bytes,
    read_seq,
)
from shared_schema.clock import Clock, SystemClock
from shared_schema.failpoints import failpoint
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    SIGNAL_ID_PATTERN,
    Allocation,
    PoolFile,
    QuoteFile,
    Reason,
    ReductionStatus,
    ResultFile,
    ResultStatus,
    symbol_key,
)
from shared_schema.safe_json import JSON_INVALID, JsonRefused
from shared_schema.signal_io import entry_signal_id, read_raw_entries
from shared_schema.types import CST, fen_to_yuan
from shared_schema.watch import ChangeWatcher, WatchMode, run_turns
from windows.brokers.protocol import (
    Broker,
    ConnectionEvent,
    OrderRequest,
    OrderUpdate,
    TemporaryBrokerError,
)
from windows.executor_state import ExecutorState, LiveOrder, ReplayDiverged
from windows.lease import LeaseLost, LeaseRefused, LeaseSettings, SharedLease, Verdict, claimant_for
from windows.market_rules import is_cancel_allowed
from windows.pipeline import ENTRY_FAULT, MarketContext, decide, fee_estimate, fee_model, payload_hash
from windows.reduction import (
    Attempt,
    Book,
    GridLot,
    Holding,
    ReductionPlan,
    is_reduction_id,
    next_attempt,
    plan_reduction,
    reduction_id,
    reduction_mode,
    reduction_signal,
)
from windows.risk_shell import ExecutorRisk, RiskSettings
from windows.snapshot import SNAPSHOT_VERSION
from windows.vault import GlobalVault, VaultLimits

log = logging.getLogger("gridbridge.executor")

JOURNAL_FILE = "executor_journal.jsonl"
LOCK_FILE = "executor.lock"
LOST_AFTER_LOOKUPS = 3  # misses spread over executor.unknown_outcome_lookup_s (core.oms.lookups)
BUY_FORBIDDING_STATES = frozenset({"COOLDOWN", "FUSE", "REDUCE_ONLY"})
ENTRY_RECORD_KINDS = frozenset({"signal", "result", "input", "alloc", "intent"})
"""The records the per-entry fault barrier covers (``_process_signals``), live and at replay."""


class AlreadyRunning(RuntimeError):
    """Another executor holds this state dir."""


@dataclass
class LoopStats:
    signals_seen: int = 0
    orders_sent: int = 0
    events_applied: int = 0
    rate_limited: int = 0


def build_vault(config: GridbridgeConfig) -> GlobalVault:
    v = config.vault
    return GlobalVault(VaultLimits.from_yuan(v.physical_pool, v.nominal_caps, v.reserve_ratio), fee_model(config))


class Executor:
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
        self.quotes = ModelFileReader(self.shared_dir / QUOTE_FILE, QuoteFile)
        self.alerts: deque[str] = deque(maxlen=50)
        self._last_alert = ""
        self._conditions: dict[str, _Condition] = {}  # alert key -> the condition while it lasts
        self.seen_inputs: set[str] = set()
        # seen_inputs in the order they were recorded (oldest first): what the bound keeps is the keys of
        # junk still in the signal file plus the SEEN_INPUTS_RECENT newest (``_bound_seen_inputs``).
        self._input_order: dict[str, None] = {}
        self._present_inputs: frozenset[str] = frozenset()  # input keys of junk in order_signal.json as last read
        self.stats = LoopStats()
        self._market_now: datetime | None = None
        self._signal_bytes: bytes | None = None
        self._signal_stat: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) of the last read
        self._signal_read_at: datetime | None = None
        self._present_ids: frozenset[str] = frozenset()  # signal ids in order_signal.json as last read
        self._compact_retry_at = 0  # after a failed compaction: the tail length at which to try again
        self._lookups: dict[str, LookupTrack] = {}  # coid -> what its lookups found so far
        self.lookup_policy = LookupPolicy(
            LOST_AFTER_LOOKUPS, timedelta(seconds=config.executor.unknown_outcome_lookup_s))
        self._pool_seq = 0
        self._result_seq = 0
        self._dirty = True
        self._published_at = 0.0
        self._unpublished: set[str] = set()  # files whose last write failed: retried every turn
        self._pool_written: PoolFile | None = None  # content of the last pool file written (_pool_content)
        self._pool_written_at: datetime | None = None  # wall time of that write (the heartbeat)
        self._result_json: dict[str, tuple[Any, str]] = {}
        self.connected = True
        self.watcher: ChangeWatcher | None = None
        self.risk = ExecutorRisk(self.shared_dir, self.state_dir, RiskSettings(
            config=config.risk, include_base_positions=config.executor.include_base_positions_in_risk,
            control_max_ttl=timedelta(seconds=config.executor.control_max_ttl_s)))
        self.lease: SharedLease | None = None  # the shared folder's lease, claimed in start()
        self.lease_lost = False
        self._risk_dirty = True
        self._reduce_due = True  # plan a forced reduction on this turn (new quotes, risk change, start)
        # Cancels held back while the order's exchange refuses cancels (coid -> why); sent when it accepts.
        self._deferred_cancels: dict[str, str] = {}
        self._reduction: ReductionStatus | None = None  # the running forced reduction, as published
        self._risk_seen = ""  # the risk state the last reducing-state check saw
        self._last_reconcile: datetime | None = None
        self._baseline: dict[str, int] | None = None
        self._replaying = False
        self.replay_skipped = 0  # journal records of signal entries that raised on apply at start-up (skipped)
        ex = config.executor
        self._bucket = TokenBucket(Decimal(ex.order_burst), Decimal(str(ex.max_orders_per_s)))

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
        self._replaying = True
        left_open: list[str] = []
        for record in self.journal.replay():
            self._replay_one(record, left_open)
        self._replaying = False
        self.state.illegal_transitions.clear()  # audited when they first happened
        self.risk.load()
        self._close_replay_faults(left_open)
        self._pool_seq = read_seq(self.shared_dir / POOL_FILE)
        self._result_seq = read_seq(self.shared_dir / RESULT_FILE)
        self.broker.start()
        self._refresh_quotes()
        self._announce_start(claimed, doors)
        self._recover_open_orders()
        self._reconcile(force=True)
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
            self.risk.close(self._market_now)
        if self.lease is not None and not self.lease_lost:
            self.lease.release()
        if self.watcher is not None:
            self.watcher.close()
        self.broker.stop()
        self.journal.close()
        if self._lock.is_locked:
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
        self.risk.alert_sink = self._alert  # the control door's alerts (pills, links) reach the operator
        if claimed.verdict in (Verdict.TAKE_OVER, Verdict.RECLAIM):
            code = AuditCode.EXECUTOR_LEASE_TAKEN_OVER if claimed.verdict is Verdict.TAKE_OVER \
                else AuditCode.EXECUTOR_LEASE_RECLAIMED
            prev = claimed.previous
            self.risk.emit(code, self.now(), claimed.message, severity=Severity.WARN,
                           previous_owner=prev.owner_id if prev else None, previous_host=prev.host if prev else None,
                           previous_pid=prev.pid if prev else None, wall=self.wall_clock.now().isoformat())
            if claimed.verdict is Verdict.TAKE_OVER:
                self._alert(f"lease: {claimed.message}")
        for door in doors:
            self._alert(f"control door off: {door}")

    def _renew_lease(self) -> None:
        """Renew the shared folder's lease every ``lease_renew_interval_s`` (wall clock); a lost lease
        stops this executor before it trades again (``LeaseLost``)."""
        lease = self.lease
        if lease is None or not lease.due():
            return
        ok = lease.renew()
        for note in lease.notes:
            self._alert(f"lease: {note}")
        lease.notes.clear()
        if ok:
            return
        self.lease_lost = True
        message = f"lease LOST, stopping: {lease.lost_reason}"
        self._alert(message)
        self.risk.emit(AuditCode.EXECUTOR_LEASE_LOST, self.now(), lease.lost_reason, severity=Severity.CRITICAL,
                       wall=self.wall_clock.now().isoformat())
        self.risk.flush()
        raise LeaseLost(message)

    # ------------------------------------------------------------------------------------------- turn

    def run_once(self) -> None:
        self._renew_lease()
        self._refresh_quotes()
        self._drain_broker()
        self._control()
        self._evaluate_risk()
        self._process_signals()
        self._drain_broker()
        self._sweep()
        self.risk.flush()
        self.publish()

    def _apply(self, record: dict[str, Any]) -> None:
        self.state.apply(record)
        if record["k"] == "input":
            self.seen_inputs.add(record["key"])
            self._input_order[record["key"]] = None
        elif record["k"] == SNAPSHOT_KIND:
            self._input_order = dict.fromkeys(record.get("inputs", ()))
            self.seen_inputs = set(self._input_order)
        self._dirty = True

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
            sid = record.get("id") or self.state.coid_owner.get(record.get("coid", ""), "")
            message = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("journal replay: a %s record failed to apply; skipped", record.get("k"))
            self._alert(f"journal replay: the {record.get('k')} record of signal {sid or '?'} failed to apply "
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
            self._alert(f"signal {sid}: a journal record failed to apply at replay; rejected INVALID_SIGNAL ENTRY_FAULT")
            self._commit({"k": "result", "id": sid, "status": ResultStatus.REJECTED.value,
                          "reason": Reason.INVALID_SIGNAL.value, "detail": ENTRY_FAULT,
                          "message": "a journal record of this signal failed to apply at replay",
                          "t": self.now().isoformat()})

    def _commit(self, record: dict[str, Any]) -> None:
        """Journal then apply. Durability is grouped: ``journal.sync()`` runs before every broker call
        and every publish, so nothing outside this process ever sees a state the journal could lose."""
        self.journal.append(record, sync=False)
        before = self._order_state(record)
        self._apply(record)
        self._audit(record, before)

    def now(self) -> datetime:
        """The market clock: the newest quote time; the wall clock only before any quote exists."""
        return self._market_now or self.wall_clock.now()

    def _refresh_quotes(self) -> None:
        """Read the quotes; move the market clock; judge data health on every turn, not only on new files.

        A quote (or the whole file) stamped further ahead of the wall clock than ``max_quote_ahead_s`` is
        refused and alerted: the market clock takes the newest *accepted* quote time, so one bad stamp never
        moves it forward for good. Data health (``data_ok``) is the age of the last good file on the wall
        clock; a change of it re-evaluates the risk state in the same turn.
        """
        outcome = self.quotes.read()
        if outcome.is_degraded and outcome.error:
            self._alert(f"quotes: {outcome.error}")
        model = outcome.model
        if model is None:
            return
        fresh = outcome.status is ReadStatus.FRESH
        wall = self.wall_clock.now()
        file_ok = self._quote_time_ok(model.updated_at, wall)
        if not file_ok and fresh:
            self._alert(f"quotes: file stamped {model.updated_at.isoformat()}, ahead of the wall clock "
                        f"{wall.isoformat()} by more than {self.config.executor.max_quote_ahead_s:.0f} s; refused")
        accepted = {}
        for code, quote in model.quotes.items():
            if self._quote_time_ok(quote.quote_time, wall):
                accepted[code] = quote
            elif fresh:
                self._alert(f"quotes: {code} quote time {quote.quote_time.isoformat()} is ahead of the wall clock "
                            f"{wall.isoformat()} by more than {self.config.executor.max_quote_ahead_s:.0f} s; refused")
        if file_ok and accepted:
            newest = max(q.quote_time for q in accepted.values())
            if self._market_now is None or newest > self._market_now:
                self._market_now = newest
        data_ok = file_ok and not self._quotes_stale(model)
        if data_ok is not self.risk.data_ok:
            self.risk.data_ok = data_ok
            self._risk_dirty = True
        if fresh and file_ok:
            if len(accepted) != len(model.quotes):
                model = model.model_copy(update={"quotes": accepted})
            self.broker.on_market(model)
            self._risk_dirty = True
            self._reduce_due = True

    # -------------------------------------------------------------------------------------- signals

    def _process_signals(self) -> None:
        data = self._read_signal_file()
        if data is None or data == self._signal_bytes:
            return
        try:
            entries, _seq = read_raw_entries(data)
        except JsonRefused as exc:
            if exc.code != JSON_INVALID:
                self._refuse_signal_file(data, exc)
                return
            # Could be a writer mid-way on a folder without atomic rename: keep the last good view, retry.
            self._alert(f"{SIGNAL_FILE} unreadable ({exc}); keeping the last good view")
            return
        except ValueError as exc:
            self._alert(f"{SIGNAL_FILE} unreadable ({exc}); keeping the last good view")
            return
        self._signal_bytes = data
        present = frozenset(sid for sid in map(entry_signal_id, entries) if sid is not None)
        self._present_inputs = _junk_keys(entries, data)
        if present != self._present_ids:
            self._present_ids = present
            self._dirty = True  # what order_result.json keeps depends on what the signal file holds
        # A node may have decided on a quote newer than the one we read at the top of this turn.
        self._refresh_quotes()
        ctx = self._market_context()
        to_send: list[str] = []
        for index, raw in enumerate(entries):
            try:
                records = decide(self.state, raw, ctx, self.config, self.seen_inputs)
            except Exception as exc:  # noqa: BLE001 - the per-entry fault barrier: one entry never stops the loop
                records = self._entry_fault_records(raw, f"{_digest(data)}:{index}", exc)
            if any(r["k"] == "intent" for r in records):
                grant = acquire(self._bucket, self.wall_clock.now())
                self._bucket = grant.bucket
                if not grant.granted:
                    # The venue's order rate is the bound: leave the rest of the file for the next turn.
                    self._signal_bytes = None
                    self.stats.rate_limited += 1
                    break
            committed: list[dict[str, Any]] = []
            try:
                for record in records:
                    self._commit(record)
                    committed.append(record)
                    if record["k"] == "signal":
                        self.stats.signals_seen += 1
                    if record["k"] == "intent":
                        to_send.append(record["coid"])
                        ctx = _reserve(ctx, record, self.config)
            except Exception as exc:  # noqa: BLE001 - same barrier for a record that fails to apply
                self._close_faulted_entry(raw, committed, exc)
        if to_send:
            # Group commit: every intent of this batch is durable before the venue hears of any of them.
            self.journal.sync()
            for coid in to_send:
                failpoint("executor.before_send")  # journaled, not yet at the venue
                self._send(coid)

    def _entry_fault_records(self, raw: Any, position: str, exc: BaseException) -> list[dict[str, Any]]:
        """The records for one entry whose judgement raised: recorded once, alerted, never met again.

        A keyed entry gets its ``signal`` record and a final REJECTED INVALID_SIGNAL / ENTRY_FAULT result,
        so its signal_id is consumed like any rejected signal (a restart replays the result, not the
        fault). An entry without a usable signal_id becomes one ``input`` rejection keyed by its payload
        hash (or, when even hashing fails, by the file's digest and its position in the file).
        """
        t = self.now().isoformat()
        message = f"{type(exc).__name__}: {exc}"[:300]
        sid = entry_signal_id(raw)
        usable = sid if sid is not None and SIGNAL_ID_PATTERN.match(sid) else None
        try:
            digest = payload_hash(raw)
        except Exception:  # noqa: BLE001 - the entry may be unprintable; its place in the file still names it
            digest = hashlib.sha256(position.encode()).hexdigest()[:32]
        if usable is not None:
            if usable in self.state.signals:
                return []  # recorded before (this fault or its earlier verdict)
            self._alert(f"signal {usable}: judging it raised {message}; rejected INVALID_SIGNAL ENTRY_FAULT")
            try:
                payload = _bounded_payload(raw)
            except Exception:  # noqa: BLE001
                payload = {"unprintable": type(raw).__name__}
            return [{"k": "signal", "id": usable, "h": digest, "sig": payload, "t": t},
                    {"k": "result", "id": usable, "status": ResultStatus.REJECTED.value,
                     "reason": Reason.INVALID_SIGNAL.value, "detail": ENTRY_FAULT, "message": message, "t": t}]
        key = f"input:{digest}"
        if key in self.seen_inputs:
            return []
        self._alert(f"signal entry at {position}: judging it raised {message}; rejected INVALID_SIGNAL ENTRY_FAULT")
        return [{"k": "input", "key": key, "h": digest, "reason": Reason.INVALID_SIGNAL.value, "detail": ENTRY_FAULT,
                 "message": message, "t": t}]

    def _close_faulted_entry(self, raw: Any, committed: list[dict[str, Any]], exc: BaseException) -> None:
        """A record of this entry failed to apply: give its signal a final result unless an order exists."""
        message = f"{type(exc).__name__}: {exc}"[:300]
        log.exception("applying a record of a signal entry failed")
        ids = [r["id"] for r in committed if r["k"] == "signal"]
        if any(r["k"] == "intent" for r in committed) or not ids:
            self._alert(f"signal entry {entry_signal_id(raw) or '?'}: a record failed to apply ({message})")
            return
        self._alert(f"signal {ids[0]}: a record failed to apply ({message}); rejected INVALID_SIGNAL ENTRY_FAULT")
        try:
            self._commit({"k": "result", "id": ids[0], "status": ResultStatus.REJECTED.value,
                          "reason": Reason.INVALID_SIGNAL.value, "detail": ENTRY_FAULT, "message": message,
                          "t": self.now().isoformat()})
        except Exception:  # noqa: BLE001 - the alert above is the record of last resort
            log.exception("could not record the fault of signal %s", ids[0])

    def _read_signal_file(self) -> bytes | None:
        """The signal file's bytes when they may have changed since the last read, else None.

        An unchanged stat signature (size, mtime_ns, inode) skips the read: a file that sits there costs a
        ``stat`` per turn, not a read and a parse (it is read again at least every SIGNAL_REREAD_S, for
        shares whose mtime is coarse). A file over ``executor.max_signal_file_bytes`` is never read: one
        alert for as long as it stays too large. A symlink (or Windows junction/reparse point) is never
        followed: the file is ``lstat``-ed, a link is refused (``_refuse_linked_signal_file``), and a path
        that turned into a link or another file while it was read is not used."""
        path = self.shared_dir / SIGNAL_FILE
        wall = self.wall_clock.now()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._clear_alert("signals:link")
            self._present_inputs = frozenset()
            if self._present_ids:
                self._present_ids = frozenset()
                self._dirty = True
            self._signal_stat = None
            return None
        except OSError as exc:
            self._alert(f"signals unreadable: {exc}", key="signals:unreadable")
            return None
        if is_link(path):
            self._refuse_linked_signal_file(st)
            return None
        self._clear_alert("signals:link")
        signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        recent = self._signal_read_at is not None and (wall - self._signal_read_at).total_seconds() < SIGNAL_REREAD_S
        if signature == self._signal_stat and self._signal_bytes is not None and recent:
            return None
        limit = self.config.executor.max_signal_file_bytes
        if st.st_size > limit:
            self._signal_stat = signature
            self._signal_read_at = wall
            self._alert(f"{SIGNAL_FILE} refused: {st.st_size} bytes is over the {limit}-byte bound; it is not read "
                        "until it shrinks", key="signals:too_large")
            return None
        self._clear_alert("signals:too_large")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._alert(f"signals unreadable: {exc}", key="signals:unreadable")
            return None
        try:
            after = os.lstat(path)
        except OSError:
            return None  # gone meanwhile: the next turn sees what is there
        if is_link(path) or (after.st_ino, after.st_dev) != (st.st_ino, st.st_dev):
            return None  # swapped (for a link?) while it was read: not used; the next turn checks again
        self._clear_alert("signals:unreadable")
        self._signal_stat = signature
        self._signal_read_at = wall
        return data

    def _refuse_linked_signal_file(self, st: os.stat_result) -> None:
        """``order_signal.json`` is a symlink: never followed (it could lead out of the shared folder). One
        alert while the link stays; one input rejection per link (journaled, so a restart does not record
        it again); the rest of the executor goes on serving."""
        self._alert(f"{SIGNAL_FILE} is a symlink or junction; it is not followed and no signal is read until it "
                    "is replaced by a regular file", key="signals:link")
        self._signal_stat = None
        key = f"input:link:{st.st_dev}:{st.st_ino}"
        if key in self.seen_inputs:
            return
        self._commit({"k": "input", "key": key, "reason": Reason.INVALID_SIGNAL.value, "detail": "SIGNAL_FILE_LINK",
                      "message": f"{SIGNAL_FILE} is a symlink; not followed", "t": self.now().isoformat()})

    def _refuse_signal_file(self, data: bytes, exc: JsonRefused) -> None:
        """A signal file that can never parse (too deep, too large): one input rejection per content, journaled
        and alerted; the file is not parsed again until it changes."""
        self._signal_bytes = data
        key = f"input:file:{_digest(data)}"
        self._present_inputs = frozenset({key})
        if key in self.seen_inputs:
            return
        self._alert(f"{SIGNAL_FILE} refused {exc.code}: {exc}; no entry of it is read until the file changes")
        self._commit({"k": "input", "key": key, "reason": Reason.INVALID_SIGNAL.value, "detail": exc.code,
                      "message": f"{SIGNAL_FILE}: {exc}"[:300], "t": self.now().isoformat()})

    def _market_context(self) -> MarketContext:
        model = self.quotes.last_good
        positions = self.broker.query_positions()
        asset = self.broker.query_asset()
        return MarketContext(
            now=self.now(),
            quotes=dict(model.quotes) if model else {},
            sellable=None if positions is None else {p.code: p.can_use_volume for p in positions},
            available_cash=None if asset is None else asset.cash,
            blocked=self.risk.check,
        )

    def _send(self, coid: str) -> None:
        live = self.state.orders[coid]
        order = live.record
        request = OrderRequest(coid, order.symbol, order.side, order.shares, Decimal(order.price))
        try:
            outcome = self.broker.place_limit_order(request)
        except TemporaryBrokerError as exc:
            self._commit({"k": "sent", "coid": coid, "status": "UNKNOWN", "msg": str(exc), "t": self.now().isoformat()})
            return
        self.stats.orders_sent += 1
        failpoint("executor.after_send")  # at the venue, the journal does not know yet
        self._commit({"k": "sent", "coid": coid, "status": outcome.status.value, "boid": outcome.broker_order_id,
                      "msg": outcome.message, "t": self.now().isoformat()})

    # --------------------------------------------------------------------------------------- broker

    def _drain_broker(self) -> None:
        for event in self.broker.drain_events():
            if isinstance(event, ConnectionEvent):
                if self.connected and not event.connected:  # a disconnect or a call past its bound: audited
                    self.risk.emit(AuditCode.EXEC_HEALTH_DEGRADED, self.now(), f"trade health lost: {event.message}",
                                   severity=Severity.WARN, trade_ok=False)
                self.connected = event.connected
                self.risk.trade_ok = event.connected
                self._risk_dirty = True
                self._alert(f"broker {'connected' if event.connected else 'DISCONNECTED'}: {event.message}")
                continue
            self._fold_update(event)

    def _fold_update(self, event: OrderUpdate) -> None:
        live = self.state.orders.get(event.client_order_id)
        if live is None:
            self._alert(f"broker reported an order we did not send: {event.client_order_id} {event.code} {event.side}")
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
        self._commit({"k": "update", "coid": event.client_order_id, "state": event.state.value,
                      "filled": event.filled_shares, "value": event.filled_value_fen, "fees": event.fees_fen,
                      "boid": event.broker_order_id, "msg": event.message, "t": self.now().isoformat()})
        self.stats.events_applied += 1

    def _recover_open_orders(self) -> None:
        """After a restart: bring every non-final order up to the venue's truth before trading again.

        An order whose send was never confirmed (intent journaled, then a crash) becomes UNKNOWN; the
        venue's answer at start is its first lookup under ``lookup_policy``, and the running sweep
        carries on from there: it is lost only after the same spaced misses as any unknown outcome."""
        pending = [o for o in self.state.open_orders()]
        if not pending:
            return
        wall = self.wall_clock.now()
        known = self.broker.query_orders()
        by_coid = {u.client_order_id: u for u in known or ()}
        for live in pending:
            coid = live.record.client_order_id
            found = by_coid.get(coid)
            if found is not None:
                self._fold_update(found)
                continue
            if live.record.state is OrderState.NEW and not live.outcome_unknown:
                self._commit({"k": "sent", "coid": coid, "status": "UNKNOWN",
                              "msg": "restart before send was confirmed", "t": self.now().isoformat()})
            if known is not None and live.outcome_unknown:
                self._looked_up_and_missed(live, wall)
        if known is None:
            self._alert("recovery: broker order query failed; open orders stay unknown until a lookup succeeds")
            return
        ours = set(self.state.orders)
        for update in known:
            if update.client_order_id not in ours and not update.state.is_terminal:
                self._alert(f"venue has an order we did not send (manual?): {update.client_order_id} {update.code}")

    def _lookup_due(self, live: LiveOrder, wall: datetime) -> bool:
        """Lookups of one order are spaced (``lookup_policy.gap``): a venue's order cache can trail by seconds."""
        return self.lookup_policy.is_due(self._lookups.get(live.record.client_order_id), wall)

    def _missed(self, coid: str, wall: datetime) -> bool:
        """Count one lookup that did not find ``coid``; True (and forgotten) once there were enough."""
        verdict = self.lookup_policy.miss(self._lookups.get(coid), wall)
        if verdict.lost:
            self._lookups.pop(coid, None)
        else:
            self._lookups[coid] = verdict.track
        return verdict.lost

    def _looked_up_and_missed(self, live: LiveOrder, wall: datetime) -> None:
        """An unknown outcome the venue did not list: one miss; lost (it never reached the venue) after enough."""
        coid = live.record.client_order_id
        if self._missed(coid, wall):
            self._commit({"k": "lost", "coid": coid, "t": self.now().isoformat()})

    def _settle_previous_days(self, now: datetime, wall: datetime) -> None:
        """Orders still open from an earlier trading day: the exchange ended them at the close. QMT lists
        only today's orders, so one the venue no longer reports is closed here with the fills we have."""
        today = now.astimezone(CST).date()
        stale = [o for o in self.state.open_orders() if not o.outcome_unknown
                 and o.record.state is not OrderState.NEW and o.created_at.astimezone(CST).date() < today
                 and self._lookup_due(o, wall)]
        if not stale:
            return
        known = self.broker.query_orders()
        if known is None:
            return
        by_coid = {u.client_order_id: u for u in known}
        for live in stale:
            coid = live.record.client_order_id
            if coid in by_coid:
                self._fold_update(by_coid[coid])
                if not self.state.orders[coid].record.state.is_terminal:
                    self._lookups[coid] = self.lookup_policy.found(wall)
                continue
            if self._missed(coid, wall):
                rec = live.record
                self._commit({"k": "cancel_req", "coid": coid, "why": "DAY_END", "t": now.isoformat()})
                self._commit({"k": "update", "coid": coid, "state": OrderState.CANCELLED.value,
                              "filled": rec.filled_shares, "value": rec.filled_value_fen, "fees": rec.fees_fen,
                              "msg": "the trading day ended with the order open; the venue no longer lists it",
                              "t": now.isoformat()})

    def _sweep(self) -> None:
        now = self.now()
        wall = self.wall_clock.now()
        due = [o for o in self.state.open_orders() if o.outcome_unknown and self._lookup_due(o, wall)]
        if due:
            # Spaced lookups: a venue's order cache can trail a placement by seconds, so "not found" only
            # counts as lost after LOST_AFTER_LOOKUPS misses spread over unknown_outcome_lookup_s.
            known = self.broker.query_orders()
            if known is not None:
                by_coid = {u.client_order_id: u for u in known}
                for live in due:
                    coid = live.record.client_order_id
                    if coid in by_coid:
                        self._lookups.pop(coid, None)
                        self._fold_update(by_coid[coid])
                        continue
                    self._looked_up_and_missed(live, wall)
        self._settle_previous_days(now, wall)
        self._send_deferred_cancels(now)
        max_age = self.config.executor.max_order_age_s
        for live in self.state.open_orders():
            if live.cancel_requested or live.outcome_unknown or live.record.state is OrderState.NEW:
                continue
            if (now - live.created_at).total_seconds() >= max_age:
                self._request_cancel(live, "MAX_ORDER_AGE", now)
        self._maybe_compact()

    def _request_cancel(self, live: LiveOrder, why: str, now: datetime) -> bool:
        """Cancel ``live`` now (journal ``cancel_req``, make it durable, ask the broker), unless its exchange
        refuses cancels at market time ``now`` (Shenzhen closing call auction 14:57-15:00, 09:20-09:25;
        ``market_rules.is_cancel_allowed``): then the cancel is deferred, not journaled (nothing was sent),
        audited once (``ORDER_CANCEL_DEFERRED`` DEFER) and sent by ``_send_deferred_cancels`` at the first
        turn its exchange accepts cancels again. True when the cancel went out."""
        coid = live.record.client_order_id
        if not is_cancel_allowed(now, live.record.symbol, self.config.market):
            if coid not in self._deferred_cancels:
                self._deferred_cancels[coid] = why
                self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now,
                               f"{coid}: {live.record.symbol}'s exchange refuses cancels now; cancel ({why}) deferred",
                               symbol=live.record.symbol, severity=Severity.WARN, action="DEFER", why=why,
                               client_order_id=coid)
                self._alert(f"cancel of {coid} ({why}) deferred: {live.record.symbol}'s exchange refuses cancels "
                            f"at {now.astimezone(CST):%H:%M:%S}; it is sent once cancels are allowed again")
            return False
        self._commit({"k": "cancel_req", "coid": coid, "why": why, "t": now.isoformat()})
        self.journal.sync()
        self.broker.cancel_order(coid)
        if self._deferred_cancels.pop(coid, None) is not None:
            self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now, f"{coid}: deferred cancel ({why}) sent",
                           symbol=live.record.symbol, action="SEND", why=why, client_order_id=coid)
        return True

    def _send_deferred_cancels(self, now: datetime) -> None:
        """Deferred cancels whose exchange accepts cancels again go out; one whose order ended (or got a
        cancel some other way) meanwhile is dropped, audited."""
        for coid, why in list(self._deferred_cancels.items()):
            live = self.state.orders.get(coid)
            if live is None or live.record.state.is_terminal or live.cancel_requested:
                del self._deferred_cancels[coid]
                self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now, f"{coid}: deferred cancel ({why}) dropped: "
                               "the order ended or was cancelled meanwhile", symbol=None if live is None else
                               live.record.symbol, action="DROP", why=why, client_order_id=coid)
                continue
            self._request_cancel(live, why, now)

    def _bound_seen_inputs(self) -> list[str]:
        """Forget the input keys no longer needed, at a compaction; returns the kept keys, oldest first.

        A key is kept while its junk (an entry without a usable signal_id, or a refused file) is still in
        ``order_signal.json`` as last read, so junk that sits there is never recorded twice, and among the
        SEEN_INPUTS_RECENT newest. Junk that left the file and comes back after that is recorded again, once.
        Memory and the snapshot hold at most the file's junk, the recent set and one compaction interval."""
        order = list(self._input_order)
        recent = set(order[-SEEN_INPUTS_RECENT:])
        kept = [k for k in order if k in recent or k in self._present_inputs]
        self._input_order = dict.fromkeys(kept)
        self.seen_inputs = set(kept)
        return kept

    def _maybe_compact(self) -> None:
        """Journal compaction, between two turns' worth of work: once the tail has
        ``executor.journal_compact_records`` records, forget what the retention rules allow (a journaled
        ``forget`` record) and replace the journal by one ``snapshot`` record of the state (atomic swap).
        Restart then reads one snapshot and a short tail, and the journal stays bounded by the open state
        plus retention, however many signals went through."""
        ex = self.config.executor
        if self.journal.records_since_snapshot < max(ex.journal_compact_records, self._compact_retry_at):
            return
        now = self.now()
        drop = self.state.forgettable(self._present_ids, now, ex.max_signal_age_s, ex.clock_skew_tolerance_s)
        if drop["ids"] or drop["orders"] or drop["owners"]:
            self._commit({"k": "forget", **drop, "t": now.isoformat()})
        self.journal.sync()
        failpoint("executor.before_compact")  # the forget record is durable, the journal not yet compacted
        try:
            record = {"k": SNAPSHOT_KIND, "v": SNAPSHOT_VERSION, "t": now.isoformat(),
                      "records": self.state.records_applied, "state": self.state.snapshot(),
                      "inputs": self._bound_seen_inputs(),
                      # Every client_order_id the state still knows, for readers that only scan records.
                      "coids": sorted(set(self.state.orders) | set(self.state.vault.allocations))}
            size = self.journal.compact(record)
        except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; it must never stop a turn
            # E.g. a reader holds the file open on Windows, or a value the snapshot cannot encode. The full
            # journal stays valid; try again after another interval's worth of records, not every turn.
            if not isinstance(exc, OSError):
                log.exception("journal compaction failed")
            self._compact_retry_at = self.journal.records_since_snapshot + ex.journal_compact_records
            self._alert(f"journal compaction failed, the full journal stays: {exc!r}"[:300], key="journal:compact")
            return
        self._compact_retry_at = 0
        self._clear_alert("journal:compact")
        log.info("journal compacted: %d signals, %d orders kept; %d bytes", len(self.state.signals),
                 len(self.state.orders), size)

    # ---------------------------------------------------------------------------------- risk shell

    def _quotes_stale(self, model: QuoteFile) -> bool:
        age = (self.wall_clock.now() - model.updated_at).total_seconds()
        return age > self.config.executor.quote_stale_after_s

    def _quote_time_ok(self, stamp: datetime, wall: datetime) -> bool:
        """False for a time further ahead of the wall clock than ``max_quote_ahead_s`` (None: no limit)."""
        limit = self.config.executor.max_quote_ahead_s
        return limit is None or (stamp - wall).total_seconds() <= limit

    def _control(self) -> None:
        """Kill-switch commands from every door; their actions become journal records and cancels."""
        now = self.now()
        actions = self.risk.poll_commands(self.wall_clock.now(), now)
        for action in actions:
            if action is KillAction.STOP_NEW_ORDERS and not self.state.halted:
                self._commit({"k": "halt", "on": True, "why": "FORCE_HALT", "t": now.isoformat()})
            elif action is KillAction.RESUME_ORDERS and self.state.halted:
                self._commit({"k": "halt", "on": False, "why": "RESUME", "t": now.isoformat()})
            elif action is KillAction.CANCEL_OPEN_ORDERS:
                self._cancel_all("HALTED", now)
            elif action is KillAction.REDUCE_EXPOSURE:
                self._reduce_due = True  # _evaluate_risk cancels the buys and sells the lots this turn
        if actions:
            self._risk_dirty = True
            self._dirty = True

    def _cancel_all(self, why: str, now: datetime) -> None:
        self._cancel_open(now, why)

    def _cancel_open(self, now: datetime, why: str, buys_only: bool = False) -> None:
        for live in self.state.open_orders():
            if live.cancel_requested or live.record.state is OrderState.NEW:
                continue
            if buys_only and live.record.side != "BUY":
                continue
            self._request_cancel(live, why, now)  # deferred where the exchange refuses cancels now

    def _marks(self) -> dict[str, float]:
        model = self.quotes.last_good
        return {code: q.last for code, q in model.quotes.items()} if model else {}

    def _base_positions(self) -> dict[str, int]:
        out = {}
        for code in self.config.codes:
            own = self.config.grid.get(code, self.config.grid.get(symbol_key(code), {}))
            if isinstance(own, dict) and "base_position_shares" in own:
                out[code] = int(own["base_position_shares"])
        return out

    def _evaluate_risk(self) -> None:
        """Risk state for this turn, then what a reducing state demands, in the same turn: entering one
        (by drawdown, data or trade health, reconciliation or a control command) cancels resting buys, and
        COOLDOWN / Force Reduce sell grid lots (``_reduce``)."""
        if self._market_now is None:
            return  # risk events are stamped with market time; there is none before the first quote
        self._reconcile()
        if self._risk_dirty:
            self._risk_dirty = False
            account = self.risk.account(self.state.vault, self._marks(), self._base_positions())
            for note in self.risk.evaluate(account, self.now(), exposure=self._grid_exposure()):
                self._alert(note)
        state = self.risk.state_name
        if state != self._risk_seen:
            self._risk_seen = state
            self._dirty = True
            self._reduce_due = True
            if state in BUY_FORBIDDING_STATES:
                # A resting buy must not fill under a state that only allows reducing.
                self._cancel_buys_for_risk(state)
        self._reduce()

    def _cancel_buys_for_risk(self, state: str) -> None:
        now = self.now()
        buys = [o.record.client_order_id for o in self.state.open_orders()
                if o.record.side == "BUY" and not o.cancel_requested and o.record.state is not OrderState.NEW]
        self._cancel_open(now, "RISK", buys_only=True)
        if buys:
            self.risk.emit(AuditCode.RISK_FORCED_REDUCTION, now, f"entering {state}: resting buys cancelled",
                           severity=Severity.WARN, action="CANCEL_BUYS", state=state, client_order_ids=buys)

    def _grid_exposure(self) -> Decimal:
        """Grid exposure for the risk kernel: the cost basis of the open grid lots (vault ``used``), yuan."""
        return Decimal(sum(self.state.vault.get_used_map().values())) / 100

    # ------------------------------------------------------------------------------- forced reduction

    def _reduce(self) -> None:
        """COOLDOWN and Force Reduce sell grid lots (``windows.reduction`` decides which); each sell is a
        signal through the same pipeline, vault and journal as a node's, with a deterministic id per lot
        and attempt, so a restart finds what it already decided and never sends it twice."""
        if not self._reduce_due:
            return
        self._reduce_due = False
        snap = self.risk.snapshot
        mode = reduction_mode(snap)
        if mode is None or self.state.halted:
            self._set_reduction(None)
            return
        now = self.now()
        retry = timedelta(seconds=self.config.executor.reduction_retry_s)
        in_sell = frozenset(self.state.lots_in_sell)
        lots: list[GridLot] = []
        cooling: set[str] = set()
        attempts: dict[str, int] = {}
        for alloc in self.state.vault.allocations.values():  # insertion order: oldest first
            if alloc.frozen > 0 or alloc.holding_shares <= 0:
                continue
            coid = alloc.client_order_id
            lots.append(GridLot(coid, alloc.symbol, alloc.holding_shares, alloc.used, alloc.layer_index))
            if coid in in_sell:
                continue
            number, waiting = next_attempt(coid, self._latest_reduction(coid), now, retry)
            if waiting:
                cooling.add(coid)
            elif number is not None:
                attempts[coid] = number
            else:
                in_sell |= {coid}  # our previous sell of it is still open at the venue
        positions = self.broker.query_positions() if self._baseline is not None else None
        unfilled: dict[str, int] = {}
        unplaced: dict[str, int] = {}
        for live in self.state.open_orders():
            if live.record.side != "SELL":
                continue
            left = live.record.shares - live.record.filled_shares
            unfilled[live.record.symbol] = unfilled.get(live.record.symbol, 0) + left
            if live.outcome_unknown or live.record.state is OrderState.NEW:  # the venue may not count it yet
                unplaced[live.record.symbol] = unplaced.get(live.record.symbol, 0) + left
        holdings = {} if positions is None or self._baseline is None else {
            p.code: Holding(p.volume, p.can_use_volume, self._baseline[p.code],
                            unfilled_sells=unfilled.get(p.code, 0), unplaced_sells=unplaced.get(p.code, 0))
            for p in positions if p.code in self._baseline}
        model = self.quotes.last_good
        wall = self.wall_clock.now()
        books = {} if model is None else {
            code: Book(Decimal(str(q.bid1)) if q.bid1 > 0 else None, Decimal(str(q.prev_close)))
            for code, q in model.quotes.items() if self._quote_time_ok(q.quote_time, wall)}
        target = cooldown_exposure_target(snap, self.config.risk)
        plan = plan_reduction(
            mode, lots, now=now, market=self.config.market, books=books, holdings=holdings,
            in_sell=in_sell, cooling=frozenset(cooling),
            target_fen=None if target is None else int((target * 100).to_integral_value(ROUND_FLOOR)),
        )
        if not plan.sells:
            self._set_reduction(plan)
            return
        ctx = self._market_context()
        expiry = timedelta(seconds=self.config.executor.reduction_expiry_s)
        to_send: list[str] = []
        sent: list[dict[str, Any]] = []
        for sell in plan.sells:
            attempt = attempts.get(sell.lot.client_order_id)
            if attempt is None:
                continue
            payload = reduction_signal(sell, mode, attempt, now, expiry)
            records = decide(self.state, payload, ctx, self.config, self.seen_inputs)
            if any(r["k"] == "intent" for r in records):
                grant = acquire(self._bucket, wall)
                self._bucket = grant.bucket
                if not grant.granted:
                    self._reduce_due = True  # the venue's order rate is the bound: the rest next turn
                    break
            for record in records:
                self._commit(record)
                if record["k"] == "intent":
                    to_send.append(record["coid"])
                    ctx = _reserve(ctx, record, self.config)
                elif record["k"] == "result":
                    self._alert(f"forced reduction ({mode.value}): sell of lot {sell.lot.client_order_id} refused: "
                                f"{record.get('detail', '')} {record.get('message', '')}")
            sent.append({"signal_id": payload["signal_id"], "lot": sell.lot.client_order_id, "code": sell.lot.code,
                         "shares": sell.lot.shares, "price": str(sell.price),
                         "accepted": any(r["k"] == "intent" for r in records)})
        self.risk.emit(AuditCode.RISK_FORCED_REDUCTION, now, f"{mode.value}: selling {len(to_send)} grid lot(s)",
                       severity=Severity.WARN, action="SELL", mode=mode.value, sells=sent,
                       held_back=dict(plan.held_back), exposure=fen_to_yuan(plan.exposure_fen),
                       target=None if plan.target_fen is None else fen_to_yuan(plan.target_fen),
                       after=fen_to_yuan(plan.after_fen))
        self._alert(f"forced reduction ({mode.value}): selling {len(to_send)} grid lot(s), exposure "
                    f"{fen_to_yuan(plan.exposure_fen)} -> {fen_to_yuan(plan.after_fen)}")
        if to_send:
            self.journal.sync()  # every intent durable before the venue hears of any
            for coid in to_send:
                self._send(coid)
        self._set_reduction(plan)
        self._dirty = True

    def _latest_reduction(self, lot: str) -> Attempt | None:
        """The newest reduction attempt of ``lot`` in the replayed state (ids are deterministic)."""
        latest: Attempt | None = None
        n = 0
        while (sid := reduction_id(lot, n)) in self.state.signals:
            live = self.state.orders.get(sid)
            open_at_venue = live is not None and not live.record.state.is_terminal
            latest = Attempt(n, not open_at_venue, self.state.signals[sid].result.updated_at)
            n += 1
        return latest

    def _set_reduction(self, plan: ReductionPlan | None) -> None:
        """What the pool file shows of the running reduction (None when none runs)."""
        if plan is None:
            view = None
        else:
            selling = sorted(o.record.client_order_id for o in self.state.open_orders()
                             if is_reduction_id(o.record.client_order_id))
            view = ReductionStatus(
                mode=plan.mode.value, exposure=fen_to_yuan(plan.exposure_fen),
                target=None if plan.target_fen is None else fen_to_yuan(plan.target_fen),
                selling=selling, held_back=dict(plan.held_back))
        if view != self._reduction:
            self._reduction = view
            self._dirty = True

    def _reconcile(self, force: bool = False) -> None:
        """Windows positions vs the vault's lots plus the base: on start and every reconcile interval."""
        if self._market_now is None:
            return
        now = self.now()
        if not force and self._last_reconcile is not None and \
                (now - self._last_reconcile).total_seconds() < self.config.executor.reconcile_interval_s:
            return
        if any(o.record.side == "BUY" or o.release_ids for o in self.state.open_orders()):
            return  # fills in flight: the venue and the ledger may briefly differ
        positions = self.broker.query_positions()
        if positions is None:
            return
        self._last_reconcile = now
        held: dict[str, int] = {code: 0 for code in self.config.codes}
        for alloc in self.state.vault.allocations.values():
            held[alloc.symbol] = held.get(alloc.symbol, 0) + alloc.holding_shares
        broker = {p.code: p.volume for p in positions if p.code in held}
        declared = self._base_positions()
        if self._baseline is None:
            # Without a declared base, what the venue held beyond the grid's lots at start is the base.
            self._baseline = {c: declared.get(c, broker.get(c, 0) - held.get(c, 0)) for c in held}
        local = {c: Decimal(self._baseline.get(c, 0) + held.get(c, 0)) for c in held}
        result = reconcile(local, {c: Decimal(broker.get(c, 0)) for c in held}, None, None)
        if result.mismatches:
            self.risk.emit(AuditCode.OMS_RECONCILE_MISMATCH, now, "venue positions differ from the vault's lots",
                           severity=Severity.WARN, severity_level=result.severity.value,
                           mismatches=[str(m) for m in result.mismatches])
            self._alert(f"reconcile: {result.severity.value} mismatch: {[str(m) for m in result.mismatches]}")
        account = self.risk.account(self.state.vault, self._marks(), self._base_positions())
        self.risk.evaluate(account, now, result)
        self._dirty = True

    def _order_state(self, record: dict[str, Any]) -> OrderState | None:
        live = self.state.orders.get(record.get("coid", ""))
        return live.record.state if live is not None else None

    def _audit(self, record: dict[str, Any], before: OrderState | None) -> None:
        """The audit trail the gate reads, written as records are committed (never on replay)."""
        kind, t = record["k"], _ts(record["t"])
        if kind == "intent":
            self.risk.emit(AuditCode.SIGNAL_ACCEPTED, t, "signal passed the pipeline", symbol=record["code"],
                           signal_id=record["id"], client_order_id=record["coid"], side=record["side"])
        elif kind == "result" and record.get("status") in ("REJECTED", "EXPIRED"):
            entry = self.state.signals.get(record["id"])
            self.risk.emit(AuditCode.SIGNAL_REJECTED, t, record.get("message", ""),
                           symbol=entry.result.code if entry else None, signal_id=record["id"],
                           reason=record.get("reason"), detail=record.get("detail"))
        elif kind == "sent":
            live = self.state.orders[record["coid"]]
            code = AuditCode.ORDER_ERROR if record["status"] == "UNKNOWN" else AuditCode.ORDER_SUBMITTED
            self.risk.emit(code, t, record.get("msg") or "order sent", symbol=live.record.symbol,
                           client_order_id=record["coid"], side=live.record.side, shares=live.record.shares)
            if record["status"] == "REJECTED":
                self.risk.emit(AuditCode.ORDER_REJECTED, t, record.get("msg", ""), symbol=live.record.symbol,
                               client_order_id=record["coid"])
        elif kind in ("update", "lost"):
            live = self.state.orders[record["coid"]]
            after = live.record.state
            if after is before:
                return
            code = {OrderState.FILLED: AuditCode.ORDER_FILLED, OrderState.PARTIAL: AuditCode.ORDER_PARTIAL,
                    OrderState.CANCELLED: AuditCode.ORDER_CANCELLED, OrderState.REJECTED: AuditCode.ORDER_REJECTED,
                    OrderState.ACK: AuditCode.ORDER_ACK}.get(after)
            if after in (OrderState.FILLED, OrderState.REJECTED) or (
                    after is OrderState.CANCELLED and live.record.filled_shares):
                for note in self.risk.record_outcome(live.record.symbol, t, after is OrderState.REJECTED,
                                                     _slippage_bps(live.record)):
                    self._alert(note)
            if code is not None:
                self.risk.emit(code, t, live.record.message or after.value, symbol=live.record.symbol,
                               client_order_id=record["coid"], side=live.record.side,
                               filled=live.record.filled_shares, opens=live.record.side == "BUY",
                               risk_state=self.risk.state_name,
            risk_equity=self.risk.snapshot.equity if self.risk.snapshot.peak_equity > 0 else None,
            drawdown=round(float(self.risk.snapshot.drawdown), 6), leverage="1", max_leverage="1")
        while self.state.illegal_transitions:
            message = self.state.illegal_transitions.pop(0)
            self.risk.emit(AuditCode.OMS_ILLEGAL_TRANSITION, t, message, severity=Severity.WARN)

    # -------------------------------------------------------------------------------------- publish

    def _alert(self, message: str, key: str | None = None) -> None:
        """Log and publish an alert, stamped with the wall time an operator will compare it to.

        With ``key`` the alert names a condition: it is raised once while the condition lasts (repeats are
        counted and logged at most every ``ALERT_LOG_EVERY_S``), and ``_clear_alert(key)`` marks it cleared."""
        now = self.wall_clock.now()
        if key is not None:
            active = self._conditions.get(key)
            if active is not None:
                active.repeats += 1
                if (now - active.logged_at).total_seconds() >= ALERT_LOG_EVERY_S:
                    active.logged_at = now
                    log.warning("%s (still; %d times)", message, active.repeats)
                return
            text = f"{now:%Y-%m-%d %H:%M:%S} {message}"
            self._conditions[key] = _Condition(text, now)
            log.warning(message)
            self.alerts.append(text)
            self._dirty = True
            return
        if message != self._last_alert:
            self._last_alert = message
            log.warning(message)
            self.alerts.append(f"{now:%Y-%m-%d %H:%M:%S} {message}")
            self._dirty = True

    def _clear_alert(self, key: str) -> None:
        """The condition behind alert ``key`` ended: its published alert says so, and the log says it once."""
        active = self._conditions.pop(key, None)
        if active is None:
            return
        now = self.wall_clock.now()
        log.info("cleared after %d repeat(s): %s", active.repeats, active.text)
        cleared = f"{active.text} [cleared {now:%Y-%m-%d %H:%M:%S}]"
        self.alerts = deque((cleared if a == active.text else a for a in self.alerts), maxlen=self.alerts.maxlen)
        self._dirty = True

    def active_alerts(self) -> dict[str, str]:
        """The conditions raised and not yet cleared (key -> published alert)."""
        return {key: c.text for key, c in self._conditions.items()}

    def _pool_content(self) -> PoolFile:
        """The pool file without the fields that move on their own (seq, times, marks-driven equity): two
        equal contents mean nothing an operator or a node acts on has changed."""
        vault = self.state.vault
        used, frozen = vault.get_used_map(), vault.get_frozen_map()
        fields: dict[str, Any] = {}
        for code in ("159201.SZ", "512890.SH"):
            key = symbol_key(code)
            fields[f"used_{key}"] = fen_to_yuan(used.get(code, 0))
            fields[f"frozen_{key}"] = fen_to_yuan(frozen.get(code, 0))
            fields[f"acc_alpha_{key}"] = fen_to_yuan(vault.acc_alpha.get(code, 0))
            fields[f"nominal_cap_{key}"] = fen_to_yuan(vault.limits.nominal_caps.get(code, 0))
            fields[f"allocations_{key}"] = [
                Allocation(
                    client_order_id=a.client_order_id, amount=fen_to_yuan(a.amount), frozen=fen_to_yuan(a.frozen),
                    used=fen_to_yuan(a.used), state=a.state, layer_index=a.layer_index, filled_shares=a.filled_shares,
                    released_shares=a.released_shares, fees=fen_to_yuan(a.buy_fees - a.released_fees),
                    fees_estimated=a.fees_estimated,
                )
                for a in vault.allocations.values()
                if a.symbol == code and a.is_open
            ]
        return PoolFile(
            seq=0,
            updated_at=_EPOCH,
            physical_pool=fen_to_yuan(vault.limits.physical_pool),
            reserve_ratio=vault.limits.reserve_ratio,
            utilization=vault.utilization(),  # exact: the shared function, never rounded for the file
            halted=self.state.halted,
            risk_state=self.risk.state_name,
            heartbeat_s=self.config.executor.heartbeat_s,
            reduction=self._reduction,
            **fields,
        )

    def pool_view(self, content: PoolFile | None = None) -> PoolFile:
        """``shared_pool.json`` as of now: the content plus the next seq, the wall time and the risk marks."""
        self._pool_seq += 1
        return (content or self._pool_content()).model_copy(update={
            "seq": self._pool_seq,
            "updated_at": self.wall_clock.now(),
            "risk_equity": self.risk.snapshot.equity if self.risk.snapshot.peak_equity > 0 else None,
            "drawdown": round(float(self.risk.snapshot.drawdown), 6),
            "market_time": self._market_now,
        })

    def result_file_bytes(self) -> bytes:
        """``order_result.json`` as bytes. Results are immutable and most do not change between two
        publishes, so each is serialised once and spliced into the envelope."""
        self._result_seq += 1
        envelope = ResultFile(
            seq=self._result_seq,
            updated_at=self.wall_clock.now(),
            input_rejections=self.state.junk_view(self._present_ids),
            open_orders=len(self.state.open_orders()),
            alerts=list(self.alerts),
        ).model_dump_json()
        cache, fresh, parts = self._result_json, {}, []
        for signal_id, result in self.state.results_view(self._present_ids).items():
            hit = cache.get(signal_id)
            if hit is None or hit[0] is not result:
                hit = (result, result.model_dump_json())
            fresh[signal_id] = hit
            parts.append(json.dumps(signal_id) + ":" + hit[1])
        self._result_json = fresh
        return envelope.replace('"results":{}', '"results":{' + ",".join(parts) + "}", 1).encode("utf-8")

    def publish(self, force: bool = False) -> None:
        """Write the shared files that are due, each on its own.

        ``shared_pool.json`` is due at once (no rate limit) when its content changed (vault, risk state,
        halt), on every heartbeat (``executor.heartbeat_s`` of wall time with no write) and when forced;
        ``order_result.json`` when anything changed, at most every ``publish_interval_s``. A file that
        cannot be written keeps its last good version, raises one alert for as long as the condition lasts
        and is retried every turn; it never holds the other file back."""
        ex = self.config.executor
        wall = self.wall_clock.now()
        content = self._pool_content()
        heartbeat = self._pool_written_at is None or (wall - self._pool_written_at).total_seconds() >= ex.heartbeat_s
        pool_due = force or heartbeat or content != self._pool_written or POOL_FILE in self._unpublished
        if pool_due:
            self.journal.sync()  # a published file is never ahead of the journal
            if self._write_shared(POOL_FILE, lambda: self.pool_view(content).model_dump_json(indent=1).encode()):
                self._pool_written, self._pool_written_at = content, wall
        results_due = force or RESULT_FILE in self._unpublished or (
            self._dirty and time.monotonic() - self._published_at >= ex.publish_interval_s)
        if results_due:
            self.journal.sync()
            self._dirty = False
            self._write_shared(RESULT_FILE, self.result_file_bytes)
            self._published_at = time.monotonic()

    def _write_shared(self, name: str, render: Callable[[], bytes]) -> bool:
        """One shared file, written atomically; a failure is this file's own alert, cleared when it ends."""
        try:
            atomic_write_bytes(self.shared_dir / name, render())
        except WriteFailed as exc:
            # The previous file stays in place; the journal holds the truth; try again next turn.
            self._unpublished.add(name)
            self._alert(f"publish failed for {name}, keeping the last good file: {exc}", key=f"publish:{name}")
            return False
        self._unpublished.discard(name)
        self._clear_alert(f"publish:{name}")
        return True


@dataclass
class _Condition:
    """An alert raised for a condition that lasts (a file that cannot be written, ...)."""

    text: str
    logged_at: datetime
    repeats: int = 0


_EPOCH = datetime(1970, 1, 1, tzinfo=CST)
ALERT_LOG_EVERY_S = 60.0
SIGNAL_REREAD_S = 5.0  # an unchanged stat signature is trusted this long (wall seconds)
SEEN_INPUTS_RECENT = 1000  # input keys kept at a compaction besides those of junk still in the signal file


def _junk_keys(entries: list[Any], data: bytes) -> frozenset[str]:
    """The ``input:`` keys (as ``decide`` and the entry fault barrier make them) of the entries of the signal
    file that have no usable signal_id."""
    keys = set()
    for index, raw in enumerate(entries):
        sid = entry_signal_id(raw)
        if sid is not None and SIGNAL_ID_PATTERN.match(sid):
            continue
        try:
            digest = payload_hash(raw)
        except Exception:  # noqa: BLE001 - the fault barrier names such an entry by its place in the file
            digest = hashlib.sha256(f"{_digest(data)}:{index}".encode()).hexdigest()[:32]
        keys.add(f"input:{digest}")
    return frozenset(keys)


def _slippage_bps(order: OrderRecord) -> Decimal | None:
    """How much worse than its limit an order filled, in basis points (0 when at or better than the limit)."""
    if not order.filled_shares:
        return None
    limit = Decimal(order.price)
    avg = Decimal(order.filled_value_fen) / 100 / order.filled_shares
    worse = (avg - limit) if order.side == "BUY" else (limit - avg)
    return max(Decimal(0), worse / limit * 10000)


def _reserve(ctx: MarketContext, intent: dict[str, Any], config: GridbridgeConfig) -> MarketContext:
    """The context the next signal of the same batch sees: this order's cash or shares already spoken for."""
    if intent["side"] == "BUY":
        if ctx.available_cash is None:
            return ctx
        amount = Decimal(intent["price"]) * intent["shares"]
        return replace(ctx, available_cash=ctx.available_cash - amount - fee_estimate(amount, config))
    if ctx.sellable is None:
        return ctx
    sellable = dict(ctx.sellable)
    sellable[intent["code"]] = sellable.get(intent["code"], 0) - intent["shares"]
    return replace(ctx, sellable=sellable)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _bounded_payload(raw: Any) -> Any:
    text = json.dumps(raw, default=str, ensure_ascii=True)
    return raw if len(text) <= 4000 else {"truncated": text[:4000]}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def default_state_dir(shared_dir: Path) -> Path:
    """State belongs on the executor's own disk: ``$GRIDBRIDGE_STATE_DIR`` or a folder beside the share."""
    override = os.environ.get("GRIDBRIDGE_STATE_DIR")
    if override:
        return Path(override)
    shared = Path(shared_dir).resolve()
    return shared.parent / (shared.name + "_executor_state")
