"""The kill switch: a pure handler that applies one verified command to the kill-switch and risk state.

All three doors (signed command file, HTTP API, SIGUSR1) end here, so a command means the same thing
whichever way it arrived. The handler returns what the executor must *do* (``actions``) and the audit
events; it never touches orders itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from core.control.commands import ControlAction, ControlCommand, ControlReason
from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.manual import (
    ManualResult,
    clear_manual_causes,
    force_reduce,
    reset_fuse,
    set_halted,
    unlock_symbol,
)
from core.risk.snapshot import RiskSnapshot, snapshot_to_dict

MAX_REMEMBERED_IDS = 1000


class KillAction(str, Enum):
    STOP_NEW_ORDERS = "STOP_NEW_ORDERS"
    CANCEL_OPEN_ORDERS = "CANCEL_OPEN_ORDERS"
    REDUCE_EXPOSURE = "REDUCE_EXPOSURE"
    RESUME_ORDERS = "RESUME_ORDERS"


@dataclass(frozen=True)
class KillSwitchState:
    """What the kill switch's commands decided. ``halted`` is their effect; a host that keeps its own durable
    halt record (the executor's journal) makes this flag and the risk snapshot's follow that record."""

    halted: bool = False
    halted_at: datetime | None = None
    last_command_id: str | None = None
    # Recently applied command ids: a command delivered twice (two doors, a retried POST) applies once.
    applied_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandOutcome:
    state: KillSwitchState
    risk: RiskSnapshot
    events: tuple[AuditEvent, ...]
    actions: tuple[KillAction, ...] = ()
    refused: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refused is None


_CODES = {
    ControlAction.FORCE_HALT: AuditCode.KILL_SWITCH_FORCE_HALT,
    ControlAction.FORCE_REDUCE: AuditCode.KILL_SWITCH_FORCE_REDUCE,
    ControlAction.RESET_FUSE: AuditCode.KILL_SWITCH_RESET_FUSE,
    ControlAction.FORCE_UNLOCK_SYMBOL: AuditCode.KILL_SWITCH_FORCE_UNLOCK,
    ControlAction.RESUME: AuditCode.KILL_SWITCH_RESUME,
}


def _cmd_data(cmd: ControlCommand, source: str) -> dict[str, Any]:
    return {"command_id": cmd.command_id, "action": cmd.action.value, "issuer": cmd.issuer, "source": source}


def rejection_event(
    now: datetime, reason: str, source: str, command: ControlCommand | None = None, detail: str = ""
) -> AuditEvent:
    """CONTROL_REJECTED for a command refused at a door or by the handler."""
    data: dict[str, Any] = {"reason": reason, "source": source, "detail": detail}
    if command is not None:
        data.update(_cmd_data(command, source))
    return AuditEvent(
        ts=now,
        code=AuditCode.CONTROL_REJECTED,
        severity=Severity.WARN,
        cause=f"control command refused: {reason}",
        symbol=command.symbol if command is not None else None,
        data=data,
    )


def handle_command(
    state: KillSwitchState,
    risk: RiskSnapshot,
    command: ControlCommand,
    now: datetime,
    cfg: RiskConfig,
    source: str = "file",
) -> CommandOutcome:
    """Apply one already-verified command; refusals come back as ``refused`` plus CONTROL_REJECTED."""
    if command.command_id in state.applied_ids:
        reason = ControlReason.CONTROL_DUPLICATE.value
        return CommandOutcome(state, risk, (rejection_event(now, reason, source, command),), refused=reason)
    cause = f"{command.action.value} by {command.issuer} via {source} ({command.command_id})"
    actions: tuple[KillAction, ...] = ()
    new_state = state
    result: ManualResult
    if command.action is ControlAction.FORCE_HALT:
        result = set_halted(risk, now, cfg, cause)
        new_state = replace(state, halted=True, halted_at=now)
        actions = (KillAction.STOP_NEW_ORDERS, KillAction.CANCEL_OPEN_ORDERS)
    elif command.action is ControlAction.FORCE_REDUCE:
        result = force_reduce(risk, now, cfg, cause)
        actions = (KillAction.REDUCE_EXPOSURE,)
    elif command.action is ControlAction.RESET_FUSE:
        result = reset_fuse(risk, now, cfg, cause)
    elif command.action is ControlAction.FORCE_UNLOCK_SYMBOL:
        assert command.symbol is not None  # the model validator guarantees it
        result = unlock_symbol(risk, command.symbol, now, cfg, cause)
    else:
        result = clear_manual_causes(risk, now, cfg, cause)
        new_state = replace(state, halted=False, halted_at=None)
        actions = (KillAction.RESUME_ORDERS,)
    if result.refused is not None:
        return CommandOutcome(
            state, risk, (rejection_event(now, result.refused, source, command),), refused=result.refused
        )
    ids = (state.applied_ids + (command.command_id,))[-MAX_REMEMBERED_IDS:]
    new_state = replace(new_state, last_command_id=command.command_id, applied_ids=ids)
    data = _cmd_data(command, source)
    data["actions"] = [a.value for a in actions]
    # The snapshot rides along so a replay of the audit log restores the halt flag too.
    data["snapshot"] = snapshot_to_dict(result.snapshot)
    kill_event = AuditEvent(
        ts=now,
        code=_CODES[command.action],
        severity=Severity.CRITICAL,
        cause=cause,
        symbol=command.symbol,
        data=data,
    )
    return CommandOutcome(new_state, result.snapshot, (*result.events, kill_event), actions)
