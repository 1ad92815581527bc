"""Pure risk evaluation: (snapshot, inputs, now, config) -> (snapshot, audit events).

Called on every tick and account update with the time passed in. Every state change goes through the
table in ``core.risk.state`` (``core.risk.transitions.RiskRun``) and produces one RISK_STATE_CHANGE event
carrying its trigger, its cause and the full snapshot after the change, so ``core.risk.replay`` can rebuild
the state from the audit log alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from core.events import AuditCode, AuditEvent, Severity
from core.oms.account import AccountState, drawdown, weighted_liq_distance
from core.oms.reconcile import ReconcileResult, ReconcileSeverity
from core.risk.config import RiskConfig
from core.risk.snapshot import (
    CAUSE_CROSS_MARGIN,
    CAUSE_DATA_NOT_OK,
    CAUSE_RECONCILE,
    CAUSE_TRADE_NOT_OK,
    RiskSnapshot,
)
from core.risk.state import RiskState, RiskTrigger
from core.risk.transitions import RiskRun


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
    # Margined markets: symbols whose position the venue reports in cross margin (opens blocked while any
    # remain, when RiskConfig.require_isolated_margin), and whether the venue keeps refusing our pace
    # (core.execution.rate_limit.RateLimitGuard.degraded): DEGRADED until it recovers.
    cross_margin_symbols: frozenset[str] = frozenset()
    exec_degraded: bool = False


@dataclass(frozen=True)
class RiskEvaluation:
    snapshot: RiskSnapshot
    events: tuple[AuditEvent, ...] = field(default_factory=tuple)

    @property
    def changed_state(self) -> bool:
        return any(e.code is AuditCode.RISK_STATE_CHANGE for e in self.events)


def evaluate(snapshot: RiskSnapshot, inputs: RiskInputs, now: datetime, cfg: RiskConfig) -> RiskEvaluation:
    """Fold one observation into the risk state; several transitions may chain in one call."""
    run = RiskRun(snapshot, now, cfg, inputs.exposure)
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
        return RiskEvaluation(run.snap, tuple(run.events))

    if inputs.reconcile is not None:
        _apply_reconcile(run, inputs.reconcile)

    causes = set(run.snap.reduce_only_causes)
    for ok, cause in ((inputs.trade_ok, CAUSE_TRADE_NOT_OK), (inputs.data_ok, CAUSE_DATA_NOT_OK)):
        if ok:
            causes.discard(cause)
        else:
            causes.add(cause)
    cross = sorted(inputs.cross_margin_symbols) if cfg.require_isolated_margin else []
    had_cross = CAUSE_CROSS_MARGIN in causes
    if cross:
        causes.add(CAUSE_CROSS_MARGIN)
    else:
        causes.discard(CAUSE_CROSS_MARGIN)
    run.snap = replace(run.snap, reduce_only_causes=frozenset(causes), exec_degraded=inputs.exec_degraded)
    if cross and not had_cross:
        run.note(AuditCode.RISK_CROSS_MARGIN_FOUND, Severity.ERROR, "cross-margin position(s) found while "
                 "isolated margin is required: opens blocked", symbols=cross)
    elif had_cross and not cross:
        run.note(AuditCode.RISK_CROSS_MARGIN_CLEARED, Severity.INFO, "no cross-margin position left")
    if cross and run.can(RiskTrigger.CROSS_MARGIN_FOUND):
        run.fire(RiskTrigger.CROSS_MARGIN_FOUND, f"cross margin on {', '.join(cross)}")
    if inputs.exec_degraded and run.can(RiskTrigger.EXECUTION_DEGRADED):
        run.fire(RiskTrigger.EXECUTION_DEGRADED, "venue keeps refusing our pace (rate-limit backoff)")
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
        and not run.snap.exec_degraded
        and not observing
    ):
        run.fire(
            RiskTrigger.DRAWDOWN_RECOVERED, f"drawdown {pct} back under the recovery line", observe_until=None
        )
    return RiskEvaluation(run.snap, tuple(run.events))


def _apply_reconcile(run: RiskRun, result: ReconcileResult) -> None:
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


def _advance_recovery(run: RiskRun, healthy: bool) -> None:
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


def _update_liq(run: RiskRun, acct: AccountState) -> None:
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
