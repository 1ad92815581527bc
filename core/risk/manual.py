"""Manual and execution-side risk commands (the kill-switch handler, the executor, the rollback drill):
each takes the snapshot and returns the next one with the audit events it causes, or a refusal."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.snapshot import CAUSE_MANUAL, SELF_CLEARING_CAUSES, ZERO, RiskSnapshot
from core.risk.state import RiskState, RiskTrigger
from core.risk.transitions import RiskRun


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
    run = RiskRun(snapshot, now, cfg)
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
    run = RiskRun(replace(snapshot, reduce_only_causes=snapshot.reduce_only_causes | {reason}), now, cfg)
    if run.can(RiskTrigger.MANUAL_FORCE_REDUCE):
        run.fire(RiskTrigger.MANUAL_FORCE_REDUCE, cause)
    return ManualResult(run.snap, tuple(run.events))


def clear_manual_causes(snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str) -> ManualResult:
    """Resume: drop the latched manual causes and the halt; the next ``evaluate`` steps down if clear."""
    keep = snapshot.reduce_only_causes & SELF_CLEARING_CAUSES
    run = RiskRun(replace(snapshot, reduce_only_causes=keep, halted=False), now, cfg)
    if run.snap.state is RiskState.REDUCE_ONLY and not keep:
        run.fire(RiskTrigger.REDUCE_ONLY_CLEARED, cause)
    return ManualResult(run.snap, tuple(run.events))


def set_halted(snapshot: RiskSnapshot, now: datetime, cfg: RiskConfig, cause: str) -> ManualResult:
    """Force Halt: no new orders of any kind until Resume."""
    run = RiskRun(replace(snapshot, halted=True), now, cfg)
    return ManualResult(run.snap, ())


def freeze_symbol(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """FREEZE one symbol (no orders at all) after a severe mismatch or unhealthy execution."""
    if symbol in snapshot.frozen_symbols:
        return ManualResult(snapshot)
    run = RiskRun(replace(snapshot, frozen_symbols=snapshot.frozen_symbols | {symbol}), now, cfg)
    run.note(AuditCode.RISK_SYMBOL_FROZEN, Severity.ERROR, cause, symbol)
    return ManualResult(run.snap, tuple(run.events))


def dust_lock(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """Mark a position below the venue minimum as DUST_LOCKED: it is never added to."""
    if symbol in snapshot.dust_locked:
        return ManualResult(snapshot)
    run = RiskRun(replace(snapshot, dust_locked=snapshot.dust_locked | {symbol}), now, cfg)
    run.note(AuditCode.RISK_DUST_LOCKED, Severity.WARN, cause, symbol)
    return ManualResult(run.snap, tuple(run.events))


def unlock_symbol(
    snapshot: RiskSnapshot, symbol: str, now: datetime, cfg: RiskConfig, cause: str
) -> ManualResult:
    """Force Unlock Symbol: DUST_LOCKED / FREEZE -> NORMAL for that symbol."""
    run = RiskRun(
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
    run = RiskRun(replace(snapshot, observe_until=until), now, cfg)
    if run.can(trigger):
        changes: dict[str, Any] = {}
        if trigger is RiskTrigger.FORCED_COOLDOWN:
            changes["cooldown_until"] = until
        run.fire(trigger, cause, **changes)
    return ManualResult(run.snap, tuple(run.events))
