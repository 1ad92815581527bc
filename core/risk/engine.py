"""Pure risk evaluation: (snapshot, inputs, now, config) -> (snapshot, audit events).

Called on every tick and account update with the time passed in. Every state change goes through the
table in ``core.risk.state`` and produces one RISK_STATE_CHANGE event carrying its trigger, its cause and
the full snapshot after the change, so ``replay`` can rebuild the state from the audit log alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from core.events import AuditCode, AuditEvent, Severity
from core.oms.account import AccountState, drawdown, weighted_liq_distance
from core.oms.reconcile import ReconcileResult, ReconcileSeverity
from core.risk.config import RiskConfig
from core.risk.state import IllegalRiskTransition, RiskState, RiskTrigger, apply_trigger

ZERO = Decimal(0)
ONE = Decimal(1)

# Why the account is REDUCE_ONLY; it leaves only when every cause is gone.
CAUSE_TRADE_NOT_OK = "TRADE_NOT_OK"  # clears by itself when trade_ok comes back
CAUSE_DATA_NOT_OK = "DATA_NOT_OK"  # stale or unreadable market data: clears by itself when data_ok comes back
SELF_CLEARING_CAUSES = frozenset({CAUSE_TRADE_NOT_OK, CAUSE_DATA_NOT_OK})
CAUSE_RECONCILE = "RECONCILE"  # severe cash mismatch: clears only by a manual Resume
CAUSE_MANUAL = "MANUAL"  # Force Reduce: clears only by a manual Resume
CAUSE_PROTECTIVE = "PROTECTIVE_MISSING"  # stop-loss could not be attached: manual Resume


@dataclass(frozen=True)
class RiskSnapshot:
    """Everything the risk kernel knows; immutable, replaced on every change."""

    state: RiskState = RiskState.NORMAL
    since: datetime | None = None
    last_eval: datetime | None = None
    peak_equity: Decimal = ZERO
    equity: Decimal = ZERO
    drawdown: Decimal = ZERO
    cooldown_until: datetime | None = None
    # No longer set (a cooldown now ends only below its line); kept so older snapshots keep their shape.
    cooldown_rearm_above: Decimal | None = None
    # Exposure held when the current COOLDOWN began: the base its forced reduction is measured against.
    cooldown_exposure: Decimal | None = None
    fuse_until: datetime | None = None
    recovery_stage: int | None = None
    recovery_stage_since: datetime | None = None
    observe_until: datetime | None = None
    reduce_only_causes: frozenset[str] = frozenset()
    reconcile_degraded: bool = False
    frozen_symbols: frozenset[str] = frozenset()
    dust_locked: frozenset[str] = frozenset()
    trade_ok: bool = True
    data_ok: bool = True
    event_window: bool = False
    extreme: bool = False
    liq_distance: Decimal | None = None
    liq_blocked: bool = False
    halted: bool = False

    @property
    def is_stressed(self) -> bool:
        return self.event_window or self.extreme

    @property
    def force_reduce_all(self) -> bool:
        """Force Reduce from the kill switch is latched: close every position that can be closed."""
        return CAUSE_MANUAL in self.reduce_only_causes

    @property
    def forced_reduction(self) -> bool:
        """The executor must actively cut exposure (not just refrain from adding)."""
        return (
            self.state in (RiskState.COOLDOWN, RiskState.FUSE)
            or CAUSE_MANUAL in self.reduce_only_causes
            or self.liq_blocked
        )

    def risk_budget(self, cfg: RiskConfig) -> Decimal:
        """Fraction of the normal risk budget the strategy may use now (0 in FUSE)."""
        budget = {
            RiskState.NORMAL: ONE,
            RiskState.DEGRADED: cfg.degraded_budget,
            RiskState.COOLDOWN: cfg.cooldown_budget,
            RiskState.REDUCE_ONLY: cfg.degraded_budget,
            RiskState.FUSE: ZERO,
        }[self.state]
        if self.recovery_stage is not None:
            budget = min(budget, cfg.recovery_stages[self.recovery_stage])
        if self.event_window:
            budget *= cfg.event_window_budget
        return budget

    def threshold_multiplier(self, cfg: RiskConfig) -> Decimal:
        """Grid thresholds widen (fewer, larger-edge trades) in every state but NORMAL."""
        return ONE if self.state is RiskState.NORMAL else cfg.degraded_threshold_multiplier


@dataclass(frozen=True)
class RiskInputs:
    """What the shell observed this tick."""

    account: AccountState
    trade_ok: bool = True
    data_ok: bool = True
    # Gross exposure the strategy holds now (account currency); latched when a COOLDOWN begins.
    exposure: Decimal | None = None
    event_window: bool = False
    extreme: bool = False
    reconcile: ReconcileResult | None = None


@dataclass(frozen=True)
class RiskEvaluation:
    snapshot: RiskSnapshot
    events: tuple[AuditEvent, ...] = field(default_factory=tuple)

    @property
    def changed_state(self) -> bool:
        return any(e.code is AuditCode.RISK_STATE_CHANGE for e in self.events)


def initial_snapshot(account: AccountState | None = None, now: datetime | None = None) -> RiskSnapshot:
    """A NORMAL snapshot seeded with the account's known peak equity (so a restart keeps the drawdown)."""
    if account is None:
        return RiskSnapshot(since=now)
    return RiskSnapshot(
        since=now,
        peak_equity=max(account.peak_equity, account.equity),
        equity=account.equity,
        drawdown=account.drawdown_pct,
    )


