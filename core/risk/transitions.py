"""One risk operation's run: table transitions applied in order, each recorded as an audit event after
it is accepted (``RiskRun``); shared by ``evaluate`` and the manual commands."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.snapshot import RiskSnapshot, snapshot_to_dict
from core.risk.state import IllegalRiskTransition, RiskState, RiskTrigger, apply_trigger

_SEVERITY = {
    RiskState.NORMAL: Severity.INFO,
    RiskState.DEGRADED: Severity.WARN,
    RiskState.COOLDOWN: Severity.ERROR,
    RiskState.REDUCE_ONLY: Severity.ERROR,
    RiskState.FUSE: Severity.CRITICAL,
}


class RiskRun:
    """Accumulates the snapshot and the events of one pure operation (an evaluation or a manual command):
    every state change goes through the table (``fire``), every note carries the snapshot after it."""

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
