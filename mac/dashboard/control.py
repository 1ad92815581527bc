"""The kill switch: signed control commands into ``<shared>/control/`` and the executor's acknowledgements."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mac.dashboard.parsing import file_signature
from shared_schema.safe_json import safe_loads

CONTROL_DIR = "control"
ACK_DIR = "control_ack"
DEFAULT_ISSUER = "dashboard"
KILL_ACTIONS = ("FORCE_HALT", "FORCE_REDUCE", "RESET_FUSE", "FORCE_UNLOCK_SYMBOL")
KILL_LABELS = {
    "FORCE_HALT": "Force Halt 强制暂停",
    "FORCE_REDUCE": "Force Reduce 强制减仓",
    "RESET_FUSE": "Reset FUSE 解除熔断",
    "FORCE_UNLOCK_SYMBOL": "Force Unlock Symbol 解锁品种",
}


def write_control(
    shared_dir: Path | str,
    action: str,
    secret: bytes | None,
    now: datetime,
    symbol: str | None = None,
    issuer: str = DEFAULT_ISSUER,
    ttl: timedelta = timedelta(minutes=10),
) -> tuple[str, Path]:
    """Write one signed control command into ``<shared>/control/``; returns (command_id, path).

    Raises ``ValueError`` without a secret (the page disables the buttons then) or for a bad action.
    """
    from core.control import ControlAction, new_command, sign_command
    from core.control.file_door import write_command_file

    if not secret:
        raise ValueError("GRIDBRIDGE_CONTROL_SECRET is not set: commands cannot be signed")
    command = new_command(ControlAction(action), issuer, now, ttl, symbol=symbol)
    path = write_command_file(shared_dir, sign_command(command, secret))
    return command.command_id, path


def read_acks(shared_dir: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The executor's acknowledgements in ``control_ack/``, newest first; unreadable ones are reported."""
    folder = Path(shared_dir) / ACK_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = safe_loads(path.read_bytes())
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            data = {"command_id": path.stem, "accepted": None, "reason": f"unreadable ack: {exc}", "ts": ""}
        data["_mtime"] = file_signature(path)[0]
        out.append(data)
    out.sort(key=lambda d: d["_mtime"], reverse=True)
    return out[:limit]


def pending_commands(shared_dir: Path) -> list[str]:
    folder = Path(shared_dir) / CONTROL_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(".tmp-"))