_SEVERITY = {
    RiskState.NORMAL: Severity.INFO,
    RiskState.DEGRADED: Severity.WARN,
    RiskState.COOLDOWN: Severity.ERROR,
    RiskState.REDUCE_ONLY: Severity.ERROR,
    RiskState.FUSE: Severity.CRITICAL,
}


class _Run:
    """Accumulates the snapshot and the events of one pure operation."""

    def __init__(
        self, snap: RiskSnapshot, now: datetime, cfg: RiskConfig, exposure: Decimal | None = None
    ) -> None:
        self.snap = snap
        self.now = now
        self.cfg = cfg
        self.exposure = exposure
        self.events: list[AuditEvent] = []

    def can(self, trigger: RiskTrigger) -> bool:
        try:
            apply_trigger(self.snap.state, trigger)
        except IllegalRiskTransition:
            return False
        return True

    def fire(self, trigger: RiskTrigger, cause: str, **changes: Any) -> None:
        """Apply one table transition (raises if illegal) and record it after it is accepted."""
        before = self.snap.state
        after = apply_trigger(before, trigger)
        self.snap = replace(self.snap, state=after, since=self.now, **changes)
        if after is RiskState.COOLDOWN:
            until = self.snap.cooldown_until
            # Re-entering an unexpired cooldown (e.g. via REDUCE_ONLY) keeps its end and its reduction
            # base: no free extension, no second halving.
            if until is None or until <= self.now:
                self.snap = replace(
                    self.snap,
                    cooldown_until=self.now + self.cfg.cooldown_duration,
                    cooldown_exposure=self.exposure,
                )
        self.events.append(
            self._event(
                AuditCode.RISK_STATE_CHANGE,
                _SEVERITY[after],
                cause,
                {"from": before.value, "to": after.value, "trigger": trigger.value},
            )
        )

    def note(
        self, code: AuditCode, severity: Severity, cause: str, symbol: str | None = None, **data: Any
    ) -> None:
        self.events.append(self._event(code, severity, cause, data, symbol))

    def _event(
        self, code: AuditCode, severity: Severity, cause: str, data: dict[str, Any], symbol: str | None = None
    ) -> AuditEvent:
        # Every risk event carries the snapshot after it: the audit log alone replays the state.
        payload = dict(data)
        payload["drawdown"] = str(self.snap.drawdown)
        payload["snapshot"] = snapshot_to_dict(self.snap)
        return AuditEvent(ts=self.now, code=code, severity=severity, cause=cause, symbol=symbol, data=payload)

    def result(self) -> RiskEvaluation:
        return RiskEvaluation(self.snap, tuple(self.events))


