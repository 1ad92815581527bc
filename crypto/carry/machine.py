"""The carry engine's state machine, per pair, as a table.

IDLE -> OPENING (new signals frozen while the two legs are placed) -> HEDGING (the pair is held, funding
collected) or back to IDLE when a lone first leg was unwound; HEDGING <-> REBALANCING (leg gap, margin top-up);
HEDGING/REBALANCING -> CLOSING -> IDLE. Any unhandled fault or a control command sends every live state to
STOPPING (``close_all``), which ends in STOPPED; only a manual RESET (after ``bootstrap``) leaves STOPPED.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from core.events import AuditCode, AuditEvent, Severity


class CarryState(str, Enum):
    IDLE = "IDLE"
    OPENING = "OPENING"
    HEDGING = "HEDGING"
    REBALANCING = "REBALANCING"
    CLOSING = "CLOSING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class CarryTrigger(str, Enum):
    OPEN_SIGNAL = "OPEN_SIGNAL"
    LEGS_FILLED = "LEGS_FILLED"
    LEG_UNWOUND = "LEG_UNWOUND"  # the second leg failed, the first was taken back
    REBALANCE_NEEDED = "REBALANCE_NEEDED"
    REBALANCED = "REBALANCED"
    CLOSE_SIGNAL = "CLOSE_SIGNAL"
    CLOSED = "CLOSED"
    FAULT = "FAULT"
    CONTROL_STOP = "CONTROL_STOP"
    RESET = "RESET"


S, T = CarryState, CarryTrigger
_LIVE = (S.IDLE, S.OPENING, S.HEDGING, S.REBALANCING, S.CLOSING)

TRANSITIONS: dict[tuple[CarryState, CarryTrigger], CarryState] = {
    (S.IDLE, T.OPEN_SIGNAL): S.OPENING,
    (S.OPENING, T.LEGS_FILLED): S.HEDGING,
    (S.OPENING, T.LEG_UNWOUND): S.IDLE,
    (S.HEDGING, T.REBALANCE_NEEDED): S.REBALANCING,
    (S.REBALANCING, T.REBALANCED): S.HEDGING,
    (S.HEDGING, T.CLOSE_SIGNAL): S.CLOSING,
    # Health under the close line found in the middle of a top-up: close from there.
    (S.REBALANCING, T.CLOSE_SIGNAL): S.CLOSING,
    (S.CLOSING, T.CLOSED): S.IDLE,
    (S.STOPPING, T.CLOSED): S.STOPPED,
    # A second control command while closing everything changes nothing.
    (S.STOPPING, T.CONTROL_STOP): S.STOPPING,
    (S.STOPPING, T.FAULT): S.STOPPING,
    (S.STOPPED, T.RESET): S.IDLE,
    **{(s, T.FAULT): S.STOPPING for s in _LIVE},
    **{(s, T.CONTROL_STOP): S.STOPPING for s in _LIVE},
}

# States in which the pair may hold a position (bookkeeping and risk checks run).
HOLDING_STATES = frozenset({S.OPENING, S.HEDGING, S.REBALANCING, S.CLOSING, S.STOPPING})

del S, T


class IllegalCarryTransition(ValueError):
    def __init__(self, current: CarryState, trigger: CarryTrigger) -> None:
        super().__init__(f"illegal carry transition {current.value} --{trigger.value}-->")
        self.current = current
        self.trigger = trigger


def apply_trigger(current: CarryState, trigger: CarryTrigger) -> CarryState:
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise IllegalCarryTransition(current, trigger) from None


def ms_to_dt(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)


def transition_event(ts_ms: int, symbol: str, before: CarryState, after: CarryState, trigger: CarryTrigger,
                     cause: str, data: dict[str, Any] | None = None) -> AuditEvent:
    """The audit record of one accepted transition (built after ``apply_trigger`` accepted it)."""
    severity = Severity.WARN if after in (CarryState.STOPPING, CarryState.STOPPED) else Severity.INFO
    return AuditEvent(ts=ms_to_dt(ts_ms), code=AuditCode.CARRY_STATE_CHANGE, severity=severity, cause=cause,
                      symbol=symbol, data={"from": before.value, "to": after.value, "trigger": trigger.value,
                                           **(data or {})})
