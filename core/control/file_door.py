"""Door (a): signed command files.

Layout (single writer per folder, so no locking):

    <root>/control/<command_id>.json      written by ``write_command_file`` (operator side), atomically
    <root>/control_ack/<command_id>.json  written by the executor after handling: {command_id, accepted,
                                          reason, ts}; the command file is then deleted

Temp files (``.tmp-*``) and anything not ending in ``.json`` are ignored, so a half-written command is
never read. A file that cannot be parsed is acknowledged under its file stem and removed (it would fail
the same way forever).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.control.commands import ControlCommand, NonceStore, SignedCommand, verify_command
from core.control.killswitch import rejection_event
from core.events import AuditCode, AuditEvent, Severity
from shared_schema.atomic_io import TEMP_PREFIX, atomic_write_bytes

CONTROL_DIR = "control"
ACK_DIR = "control_ack"


def write_command_file(root: Path | str, signed: SignedCommand) -> Path:
    """Drop one signed command into ``<root>/control/`` atomically."""
    folder = Path(root) / CONTROL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{signed.body.command_id}.json"
    atomic_write_bytes(path, signed.model_dump_json().encode("utf-8"))
    return path


def pending_command_files(root: Path | str) -> list[Path]:
    """Command files waiting, oldest name first (ids start with a timestamp when made by ``new_command``)."""
    folder = Path(root) / CONTROL_DIR
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix == ".json" and not p.name.startswith(TEMP_PREFIX)
    )


def write_ack(root: Path | str, command_id: str, accepted: bool, reason: str | None, now: datetime) -> Path:
    """Record the outcome for the operator in ``<root>/control_ack/<command_id>.json``."""
    folder = Path(root) / ACK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{command_id}.json"
    body = {"command_id": command_id, "accepted": accepted, "reason": reason, "ts": now.isoformat()}
    atomic_write_bytes(path, json.dumps(body).encode("utf-8"))
    return path


def read_ack(root: Path | str, command_id: str) -> dict[str, object] | None:
    try:
        data = json.loads((Path(root) / ACK_DIR / f"{command_id}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class FileDoorResult:
    events: tuple[AuditEvent, ...]
    processed: int


def process_control_folder(
    root: Path | str,
    secret: bytes | None,
    nonces: NonceStore,
    now: datetime,
    apply: Callable[[ControlCommand], str | None],
) -> FileDoorResult:
    """Verify every pending command file, hand good ones to ``apply`` (returns a refusal reason or None),
    acknowledge each, delete it, and return the door's audit events (the handler's own go via ``apply``)."""
    events: list[AuditEvent] = []
    files = pending_command_files(root)
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError:
            continue  # being replaced right now; next pass
        result = verify_command(raw, secret, nonces, now)
        command_id = result.command.command_id if result.command is not None else path.stem
        if result.ok and result.command is not None:
            refused = apply(result.command)
            if refused is None:
                events.append(
                    AuditEvent(
                        ts=now,
                        code=AuditCode.CONTROL_ACCEPTED,
                        severity=Severity.INFO,
                        cause="signed command file accepted",
                        symbol=result.command.symbol,
                        data={"command_id": command_id, "source": "file"},
                    )
                )
        else:
            refused = result.reason.value if result.reason is not None else "CONTROL_MALFORMED"
            events.append(rejection_event(now, refused, "file", result.command, result.detail))
        write_ack(root, command_id, refused is None, refused, now)
        try:
            path.unlink()
        except OSError:
            pass
    return FileDoorResult(tuple(events), len(files))