def evaluate(snapshot: RiskSnapshot, inputs: RiskInputs, now: datetime, cfg: RiskConfig) -> RiskEvaluation:
    """Fold one observation into the risk state; several transitions may chain in one call."""
    run = _Run(snapshot, now, cfg, inputs.exposure)
    acct = inputs.account
    peak = max(snapshot.peak_equity, acct.equity)
    dd = drawdown(acct.equity, peak)
    run.snap = replace(
        snapshot,
        last_eval=now,
        peak_equity=peak,
        equity=acct.equity,
        drawdown=dd,
        trade_ok=inputs.trade_ok,
        data_ok=inputs.data_ok,
        event_window=inputs.event_window,
        extreme=inputs.extreme,
    )
    pct = f"{(dd * 100).quantize(Decimal('0.01'))}%"

    if dd >= cfg.fuse_drawdown and run.can(RiskTrigger.DRAWDOWN_FUSE):
        run.fire(
            RiskTrigger.DRAWDOWN_FUSE,
            f"drawdown {pct} >= fuse {cfg.fuse_drawdown}",
            fuse_until=now + cfg.fuse_cooldown,
            cooldown_until=None,
            cooldown_exposure=None,
            recovery_stage=None,
            recovery_stage_since=None,
        )
    _update_liq(run, acct)
    if run.snap.state is RiskState.FUSE:
        return run.result()

    if inputs.reconcile is not None:
        _apply_reconcile(run, inputs.reconcile)

    causes = set(run.snap.reduce_only_causes)
    for ok, cause in ((inputs.trade_ok, CAUSE_TRADE_NOT_OK), (inputs.data_ok, CAUSE_DATA_NOT_OK)):
        if ok:
            causes.discard(cause)
        else:
            causes.add(cause)
    run.snap = replace(run.snap, reduce_only_causes=frozenset(causes))
    if not inputs.trade_ok and run.can(RiskTrigger.TRADE_NOT_OK):
        run.fire(RiskTrigger.TRADE_NOT_OK, "terminal reports trade_ok=false")
    if not inputs.data_ok and run.can(RiskTrigger.DATA_NOT_OK):
        run.fire(RiskTrigger.DATA_NOT_OK, "market data stale or unreadable (data_ok=false)")
    if run.snap.state is RiskState.REDUCE_ONLY and not run.snap.reduce_only_causes:
        run.fire(RiskTrigger.REDUCE_ONLY_CLEARED, "every reduce-only cause has cleared")

    if (
        run.snap.state is RiskState.COOLDOWN
        and run.snap.cooldown_until is not None
        and now >= run.snap.cooldown_until
        and dd < cfg.cooldown_drawdown
    ):
        # Both conditions: the time is up AND the drawdown is back under the line. A cooldown that only
        # timed out would reopen buying at the drawdown that caused it.
        run.fire(
            RiskTrigger.COOLDOWN_EXPIRED,
            f"cooldown ended at {run.snap.cooldown_until.isoformat()} and drawdown {pct} is under "
            f"{cfg.cooldown_drawdown}",
            cooldown_until=None,
            cooldown_rearm_above=None,
            cooldown_exposure=None,
        )

    if dd >= cfg.cooldown_drawdown and run.can(RiskTrigger.DRAWDOWN_COOLDOWN):
        run.fire(RiskTrigger.DRAWDOWN_COOLDOWN, f"drawdown {pct} >= cooldown {cfg.cooldown_drawdown}")
    elif dd >= cfg.degraded_drawdown and run.can(RiskTrigger.DRAWDOWN_DEGRADED):
        run.fire(RiskTrigger.DRAWDOWN_DEGRADED, f"drawdown {pct} >= degraded {cfg.degraded_drawdown}")

    if (
        run.snap.state is RiskState.COOLDOWN
        and run.snap.cooldown_exposure is None
        and inputs.exposure is not None
    ):
        # Entered without a known exposure (rollback drill, restart): the first one seen is the base.
        run.snap = replace(run.snap, cooldown_exposure=inputs.exposure)

    healthy = dd < cfg.degraded_drawdown - cfg.recovery_hysteresis
    _advance_recovery(run, healthy)
    observing = run.snap.observe_until is not None and now < run.snap.observe_until
    if (
        run.snap.state is RiskState.DEGRADED
        and healthy
        and run.snap.recovery_stage is None
        and not run.snap.reconcile_degraded
        and not observing
    ):
        run.fire(
            RiskTrigger.DRAWDOWN_RECOVERED, f"drawdown {pct} back under the recovery line", observe_until=None
        )
    return run.result()


