"""Append-only JSONL audit log: the one IO module of the risk kernel (besides the control doors).

One event per line ``{ts, code, severity, symbol?, cause, data}``; every append is flushed and fsynced
before ``append`` returns, so an action that follows its audit record is never unexplained after a crash.
The reader tolerates a torn last line (a crash mid-append) and skips malformed lines elsewhere, counting
them; it never rewrites the file (audit is evidence). ``replay_risk_file`` rebuilds the risk snapshot.

Rotation (``AuditWriter(max_bytes=...)``): once the active file (``audit.jsonl``) holds ``max_bytes``, the next
append first renames it to a numbered, dated segment ``audit.<seq>.<first event's date>.jsonl`` (seq 1, 2,
...; the date is for the operator) and starts a new active file. Segments are never rewritten or deleted
here. ``log_files`` lists a log's segments in seq order and then its active file; ``read_log_events`` reads
them all as one log (the gate, ``replay_risk_file``). A position in the log is ``(seq, offset)``: the active
file's seq is one more than the newest segment's; ``read_log_events_after`` reads what was written after a
position, across any rotation since.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from core.events import AuditCode, AuditEvent, Severity
from core.risk.replay import replay
from core.risk.snapshot import RiskSnapshot
from shared_schema.atomic_io import fsync_dir

__all__ = [
    "AuditCode",
    "AuditEvent",
    "AuditWriter",
    "ReadStats",
    "Severity",
    "LogPosition",
    "log_files",
    "log_segments",
    "read_events",
    "read_log_events",
    "read_log_events_after",
    "replay_risk_file",
]

# A log position: (seq of the file, byte offset in it). The active file's seq is the newest segment's + 1.
LogPosition = tuple[int, int]


def _segment_pattern(active: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(active.stem)}\.(\d+)\.([0-9-]+|undated){re.escape(active.suffix)}$")


def log_segments(active: Path | str) -> list[tuple[int, Path]]:
    """The rotated segments of the log whose active file is ``active``, as (seq, path) in seq order."""
    active = Path(active)
    pattern = _segment_pattern(active)
    found: list[tuple[int, Path]] = []
    try:
        names = os.listdir(active.parent)
    except OSError:
        return []
    for name in names:
        match = pattern.match(name)
        if match is not None:
            found.append((int(match.group(1)), active.parent / name))
    return sorted(found)


def log_files(active: Path | str) -> list[Path]:
    """Every file of the log, oldest first: the rotated segments, then the active file if it exists."""
    active = Path(active)
    files = [path for _seq, path in log_segments(active)]
    if active.exists():
        files.append(active)
    return files


class AuditWriter:
    """Appends events to one JSONL file; safe for one writer process (the executor)."""

    def __init__(self, path: Path | str, fsync: bool = True, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self._handle: IO[bytes] | None = None
        segments = log_segments(self.path)
        self._last_seq = segments[-1][0] if segments else 0

    @property
    def seq(self) -> int:
        """The active file's number: one more than the newest rotated segment's."""
        return self._last_seq + 1

    def position(self) -> LogPosition:
        """Where the next event will be written (after the last one made durable)."""
        if self._handle is not None:
            return self.seq, self._handle.tell()
        try:
            return self.seq, self.path.stat().st_size
        except FileNotFoundError:
            return self.seq, 0

    def rotate(self) -> Path | None:
        """Close the active file and rename it to the next numbered, dated segment; None when it is empty."""
        self.close()
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return None
        if size == 0:
            return None
        seq = self._last_seq + 1
        target = self.path.with_name(f"{self.path.stem}.{seq:06d}.{_first_day(self.path)}{self.path.suffix}")
        os.replace(self.path, target)
        fsync_dir(self.path.parent)
        self._last_seq = seq
        return target

    def append(self, event: AuditEvent) -> None:
        """Write one event as one line and make it durable before returning."""
        self.extend((event,))

    def extend(self, events: Iterable[AuditEvent]) -> None:
        """Write several events with one fsync (e.g. every event of one risk evaluation)."""
        lines = b"".join(_encode(e) for e in events)
        if not lines:
            return
        if self.max_bytes is not None and self.position()[1] >= self.max_bytes:
            try:
                self.rotate()  # between two batches: one batch never straddles two segments
            except OSError:
                pass  # e.g. a reader holds the file open on Windows: keep appending, retry on the next write
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


def _first_day(path: Path) -> str:
    """The date of the first event in ``path`` (for a segment's name), or ``undated``."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
        return AuditEvent.from_record(json.loads(first)).ts.date().isoformat()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "undated"


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
    yield from _read_from(Path(path), 0, ts_from, ts_to, stats if stats is not None else ReadStats())


def _read_from(
    file: Path, offset: int, ts_from: datetime | None, ts_to: datetime | None, st: ReadStats
) -> Iterator[AuditEvent]:
    if not file.exists():
        return
    with open(file, "rb") as handle:
        if offset:
            handle.seek(offset)
        for raw in handle:
            st.lines += 1
            if not raw.endswith(b"\n"):
                st.torn_tail = True
                break
            if not raw.strip():
                continue
            try:
                event = AuditEvent.from_record(json.loads(raw))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # deep nesting, a non-object
                st.malformed += 1
                continue
            if ts_from is not None and event.ts < ts_from:
                continue
            if ts_to is not None and event.ts >= ts_to:
                continue
            st.events += 1
            yield event


def read_log_events(
    active: Path | str,
    ts_from: datetime | None = None,
    ts_to: datetime | None = None,
    stats: ReadStats | None = None,
) -> Iterator[AuditEvent]:
    """``read_events`` over every file of the log (rotated segments in seq order, then the active file)."""
    st = stats if stats is not None else ReadStats()
    for file in log_files(active):
        yield from _read_from(file, 0, ts_from, ts_to, st)


def read_log_events_after(
    active: Path | str, position: LogPosition, stats: ReadStats | None = None
) -> Iterator[AuditEvent]:
    """Every event written after ``position``: the rest of the file at that position, then every later
    file. Raises ``ValueError`` when the position is not in the log (its file is shorter than the offset,
    or the seq is past the active file): the caller must then read the whole log."""
    st = stats if stats is not None else ReadStats()
    active = Path(active)
    seq, offset = position
    segments = log_segments(active)
    active_seq = (segments[-1][0] if segments else 0) + 1
    if seq > active_seq or offset < 0:
        raise ValueError(f"log position {position} is past the log (active seq {active_seq})")
    files = [(n, p) for n, p in segments if n >= seq]
    files.append((active_seq, active))
    for n, file in files:
        start = offset if n == seq else 0
        size = file.stat().st_size if file.exists() else 0
        if start > size:
            raise ValueError(f"log position {position}: {file.name} holds only {size} bytes")
        yield from _read_from(file, start, None, None, st)


def replay_risk_file(path: Path | str, start: RiskSnapshot | None = None) -> RiskSnapshot:
    """The risk snapshot the audit log describes, every segment of it (see ``core.risk.replay.replay``)."""
    return replay(read_log_events(path), start)
