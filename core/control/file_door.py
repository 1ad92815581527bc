"""Door (a): signed command files.

Layout (single writer per folder, so no locking):

    <root>/control/<command_id>.json      written by ``write_command_file`` (operator side), atomically
    <root>/control_ack/<command_id>.json  written by the executor after handling: {command_id, accepted,
                                          reason, detail, ts, file}; the command file is then deleted

Temp files (``.tmp-*``) and anything not ending in ``.json`` are ignored, so a half-written command is
never read. Every other entry gets exactly one acknowledgement, whatever it holds: a file that cannot be
parsed, is too large or nests too deep is acknowledged ``CONTROL_MALFORMED`` under its file stem and
removed (it would fail the same way forever); one that cannot be removed is skipped from then on, because
its acknowledgement records the file's size and mtime. Nothing one file raises stops the others.

The door never follows a link: when ``control/`` or ``control_ack/`` is a symlink (or a Windows junction)
it stays closed and says so; a command file that is a link is refused and only the link is removed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.control.commands import (
    DEFAULT_MAX_TTL,
    MAX_COMMAND_BYTES,
    ControlCommand,
    ControlReason,
    NonceStore,
    SignedCommand,
    VerifyResult,
    verify_command,
)
from core.control.killswitch import rejection_event
from core.events import AuditCode, AuditEvent, Severity
from shared_schema.atomic_io import TEMP_PREFIX, atomic_write_bytes

CONTROL_DIR = "control"
ACK_DIR = "control_ack"
MAX_COMMAND_FILE_BYTES = MAX_COMMAND_BYTES
_REPARSE_POINT = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT: symlinks and junctions on Windows


class UnsafeControlPath(OSError):
    """A control folder or file is a link (or not what it should be); the door refuses to use it."""


def is_link(path: Path | str) -> bool:
    """True for a symlink, and on Windows for any reparse point (junctions included); never follows."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISLNK(st.st_mode) or bool(getattr(st, "st_file_attributes", 0) & _REPARSE_POINT)


def door_problem(root: Path | str) -> str | None:
    """Why the file door must stay closed (a linked or non-folder ``control/`` or ``control_ack/``)."""
    for name in (CONTROL_DIR, ACK_DIR):
        path = Path(root) / name
        if is_link(path):
            return f"control door closed: {name}/ is a symlink or junction; it is not followed (replace it with a folder)"
        if path.exists() and not path.is_dir():
            return f"control door closed: {name} is not a folder"
    return None