def _apply_reconcile(run: _Run, result: ReconcileResult) -> None:
    for symbol in sorted(result.severe_symbols - run.snap.frozen_symbols):
        run.snap = replace(run.snap, frozen_symbols=run.snap.frozen_symbols | {symbol})
        run.note(AuditCode.RISK_SYMBOL_FROZEN, Severity.ERROR, "severe reconciliation mismatch", symbol)
    if result.has_severe_cash:
        run.snap = replace(run.snap, reduce_only_causes=run.snap.reduce_only_causes | {CAUSE_RECONCILE})
        if run.can(RiskTrigger.RECONCILE_SEVERE):
            run.fire(RiskTrigger.RECONCILE_SEVERE, "severe cash mismatch with the broker")
    minor = any(m.severity is ReconcileSeverity.MINOR for m in result.mismatches)
    run.snap = replace(run.snap, reconcile_degraded=minor)
    if minor and run.can(RiskTrigger.RECONCILE_MINOR):
        run.fire(RiskTrigger.RECONCILE_MINOR, "minor reconciliation mismatch")


def _advance_recovery(run: _Run, healthy: bool) -> None:
    snap, cfg = run.snap, run.cfg
    if snap.recovery_stage is None or snap.state is not RiskState.DEGRADED or not healthy:
        return
    if (
        snap.recovery_stage_since is not None
        and run.now < snap.recovery_stage_since + cfg.recovery_stage_interval
    ):
        return
    stage = snap.recovery_stage + 1
    done = stage >= len(cfg.recovery_stages) - 1
    run.snap = replace(snap, recovery_stage=None if done else stage, recovery_stage_since=run.now)
    run.note(
        AuditCode.RISK_RECOVERY_STAGE,
        Severity.INFO,
        f"staged recovery to {cfg.recovery_stages[min(stage, len(cfg.recovery_stages) - 1)]} of budget",
        stage=stage,
        complete=done,
    )


def _update_liq(run: _Run, acct: AccountState) -> None:
    cfg = run.cfg
    liq = weighted_liq_distance(acct.positions.values(), cfg.liq_percentile)
    blocked = run.snap.liq_blocked
    if liq is not None and liq < cfg.liq_force_reduce_below and not blocked:
        run.snap = replace(run.snap, liq_distance=liq, liq_blocked=True)
        run.note(
            AuditCode.RISK_LIQ_DISTANCE_LOW,
            Severity.ERROR,
            f"P95 liquidation distance {liq} < {cfg.liq_force_reduce_below}: forced reduction",
            liq_distance=str(liq),
            target=str(cfg.liq_target),
        )
    elif blocked and (liq is None or liq >= cfg.liq_target):
        run.snap = replace(run.snap, liq_distance=liq, liq_blocked=False)
        run.note(
            AuditCode.RISK_LIQ_DISTANCE_RESTORED,
            Severity.INFO,
            f"liquidation distance back to target {cfg.liq_target}",
            liq_distance=str(liq),
        )
    else:
        run.snap = replace(run.snap, liq_distance=liq)


# --- Manual and execution-side actions (called by the kill-switch handler and the executor) -------------


@dataclass(frozen=True)
class ManualResult:
    snapshot: RiskSnapshot
    events: tuple[AuditEvent, ...] = ()
    refused: str | None = None


def reset_fuse(snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str) -> ManualResult:
    """Manual Reset FUSE: allowed only after the fuse cooldown; starts staged recovery in DEGRADED.

    The peak equity is rebased (set to 0, so the next evaluation takes current equity): the loss that
    fused the account is realised and accepted, and measuring from the old peak would fuse again at once.
    """
    if snapshot.state is not RiskState.FUSE:
        return ManualResult(snapshot, refused="RISK_NOT_IN_FUSE")
    if snapshot.fuse_until is not None and now < snapshot.fuse_until:
        return ManualResult(snapshot, refused="RISK_FUSE_COOLDOWN_ACTIVE")
    run = _Run(snapshot, now, cfg)
    run.fire(
        RiskTrigger.MANUAL_RESET_FUSE,
        cause,
        fuse_until=None,
        recovery_stage=0,
        recovery_stage_since=now,
        peak_equity=ZERO,
        drawdown=ZERO,
        cooldown_rearm_above=None,
        cooldown_exposure=None,
        reduce_only_causes=frozenset(),
    )
    return ManualResult(run.snap, tuple(run.events))


