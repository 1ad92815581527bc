"""Rollback drill, pure: pick the previous config + strategy bundle, force an observation window, and
say why in one ROLLBACK audit record. The CLI shell moves the files afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.manual import force_observation
from core.risk.snapshot import RiskSnapshot, snapshot_to_dict
from core.risk.state import RiskTrigger


@dataclass(frozen=True)
class VersionRecord:
    """One deployed bundle; ``history`` lists them oldest first, the active one last."""

    config_version: str
    strategy_version: str
    git: str = ""


class RollbackImpossible(ValueError):
    """There is no earlier version to go back to."""


@dataclass(frozen=True)
class RollbackPlan:
    from_version: VersionRecord
    to_version: VersionRecord
    history: tuple[VersionRecord, ...]  # the new history: the rolled-back version dropped
    snapshot: RiskSnapshot
    events: tuple[AuditEvent, ...]


def plan_rollback(
    history: Sequence[VersionRecord],
    snapshot: RiskSnapshot,
    now: datetime,
    cfg: RiskConfig,
    reason: str,
    observe_for: timedelta = timedelta(hours=24),
    observe_as: RiskTrigger = RiskTrigger.FORCED_DEGRADE,
    drill: bool = False,
) -> RollbackPlan:
    """Roll back to the version before the active one and hold DEGRADED/COOLDOWN for ``observe_for``.

    The active version is dropped from the returned history so a second rollback goes one further back
    instead of bouncing between the last two.
    """
    if len(history) < 2:
        raise RollbackImpossible("no previous version in the history")
    current, previous = history[-1], history[-2]
    risk = force_observation(
        snapshot, observe_as, now + observe_for, now, cfg, f"rollback observation window: {reason}"
    )
    record = AuditEvent(
        ts=now,
        code=AuditCode.ROLLBACK,
        severity=Severity.WARN if drill else Severity.ERROR,
        cause=reason,
        data={
            "drill": drill,
            "from": {
                "config": current.config_version,
                "strategy": current.strategy_version,
                "git": current.git,
            },
            "to": {
                "config": previous.config_version,
                "strategy": previous.strategy_version,
                "git": previous.git,
            },
            "observe_until": (now + observe_for).isoformat(),
            "observe_as": observe_as.value,
            "snapshot": snapshot_to_dict(risk.snapshot),
        },
    )
    return RollbackPlan(current, previous, tuple(history[:-1]), risk.snapshot, (*risk.events, record))
