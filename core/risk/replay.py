"""The risk state from the audit log: the periodic ``EQUITY_SNAPSHOT`` event and ``replay``, which
re-applies every recorded transition through the table and restores the latest recorded snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from core.events import AuditCode, AuditEvent, Severity
from core.risk.snapshot import RiskSnapshot, snapshot_from_dict, snapshot_to_dict
from core.risk.state import IllegalRiskTransition, RiskState, RiskTrigger, apply_trigger


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