def force_reduce(
    snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str, reason: str = CAUSE_MANUAL
) -> ManualResult:
    """Latch a reduce-only cause (Force Reduce, missing stop-loss) and enter REDUCE_ONLY when allowed."""
    run = _Run(replace(snapshot, reduce_only_causes=snapshot.reduce_only_causes | {reason}), now, cfg)
    if run.can(RiskTrigger.MANUAL_FORCE_REDUCE):
        run.fire(RiskTrigger.MANUAL_FORCE_REDUCE, cause)
    return ManualResult(run.snap, tuple(run.events))


def clear_manual_causes(snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str) -> ManualResult:
    """Resume: drop the latched manual causes and the halt; the next ``evaluate`` steps down if clear."""
    keep = snapshot.reduce_only_causes & SELF_CLEARING_CAUSES
    run = _Run(replace(snapshot, reduce_only_causes=keep, halted=False), now, cfg)
    if run.snap.state is RiskState.REDUCE_ONLY and not keep:
        run.fire(RiskTrigger.REDUCE_ONLY_CLEARED, cause)
    return ManualResult(run.snap, tuple(run.events))


def set_halted(snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str) -> ManualResult:
    """Force Halt: no new orders of any kind until Resume."""
    run = _Run(replace(snapshot, halted=True), now, cfg)
    return ManualResult(run.snap, ())


