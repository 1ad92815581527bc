"""The executor's side of the risk kernel: equity, risk evaluation, kill switch doors and the audit log.

All decisions are ``core`` functions (``evaluate``, ``check_order``, ``handle_command``); this class only
feeds them what the executor knows (the vault, the quotes, the broker), writes their audit events and
hands their actions back to the executor.

Risk state on start: ``risk_state.json`` holds the risk snapshot as of a position in the audit log
(``(seq, offset)``, see ``core.audit``), written atomically after the audit events it covers are durable
(every ``risk_state_every_bytes`` of audit, at each rotation and at close). ``load`` reads it and replays only
the audit written after that position, across rotations; without it, or when its position is not in the log,
the whole log (every segment) is replayed. The audit file rotates into numbered, dated segments at
``audit_segment_bytes``, so neither the active file nor a restart grows with the life of the account.

ETF equity for risk is the grid's own capital: the pool plus realised alpha plus open grid lots marked to
market (the long-term base positions are outside it unless ``include_base_positions``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.audit import AuditWriter, read_log_events, read_log_events_after
from core.control import killswitch
from core.control.commands import ControlCommand, InMemoryNonceStore, secret_from_env
from core.control.file_door import process_control_folder
from core.control.http_door import SubmittedCommand
from core.events import AuditCode, AuditEvent, Severity
from core.execution.health import ExecutionHealth, HealthConfig, Sample, assess
from core.oms.account import AccountState
from core.oms.reconcile import ReconcileResult
from core.risk import (
    OrderIntent,
    RiskConfig,
    RiskInputs,
    RiskSnapshot,
    Side,
    check_order,
    evaluate,
    initial_snapshot,
)
from core.risk.manual import freeze_symbol
from core.risk.replay import equity_snapshot_event, replay
from core.risk.snapshot import snapshot_from_dict, snapshot_to_dict
from shared_schema.atomic_io import WriteFailed, atomic_write_bytes
from shared_schema.failpoints import failpoint
from shared_schema.models import Direction, Reason, Signal
from windows.pipeline import Rejection
from windows.vault import GlobalVault

log = logging.getLogger("gridbridge.risk")

AUDIT_FILE = "audit.jsonl"
NONCE_FILE = "control_nonces.json"
RISK_STATE_FILE = "risk_state.json"
RISK_STATE_VERSION = 1


class RiskStateFile(BaseModel):
    """``risk_state.json``: the risk snapshot as of audit log position ``(seq, offset)``."""

    v: int = RISK_STATE_VERSION
    seq: int
    offset: int
    snapshot: dict[str, Any]


@dataclass
class RiskSettings:
    config: RiskConfig = field(default_factory=RiskConfig)
    equity_snapshot_every: timedelta = timedelta(minutes=1)
    include_base_positions: bool = False
    health: HealthConfig = field(default_factory=HealthConfig)
    control_max_ttl: timedelta = timedelta(minutes=10)
    audit_segment_bytes: int | None = 16 * 1024 * 1024  # rotate the active audit file past this size
    risk_state_every_bytes: int = 256 * 1024  # write risk_state.json after this much new audit


class PersistentNonceStore(InMemoryNonceStore):
    """Nonces of accepted commands, saved after each one so a replay after a restart is still refused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        items: dict[str, datetime] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            items = {k: datetime.fromisoformat(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            pass
        super().__init__(items)

    def remember(self, nonce: str, expires_at: datetime) -> None:
        super().remember(nonce, expires_at)
        from shared_schema.atomic_io import atomic_write_json

        atomic_write_json(self.path, {k: v.isoformat() for k, v in self.items.items()})


class ExecutorRisk:
    def __init__(self, shared_dir: Path, state_dir: Path, settings: RiskSettings | None = None) -> None:
        self.shared_dir = Path(shared_dir)
        self.state_dir = Path(state_dir)
        self.settings = settings or RiskSettings()
        self.audit = AuditWriter(self.state_dir / AUDIT_FILE, max_bytes=self.settings.audit_segment_bytes)
        self._saved_at: tuple[int, int] | None = None  # the audit position risk_state.json was written at
        self.loaded_from = ""  # how load() rebuilt the state: "fresh", "snapshot+tail" or "full replay"
        self.snapshot: RiskSnapshot = initial_snapshot()
        self.kill = killswitch.KillSwitchState()
        self.nonces = PersistentNonceStore(self.state_dir / NONCE_FILE)
        self.secret = secret_from_env(os.environ)
        self.commands: queue.SimpleQueue[SubmittedCommand] = queue.SimpleQueue()
        self._last_snapshot_event: datetime | None = None
        self.trade_ok = True
        self.data_ok = True
        self.health = ExecutionHealth()
        self._pending: list[AuditEvent] = []
        self._last_health: dict[str, tuple[str, ...]] = {}
        # Where the control door's alerts go (the executor's alert board, ``AlertBoard.post``); a standing condition such as a
        # linked control folder is passed on once, when it starts.
        self.alert_sink: Callable[[str], None] | None = None
        self._door_alerts: set[str] = set()

    def load(self) -> None:
        """Rebuild the risk state: ``risk_state.json`` plus the audit written after it, else the whole log."""
        path = self.state_dir / AUDIT_FILE
        saved = self._read_state_file()
        snapshot: RiskSnapshot | None = None
        if saved is not None:
            try:
                snapshot = replay(read_log_events_after(path, (saved.seq, saved.offset)),
                                  snapshot_from_dict(saved.snapshot))
                self.loaded_from = "snapshot+tail"
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s does not fit the audit log (%s); replaying the whole log", RISK_STATE_FILE, exc)
        if snapshot is None and (path.exists() or self.audit.seq > 1):
            snapshot = replay(read_log_events(path), self.snapshot)
            self.loaded_from = "full replay"
        if snapshot is None:
            self.loaded_from = "fresh"
        else:
            self.snapshot = snapshot
            self.kill = killswitch.KillSwitchState(halted=self.snapshot.halted)
        self.save_state()

    def _read_state_file(self) -> RiskStateFile | None:
        try:
            saved = RiskStateFile.model_validate_json((self.state_dir / RISK_STATE_FILE).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("%s unreadable (%s); replaying the whole audit log", RISK_STATE_FILE, exc)
            return None
        return saved if saved.v == RISK_STATE_VERSION else None

    def save_state(self) -> None:
        """Write ``risk_state.json`` for the audit position now. Call only with nothing pending: the snapshot
        must cover every event before that position (``flush`` does so)."""
        failpoint("risk.before_state_save")  # the audit is durable, the state file not yet caught up
        position = self.audit.position()
        record = RiskStateFile(seq=position[0], offset=position[1], snapshot=snapshot_to_dict(self.snapshot))
        try:
            atomic_write_bytes(self.state_dir / RISK_STATE_FILE, record.model_dump_json().encode("utf-8"))
        except WriteFailed as exc:
            log.warning("%s not written (%s); a restart replays a longer audit tail", RISK_STATE_FILE, exc)
            return
        self._saved_at = position

    # ----------------------------------------------------------------------------------------- audit

    def emit(self, code: AuditCode, now: datetime, cause: str, symbol: str | None = None,
             severity: Severity = Severity.INFO, **data: Any) -> None:
        self.write([AuditEvent(ts=now, code=code, severity=severity, cause=cause, symbol=symbol, data=data)])

    def write(self, events: list[AuditEvent] | tuple[AuditEvent, ...]) -> None:
        """Queue audit events; ``flush`` writes them with one fsync (the journal, not the audit log, is
        the write-ahead record, so the audit may trail it by one turn)."""
        self._pending.extend(events)

    def flush(self) -> None:
        if self._pending:
            events, self._pending = self._pending, []
            self.audit.extend(events)
            seq, offset = self.audit.position()
            saved = self._saved_at
            if saved is None or seq != saved[0] or offset - saved[1] >= self.settings.risk_state_every_bytes:
                self.save_state()

    # ------------------------------------------------------------------------------------ evaluation

    def account(self, vault: GlobalVault, marks: dict[str, float], base_positions: dict[str, int]) -> AccountState:
        """Grid equity in yuan: pool + realised alpha + open lots at market - their cost basis."""
        fen = vault.limits.physical_pool + sum(vault.acc_alpha.values())
        for alloc in vault.allocations.values():
            shares = alloc.holding_shares
            if shares > 0 and alloc.symbol in marks:
                fen += round(shares * marks[alloc.symbol] * 100) - alloc.used
        equity = Decimal(fen) / 100
        if self.settings.include_base_positions:
            equity += sum((Decimal(str(marks.get(c, 0))) * n for c, n in base_positions.items()), Decimal(0))
        peak = max(self.snapshot.peak_equity, equity)
        return AccountState(equity=equity, peak_equity=peak, cash=equity)

    def evaluate(self, account: AccountState, now: datetime, reconcile: ReconcileResult | None = None,
                 exposure: Decimal | None = None) -> list[str]:
        """Run the risk machine on this account update; returns human notes for alerts. ``exposure`` (the
        grid lots' cost basis) is what a COOLDOWN latches as the base of its forced reduction."""
        result = evaluate(
            self.snapshot,
            RiskInputs(account=account, trade_ok=self.trade_ok, data_ok=self.data_ok, reconcile=reconcile,
                       exposure=exposure),
            now,
            self.settings.config,
        )
        self.snapshot = result.snapshot
        self.write(result.events)
        notes = [f"risk: {e.cause}" for e in result.events if e.code is AuditCode.RISK_STATE_CHANGE]
        if self._last_snapshot_event is None or now - self._last_snapshot_event >= self.settings.equity_snapshot_every:
            self.write([equity_snapshot_event(self.snapshot, now)])
            self._last_snapshot_event = now
        return notes

    def check(self, signal: Signal) -> Rejection | None:
        """What the current risk state forbids for this signal (buys open exposure, sells reduce it)."""
        intent = OrderIntent(
            symbol=signal.code,
            side=Side.BUY if signal.direction is Direction.BUY else Side.SELL,
            qty=Decimal(signal.shares),
            opens=signal.direction is Direction.BUY,
        )
        reason = check_order(self.snapshot, intent, self.settings.config)
        if reason is None:
            return None
        return Rejection(Reason.RISK_STATE, reason.value,
                         f"risk state {self.snapshot.state.value} forbids this {signal.direction.value}")

    # -------------------------------------------------------------------------------- kill switch

    def follow_halt(self, halted: bool, at: datetime) -> None:
        """Make the risk snapshot's and the kill switch's halt flags the executor state's (``halt`` journal
        records: the one truth). A kill-switch command sets them together with its journal record; they
        part only when a crash left one log behind the other, or a record was written directly."""
        if self.snapshot.halted != halted:
            self.snapshot = replace(self.snapshot, halted=halted)
        if self.kill.halted != halted:
            self.kill = replace(self.kill, halted=halted, halted_at=at if halted else None)

    def poll_commands(self, wall_now: datetime, market_now: datetime) -> list[killswitch.KillAction]:
        """Commands from the signed-file door and the queue (HTTP, SIGUSR1); returns the actions to take.

        A command's signature, nonce and expiry are judged on the wall clock (an operator acts in real
        time); its effect on the risk state is stamped with the market clock the risk timers run on.
        """
        actions: list[killswitch.KillAction] = []

        def apply(command: ControlCommand, source: str = "file") -> str | None:
            outcome = killswitch.handle_command(
                self.kill, self.snapshot, command, market_now, self.settings.config, source
            )
            self.write(outcome.events)
            if outcome.accepted:
                self.kill, self.snapshot = outcome.state, outcome.risk
                actions.extend(outcome.actions)
            return outcome.refused

        door = process_control_folder(self.shared_dir, self.secret, self.nonces, wall_now, apply,
                                      max_ttl=self.settings.control_max_ttl)
        self.write(door.events)
        for note in door.alerts:
            if note not in self._door_alerts:
                if self.alert_sink is not None:
                    self.alert_sink(note)
                else:
                    log.warning(note)
        self._door_alerts = set(door.alerts)
        while True:
            try:
                submitted = self.commands.get_nowait()
            except queue.Empty:
                break
            apply(submitted.command, submitted.source)
        return actions

    def record_outcome(self, symbol: str, now: datetime, rejected: bool, slippage_bps: Decimal | None) -> list[str]:
        """Feed one order outcome to the execution-health tracker; an abnormal reject rate or slippage
        over budget freezes the symbol (every order refused until Force Unlock Symbol) or is audited."""
        cfg = self.settings.health
        self.health = self.health.record(symbol, Sample(now, rejected, slippage_bps), cfg)
        verdict = assess(self.health, symbol, now, cfg)
        if verdict.freeze and symbol not in self.snapshot.frozen_symbols:
            result = freeze_symbol(self.snapshot, symbol, now, self.settings.config,
                                   f"execution health: {', '.join(verdict.reasons)}")
            self.snapshot = result.snapshot
            self.write(result.events)
            return [f"{symbol} frozen: {', '.join(verdict.reasons)}"]
        if verdict.reasons and verdict.reasons != self._last_health.get(symbol):
            self.emit(AuditCode.EXEC_HEALTH_DEGRADED, now, ", ".join(verdict.reasons), symbol=symbol,
                      severity=Severity.WARN, size_factor=str(verdict.size_factor),
                      interval_factor=str(verdict.interval_factor))
        self._last_health[symbol] = verdict.reasons
        return []

    @property
    def state_name(self) -> str:
        return self.snapshot.state.value

    def close(self, now: datetime | None) -> None:
        if now is not None:
            self.write([equity_snapshot_event(self.snapshot, now)])
        self.flush()
        if self._saved_at != self.audit.position():
            self.save_state()
        self.audit.close()
