"""Append-only JSONL audit log: the one IO module of the risk kernel (besides the control doors).

One event per line ``{ts, code, severity, symbol?, cause, data}``; every append is flushed and fsynced
before ``append`` returns, so an action that follows its audit record is never unexplained after a crash.
The reader tolerates a torn last line (a crash mid-append) and skips malformed lines elsewhere, counting
them; it never rewrites the file (audit is evidence). ``replay_risk_file`` rebuilds the risk snapshot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from core.events import AuditCode, AuditEvent, Severity
from core.risk.engine import RiskSnapshot, replay

__all__ = [
    "AuditCode",
    "AuditEvent",
    "AuditWriter",
    "ReadStats",
    "Severity",
    "read_events",
    "replay_risk_file",
]


class AuditWriter:
    """Appends events to one JSONL file; safe for one writer process (the executor)."""

    def __init__(self, path: Path | str, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._handle: IO[bytes] | None = None

    def append(self, event: AuditEvent) -> None:
        """Write one event as one line and make it durable before returning."""
        self.extend((event,))

    def extend(self, events: Iterable[AuditEvent]) -> None:
        """Write several events with one fsync (e.g. every event of one risk evaluation)."""
        lines = b"".join(_encode(e) for e in events)
        if not lines:
            return
        handle = self._open()
        handle.write(lines)
        handle.flush()
        if self.fsync:
            os.fsync(handle.fileno())

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab")
            # A torn tail from a crash would glue our first record onto it: start on a fresh line.
            if self._handle.tell() > 0 and not _ends_with_newline(self.path):
                self._handle.write(b"\n")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(event: AuditEvent) -> bytes:
    return (
        json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"
    )


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


@dataclass
class ReadStats:
    lines: int = 0
    events: int = 0
    torn_tail: bool = False
    malformed: int = 0


def read_events(
    path: Path | str,
    ts_from: datetime | None = None,
    ts_to: datetime | None = None,
    stats: ReadStats | None = None,
) -> Iterator[AuditEvent]:
    """Every well-formed event with ``ts_from <= ts < ts_to`` (bounds optional), in file order.

    A last line without its newline is a torn append and is dropped; a malformed line in the middle is
    skipped and counted in ``stats`` (the gate reports it rather than failing to read the whole log).
    """
    st = stats if stats is not None else ReadStats()
    file = Path(path)
    if not file.exists():
        return
    with open(file, "rb") as handle:
        for raw in handle:
            st.lines += 1
            if not raw.endswith(b"\n"):
                st.torn_tail = True
                break
            if not raw.strip():
                continue
            try:
                event = AuditEvent.from_record(json.loads(raw))
            except (ValueError, KeyError, TypeError):
                st.malformed += 1
                continue
            if ts_from is not None and event.ts < ts_from:
                continue
            if ts_to is not None and event.ts >= ts_to:
                continue
            st.events += 1
            yield event


def replay_risk_file(path: Path | str, start: RiskSnapshot | None = None) -> RiskSnapshot:
    """The risk snapshot the audit log describes (see ``core.risk.engine.replay``)."""
    return replay(read_events(path), start)