def freeze_symbol(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """FREEZE one symbol (no orders at all) after a severe mismatch or unhealthy execution."""
    if symbol in snapshot.frozen_symbols:
        return ManualResult(snapshot)
    run = _Run(replace(snapshot, frozen_symbols=snapshot.frozen_symbols | {symbol}), now, cfg)
    run.note(AuditCode.RISK_SYMBOL_FROZEN, Severity.ERROR, cause, symbol)
    return ManualResult(run.snap, tuple(run.events))


def dust_lock(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """Mark a position below the venue minimum as DUST_LOCKED: it is never added to."""
    if symbol in snapshot.dust_locked:
        return ManualResult(snapshot)
    run = _Run(replace(snapshot, dust_locked=snapshot.dust_locked | {symbol}), now, cfg)
    run.note(AuditCode.RISK_DUST_LOCKED, Severity.WARN, cause, symbol)
    return ManualResult(run.snap, tuple(run.events))


def unlock_symbol(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """Force Unlock Symbol: DUST_LOCKED / FREEZE -> NORMAL for that symbol."""
    run = _Run(
        replace(
            snapshot,
            frozen_symbols=snapshot.frozen_symbols - {symbol},
            dust_locked=snapshot.dust_locked - {symbol},
        ),
        now,
        cfg,
    )
    run.note(AuditCode.RISK_SYMBOL_UNLOCKED, Severity.WARN, cause, symbol)
    return ManualResult(run.snap, tuple(run.events))


def force_observation(
    snapshot: RiskSnapshot, trigger: RiskTrigger, until: datetime, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """Rollback drill: force DEGRADED or COOLDOWN until ``until`` (no-op when already stricter)."""
    if trigger not in (RiskTrigger.FORCED_DEGRADE, RiskTrigger.FORCED_COOLDOWN):
        raise ValueError("observation trigger must be FORCED_DEGRADE or FORCED_COOLDOWN")
    run = _Run(replace(snapshot, observe_until=until), now, cfg)
    if run.can(trigger):
        changes: dict[str, Any] = {}
        if trigger is RiskTrigger.FORCED_COOLDOWN:
            changes["cooldown_until"] = until
        run.fire(trigger, cause, **changes)
    return ManualResult(run.snap, tuple(run.events))


def cooldown_exposure_target(snapshot: RiskSnapshot, cfg: RiskConfig) -> Decimal | None:
    """The exposure a COOLDOWN sells down to (``cooldown_exposure_share`` of what it began with), or None
    outside COOLDOWN or while the starting exposure is unknown."""
    if snapshot.state is not RiskState.COOLDOWN or snapshot.cooldown_exposure is None:
        return None
    return snapshot.cooldown_exposure * cfg.cooldown_exposure_share


def equity_snapshot_event(snapshot: RiskSnapshot, now: datetime) -> AuditEvent:
    """EQUITY_SNAPSHOT for the audit log: feeds the gate's drawdown and liquidation KRIs and, because it
    carries the full snapshot, lets ``replay`` restore the peak equity (which rises without any event).
    Emit it periodically (e.g. every minute) and at shutdown."""
    return AuditEvent(
        ts=now,
        code=AuditCode.EQUITY_SNAPSHOT,
        severity=Severity.INFO,
        cause="periodic equity snapshot",
        data={
            "equity": str(snapshot.equity),
            "peak_equity": str(snapshot.peak_equity),
            "drawdown": str(snapshot.drawdown),
            "liq_distance_p95": None if snapshot.liq_distance is None else str(snapshot.liq_distance),
            "risk_state": snapshot.state.value,
            "snapshot": snapshot_to_dict(snapshot),
        },
    )


# --- Serialisation and replay ------------------------------------------------------------------------


def _dump(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def snapshot_to_dict(snap: RiskSnapshot) -> dict[str, Any]:
    """JSON-friendly dict with exact Decimals (as strings)."""
    return {f.name: _dump(getattr(snap, f.name)) for f in fields(snap)}


_DECIMALS = {"peak_equity", "equity", "drawdown", "cooldown_rearm_above", "cooldown_exposure", "liq_distance"}
_TIMES = {"since", "last_eval", "cooldown_until", "fuse_until", "recovery_stage_since", "observe_until"}
_SETS = {"reduce_only_causes", "frozen_symbols", "dust_locked"}


def snapshot_from_dict(data: Mapping[str, Any]) -> RiskSnapshot:
    """Inverse of ``snapshot_to_dict``; unknown keys are ignored so older logs still replay."""
    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(RiskSnapshot)}
    for key, value in data.items():
        if key not in names:
            continue
        if value is None:
            kwargs[key] = None
        elif key == "state":
            kwargs[key] = RiskState(value)
        elif key in _DECIMALS:
            kwargs[key] = Decimal(str(value))
        elif key in _TIMES:
            kwargs[key] = datetime.fromisoformat(value)
        elif key in _SETS:
            kwargs[key] = frozenset(value)
        else:
            kwargs[key] = value
    return RiskSnapshot(**kwargs)


class ReplayMismatch(ValueError):
    """The audit log records a transition the table does not allow: the log or the code changed."""


def replay(events: Iterable[AuditEvent], start: RiskSnapshot | None = None) -> RiskSnapshot:
    """Rebuild the risk snapshot from audit events.

    Exact for the latched fields (state, timers, causes, frozen/dust sets, recovery, halt). Observed fields
    (equity, peak, gates) are as of the last event carrying a snapshot, so the executor emits
    ``equity_snapshot_event`` periodically; the next ``evaluate`` refreshes them anyway.

    Every RISK_STATE_CHANGE is re-applied through the transition table (so a log that skips a step or
    was written by an incompatible table is caught), then the snapshot recorded on the latest risk event
    restores the rest of the fields.
    """
    snap = start or RiskSnapshot()
    state = snap.state
    for event in events:
        if event.code is AuditCode.RISK_STATE_CHANGE:
            trigger = RiskTrigger(event.data["trigger"])
            recorded_from = RiskState(event.data["from"])
            if recorded_from is not state:
                raise ReplayMismatch(
                    f"{event.ts}: log says from {recorded_from.value}, replay is at {state.value}"
                )
            try:
                state = apply_trigger(state, trigger)
            except IllegalRiskTransition as exc:
                raise ReplayMismatch(str(exc)) from exc
            if state.value != event.data["to"]:
                raise ReplayMismatch(f"{event.ts}: table gives {state.value}, log says {event.data['to']}")
        dumped = event.data.get("snapshot") if isinstance(event.data, Mapping) else None
        if isinstance(dumped, Mapping):
            snap = snapshot_from_dict(dumped)
            state = snap.state
    return replace(snap, state=state)
