"""The risk kernel's state: ``RiskSnapshot`` (immutable, replaced on every change), the reduce-only causes,
and its exact JSON form (every risk audit event carries it, so the log alone replays the state)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from core.oms.account import AccountState
from core.risk.config import RiskConfig
from core.risk.state import RiskState

ZERO = Decimal(0)
ONE = Decimal(1)

# Why the account is REDUCE_ONLY; it leaves only when every cause is gone.
CAUSE_TRADE_NOT_OK = "TRADE_NOT_OK"  # clears by itself when trade_ok comes back
CAUSE_DATA_NOT_OK = "DATA_NOT_OK"  # stale or unreadable market data: clears by itself when data_ok comes back
CAUSE_CROSS_MARGIN = "CROSS_MARGIN"  # a cross-margin position while isolated is required: clears itself
SELF_CLEARING_CAUSES = frozenset({CAUSE_TRADE_NOT_OK, CAUSE_DATA_NOT_OK, CAUSE_CROSS_MARGIN})
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
    # The venue keeps refusing our pace (rate limit backoff): DEGRADED holds until it recovers.
    exec_degraded: bool = False
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


def cooldown_exposure_target(snapshot: RiskSnapshot, cfg: RiskConfig) -> Decimal | None:
    """The exposure a COOLDOWN sells down to (``cooldown_exposure_share`` of what it began with), or None
    outside COOLDOWN or while the starting exposure is unknown."""
    if snapshot.state is not RiskState.COOLDOWN or snapshot.cooldown_exposure is None:
        return None
    return snapshot.cooldown_exposure * cfg.cooldown_exposure_share


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