def write_command_file(root: Path | str, signed: SignedCommand) -> Path:
    """Drop one signed command into ``<root>/control/`` atomically."""
    folder = Path(root) / CONTROL_DIR
    if is_link(folder):
        raise UnsafeControlPath(f"{folder} is a symlink or junction; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{signed.body.command_id}.json"
    atomic_write_bytes(path, signed.model_dump_json().encode("utf-8"))
    return path


def pending_command_files(root: Path | str) -> list[Path]:
    """Entries waiting, oldest name first (ids start with a timestamp when made by ``new_command``).

    Links are listed (so they are refused and removed) but never followed; none when the door is closed.
    """
    folder = Path(root) / CONTROL_DIR
    if door_problem(root) is not None or not folder.is_dir():
        return []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(folder / n for n in names if n.endswith(".json") and not n.startswith(TEMP_PREFIX))


def write_ack(
    root: Path | str,
    command_id: str,
    accepted: bool,
    reason: str | None,
    now: datetime,
    detail: str = "",
    file: list[object] | None = None,
) -> Path:
    """Record the outcome for the operator in ``<root>/control_ack/<command_id>.json`` (never through a link)."""
    folder = Path(root) / ACK_DIR
    if is_link(folder):
        raise UnsafeControlPath(f"{folder} is a symlink or junction; refusing to write through it")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{command_id}.json"
    body = {"command_id": command_id, "accepted": accepted, "reason": reason, "detail": detail,
            "ts": now.isoformat(), "file": file}
    atomic_write_bytes(path, json.dumps(body).encode("utf-8"))  # replaces a link at path, never its target
    return path


def read_ack(root: Path | str, command_id: str) -> dict[str, object] | None:
    path = Path(root) / ACK_DIR / f"{command_id}.json"
    if is_link(path.parent) or is_link(path):
        return None
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_COMMAND_BYTES:
            return None
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class FileDoorResult:
    events: tuple[AuditEvent, ...]
    processed: int
    alerts: tuple[str, ...] = ()


def _signature(st: os.stat_result, name: str) -> list[object]:
    return [name, st.st_size, st.st_mtime_ns]


def _read_bounded(path: Path, st: os.stat_result) -> bytes | str:
    """The file's bytes, or why it is refused unread (a link, not a regular file, too large)."""
    if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & _REPARSE_POINT:
        return "the entry is a symlink; not followed"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > MAX_COMMAND_FILE_BYTES:
        return f"{st.st_size} bytes, more than {MAX_COMMAND_FILE_BYTES}"
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        data = os.read(fd, MAX_COMMAND_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_COMMAND_FILE_BYTES:
        return f"more than {MAX_COMMAND_FILE_BYTES} bytes"
    return data


def process_control_folder(
    root: Path | str,
    secret: bytes | None,
    nonces: NonceStore,
    now: datetime,
    apply: Callable[[ControlCommand], str | None],
    max_ttl: timedelta = DEFAULT_MAX_TTL,
) -> FileDoorResult:
    """Verify every pending command file, hand good ones to ``apply`` (returns a refusal reason or None),
    acknowledge each, delete it, and return the door's audit events (the handler's own go via ``apply``)
    and the alerts an operator must see. One entry's failure never stops the others."""
    problem = door_problem(root)
    if problem is not None:
        return FileDoorResult((), 0, (problem,))
    events: list[AuditEvent] = []
    alerts: list[str] = []
    files = pending_command_files(root)
    processed = 0
    for path in files:
        try:
            st = os.lstat(path)
        except OSError:
            continue  # gone or being replaced right now; next pass
        sig = _signature(st, path.name)
        previous = read_ack(root, path.stem)
        if previous is not None and previous.get("file") == sig:
            _remove(path, alerts, quiet=True)  # handled before (maybe before a restart): never again
            continue
        processed += 1
        try:
            raw = _read_bounded(path, st)
        except OSError:
            continue  # being replaced right now; next pass
        command_id, refused, detail = path.stem, "", ""
        try:
            if isinstance(raw, str):
                result = VerifyResult(None, ControlReason.CONTROL_MALFORMED, raw)
            else:
                result = verify_command(raw, secret, nonces, now, max_ttl=max_ttl)
            if result.command is not None:
                command_id = result.command.command_id
            if result.ok and result.command is not None:
                refused = _apply(apply, result.command) or ""
                if not refused:
                    events.append(AuditEvent(
                        ts=now, code=AuditCode.CONTROL_ACCEPTED, severity=Severity.INFO,
                        cause="signed command file accepted", symbol=result.command.symbol,
                        data={"command_id": command_id, "source": "file"},
                    ))
            else:
                refused = result.reason.value if result.reason is not None else ControlReason.CONTROL_MALFORMED.value
                detail = result.detail
                events.append(rejection_event(now, refused, "file", result.command, detail))
        except Exception as exc:  # the per-entry fault barrier: record, acknowledge, go on
            refused, detail = ControlReason.CONTROL_FAILED.value, f"{type(exc).__name__}: {exc}"[:200]
            events.append(rejection_event(now, refused, "file", None, detail))
        if refused:
            alerts.append(f"control command {command_id} ({CONTROL_DIR}/{path.name}) refused: {refused}"
                          + (f" ({detail})" if detail else ""))
        try:
            write_ack(root, command_id, not refused, refused or None, now, detail, sig)
            if command_id != path.stem:
                write_ack(root, path.stem, not refused, refused or None, now, detail, sig)
        except OSError as exc:
            alerts.append(f"control ack for {command_id} could not be written: {exc}")
        _remove(path, alerts)
    return FileDoorResult(tuple(events), processed, tuple(alerts))


def _apply(apply: Callable[[ControlCommand], str | None], command: ControlCommand) -> str | None:
    try:
        return apply(command)
    except Exception as exc:
        raise RuntimeError(f"handler failed on {command.command_id}: {type(exc).__name__}: {exc}") from exc


def _remove(path: Path, alerts: list[str], quiet: bool = False) -> None:
    try:
        os.unlink(path)  # removes a link itself, never what it points to
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not quiet:
            alerts.append(f"{CONTROL_DIR}/{path.name}: could not remove it ({exc}); it is recorded and skipped from now on")
