"""The account risk state machine, as a table.

States, strictest last: NORMAL < DEGRADED < COOLDOWN / REDUCE_ONLY < FUSE. ``TRANSITIONS`` is the only
place a state change is defined; ``apply_trigger`` refuses anything not in it with ``IllegalRiskTransition``.
``core.risk.evaluate.evaluate`` decides *which* trigger fired from the account and gates.
"""

from __future__ import annotations

from enum import Enum


class RiskState(str, Enum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"  # risk budget down, grid thresholds up
    COOLDOWN = "COOLDOWN"  # forced reduction, only reducing trades, until the cooldown expires
    FUSE = "FUSE"  # economic full close; only a manual Reset FUSE leaves it
    REDUCE_ONLY = "REDUCE_ONLY"  # only reducing trades (trade/data not ok, severe mismatch, Force Reduce)


class RiskTrigger(str, Enum):
    DRAWDOWN_DEGRADED = "DRAWDOWN_DEGRADED"
    DRAWDOWN_COOLDOWN = "DRAWDOWN_COOLDOWN"
    DRAWDOWN_FUSE = "DRAWDOWN_FUSE"
    DRAWDOWN_RECOVERED = "DRAWDOWN_RECOVERED"
    COOLDOWN_EXPIRED = "COOLDOWN_EXPIRED"
    TRADE_NOT_OK = "TRADE_NOT_OK"
    DATA_NOT_OK = "DATA_NOT_OK"
    REDUCE_ONLY_CLEARED = "REDUCE_ONLY_CLEARED"
    RECONCILE_MINOR = "RECONCILE_MINOR"
    RECONCILE_SEVERE = "RECONCILE_SEVERE"
    MANUAL_FORCE_REDUCE = "MANUAL_FORCE_REDUCE"
    MANUAL_RESET_FUSE = "MANUAL_RESET_FUSE"
    FORCED_DEGRADE = "FORCED_DEGRADE"  # rollback drill observation window
    FORCED_COOLDOWN = "FORCED_COOLDOWN"  # rollback drill observation window
    CROSS_MARGIN_FOUND = "CROSS_MARGIN_FOUND"  # a margined position in cross mode: stop opening
    EXECUTION_DEGRADED = "EXECUTION_DEGRADED"  # the venue keeps refusing (rate limit): smaller, slower


S = RiskState
T = RiskTrigger

TRANSITIONS: dict[tuple[RiskState, RiskTrigger], RiskState] = {
    # Drawdown escalation: a fast crash can skip levels, so every lower state reaches every higher one.
    (S.NORMAL, T.DRAWDOWN_DEGRADED): S.DEGRADED,
    (S.NORMAL, T.DRAWDOWN_COOLDOWN): S.COOLDOWN,
    (S.NORMAL, T.DRAWDOWN_FUSE): S.FUSE,
    (S.DEGRADED, T.DRAWDOWN_COOLDOWN): S.COOLDOWN,
    (S.DEGRADED, T.DRAWDOWN_FUSE): S.FUSE,
    (S.COOLDOWN, T.DRAWDOWN_FUSE): S.FUSE,
    # A broker outage while reduce-only can still end in a 20 % loss (gap on reopen): FUSE wins.
    (S.REDUCE_ONLY, T.DRAWDOWN_FUSE): S.FUSE,
    # Leaving the bad states steps down through DEGRADED, never straight to NORMAL.
    (S.DEGRADED, T.DRAWDOWN_RECOVERED): S.NORMAL,
    # COOLDOWN_EXPIRED fires only when the time is up AND the drawdown is back under the COOLDOWN line.
    (S.COOLDOWN, T.COOLDOWN_EXPIRED): S.DEGRADED,
    (S.REDUCE_ONLY, T.REDUCE_ONLY_CLEARED): S.DEGRADED,
    # Reset FUSE starts the staged recovery in DEGRADED (25 % budget first).
    (S.FUSE, T.MANUAL_RESET_FUSE): S.DEGRADED,
    # trade_ok=false: the terminal refuses to trade; from COOLDOWN too, because reduce-only must outlive it.
    (S.NORMAL, T.TRADE_NOT_OK): S.REDUCE_ONLY,
    (S.DEGRADED, T.TRADE_NOT_OK): S.REDUCE_ONLY,
    (S.COOLDOWN, T.TRADE_NOT_OK): S.REDUCE_ONLY,
    # data_ok=false (stale or unreadable quotes): nothing may open on prices nobody can see; clears itself.
    (S.NORMAL, T.DATA_NOT_OK): S.REDUCE_ONLY,
    (S.DEGRADED, T.DATA_NOT_OK): S.REDUCE_ONLY,
    (S.COOLDOWN, T.DATA_NOT_OK): S.REDUCE_ONLY,
    # Reconciliation: a minor mismatch degrades, a severe account-level one (cash) stops opening.
    (S.NORMAL, T.RECONCILE_MINOR): S.DEGRADED,
    (S.NORMAL, T.RECONCILE_SEVERE): S.REDUCE_ONLY,
    (S.DEGRADED, T.RECONCILE_SEVERE): S.REDUCE_ONLY,
    (S.COOLDOWN, T.RECONCILE_SEVERE): S.REDUCE_ONLY,
    # Force Reduce from the kill switch.
    (S.NORMAL, T.MANUAL_FORCE_REDUCE): S.REDUCE_ONLY,
    (S.DEGRADED, T.MANUAL_FORCE_REDUCE): S.REDUCE_ONLY,
    (S.COOLDOWN, T.MANUAL_FORCE_REDUCE): S.REDUCE_ONLY,
    # Rollback drill: observation window after switching versions back.
    (S.NORMAL, T.FORCED_DEGRADE): S.DEGRADED,
    (S.NORMAL, T.FORCED_COOLDOWN): S.COOLDOWN,
    (S.DEGRADED, T.FORCED_COOLDOWN): S.COOLDOWN,
    # Cross margin found while isolated is required: one position's loss could eat the whole wallet, so
    # nothing opens until every position is isolated again (the cause clears itself).
    (S.NORMAL, T.CROSS_MARGIN_FOUND): S.REDUCE_ONLY,
    (S.DEGRADED, T.CROSS_MARGIN_FOUND): S.REDUCE_ONLY,
    (S.COOLDOWN, T.CROSS_MARGIN_FOUND): S.REDUCE_ONLY,
    # Repeated venue rate-limit refusals: degrade (smaller budget) until a quiet period has passed.
    (S.NORMAL, T.EXECUTION_DEGRADED): S.DEGRADED,
}

# States that only allow trades that reduce exposure.
REDUCING_STATES = frozenset({S.COOLDOWN, S.FUSE, S.REDUCE_ONLY})

del S, T


class IllegalRiskTransition(ValueError):
    """A trigger that has no entry for the current state; nothing was applied."""

    def __init__(self, current: RiskState, trigger: RiskTrigger) -> None:
        super().__init__(f"illegal risk transition {current.value} --{trigger.value}-->")
        self.current = current
        self.trigger = trigger


def is_allowed(current: RiskState, trigger: RiskTrigger) -> bool:
    return (current, trigger) in TRANSITIONS


def apply_trigger(current: RiskState, trigger: RiskTrigger) -> RiskState:
    """The next state from the table, or ``IllegalRiskTransition``."""
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise IllegalRiskTransition(current, trigger) from None
