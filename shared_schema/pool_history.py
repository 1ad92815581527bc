"""The pool over time as the executor booked it: ``pool_history.jsonl``, one point per change.

The executor (the single writer) appends a ``PoolHistoryPoint`` each time the pool it publishes changes:
the market time, ``used`` / ``frozen`` / ``acc_alpha`` per code, ``committed`` and ``utilization`` (the step
penalty's input; its thresholds are the grid's parameters) and the open lots the ladder draws. The
dashboard reads it to show the pool, the penalty walk and the ladders at any time of a run, so it never
needs the executor's vault or journal classes to rebuild them.

The file lives beside the executor's journal (its state folder), where the dashboard already looks
(``--state-dir``, or ``<shared>_executor_state`` in the dry-run layout).

Durability follows ``core/journal.py``: an append is flushed and fsynced; a crash can leave a torn last
line, which the reader drops and the writer cuts off when it opens the file. The file is bounded: past
``max_points`` plus a slack of half as many, the writer replaces it by its newest ``max_points`` points,
atomically (a temp file in the same folder, fsync, ``os.replace``, fsync of the folder), so a kill at any
moment leaves the old file or the new one, whole. The reader skips any line that is not a valid point and
says how many it skipped.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from shared_schema.atomic_io import TEMP_PREFIX, atomic_write_bytes
from shared_schema.ledger_math import utilization
from shared_schema.models import Strict
from shared_schema.safe_json import safe_loads
from shared_schema.types import Money, Timestamp

POOL_HISTORY_FILE = "pool_history.jsonl"
DEFAULT_MAX_POINTS = 20_000
"""Points kept after a compaction: weeks of a busy grid (a point per fill or grant, not per bar)."""
MAX_LINE_BYTES = 1024 * 1024
"""Longest line the reader parses; a point with a few dozen lots is a few kilobytes."""


class PoolLot(Strict):
    """One open grid lot in the vault: what the ladder draws (its take-profit price is the grid's rule)."""

    client_order_id: str
    layer_index: int = Field(ge=0)
    shares: int = Field(ge=0, description="shares held; a buy with no fill yet: the shares it asks for")
    avg_price: float = Field(ge=0, allow_inf_nan=False,
                             description="average fill price (no fill yet: the grant over the shares asked for); "
                                         "a display figure, the exact cost stays in the vault")
    status: Literal["OPEN", "PENDING_BUY"] = Field(description="PENDING_BUY: frozen cash, nothing held yet")


class PoolHistoryPoint(Strict):
    """The pool after one change, in exact yuan; ``t`` is the market time of the change."""

    t: Timestamp
    physical_pool: Money = Field(gt=0)
    used: dict[str, Money]
    frozen: dict[str, Money]
    acc_alpha: dict[str, Money]
    committed: Money = Field(description="sum of used and frozen over every code")
    utilization: float = Field(ge=0, allow_inf_nan=False, description="committed / physical_pool, exact ratio")
    lots: dict[str, list[PoolLot]] = Field(default_factory=dict, description="open lots per code, oldest first")

    @model_validator(mode="after")
    def _committed_is_used_plus_frozen(self) -> PoolHistoryPoint:
        if self.committed != sum(self.used.values(), Decimal(0)) + sum(self.frozen.values(), Decimal(0)):
            raise ValueError("committed is not the sum of used and frozen")
        return self

    @model_validator(mode="after")
    def _utilization_is_the_shared_ratio(self) -> PoolHistoryPoint:
        if self.utilization != utilization(self.committed, self.physical_pool):
            raise ValueError("utilization is not committed / physical_pool")
        return self

    def same_pool(self, other: PoolHistoryPoint) -> bool:
        """Equal in everything but the time: appending it would record no change."""
        return self.model_copy(update={"t": other.t}) == other


@dataclass(frozen=True)
class PoolHistoryRead:
    """What ``read_pool_history`` found: the valid points (oldest first), the lines it skipped as invalid, and
    whether the last line was torn (a write cut short; dropped, not counted as skipped)."""

    points: tuple[PoolHistoryPoint, ...]
    skipped: int = 0
    torn_tail: bool = False


def _lines(path: Path, max_line_bytes: int) -> Iterator[tuple[bytes | None, bool, int]]:
    """``(line, complete, end offset)`` per line; an oversized line comes back as ``None``, never kept whole."""
    with open(path, "rb") as handle:
        while True:
            line = handle.readline(max_line_bytes + 1)
            if not line:
                return
            if len(line) > max_line_bytes:
                while line and not line.endswith(b"\n"):  # drain it in bounded chunks
                    line = handle.readline(max_line_bytes + 1)
                yield None, bool(line), handle.tell()
                continue
            yield line, line.endswith(b"\n"), handle.tell()


def _parse(line: bytes) -> PoolHistoryPoint | None:
    try:
        return PoolHistoryPoint.model_validate(safe_loads(line))
    except (ValueError, TypeError):  # JsonRefused and ValidationError are ValueErrors
        return None


def read_pool_history(path: Path | str, max_points: int = 2 * DEFAULT_MAX_POINTS,
                      max_line_bytes: int = MAX_LINE_BYTES) -> PoolHistoryRead:
    """Read ``pool_history.jsonl``: the newest ``max_points`` valid points, oldest first. Read-only.

    A line that is not a valid point (bad JSON, a figure that does not add up, an oversized line) is
    skipped and counted; a torn last line is dropped. Raises ``OSError`` (``FileNotFoundError``) only when
    the file cannot be opened or read.
    """
    points: deque[PoolHistoryPoint] = deque(maxlen=max_points)
    skipped, torn = 0, False
    for line, complete, _end in _lines(Path(path), max_line_bytes):
        if not complete:
            torn = True
            break
        if line is None:
            skipped += 1
            continue
        if not line.strip():
            continue
        point = _parse(line)
        if point is None:
            skipped += 1
        else:
            points.append(point)
    return PoolHistoryRead(tuple(points), skipped, torn)


class PoolHistoryWriter:
    """The executor's appender: one line per change of the pool, bounded by compaction.

    Single writer: only the process that owns the state folder (the executor holding the lease) opens one.
    """

    def __init__(self, path: Path | str, max_points: int = DEFAULT_MAX_POINTS, fsync: bool = True) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.path = Path(path)
        self.max_points = max_points
        self.fsync = fsync
        self.compactions = 0
        self._lines = 0
        self._last: PoolHistoryPoint | None = None
        self._opened = False

    @property
    def compact_at(self) -> int:
        """Line count past which the file is cut back to ``max_points``."""
        return self.max_points + max(1, self.max_points // 2)

    def _open(self) -> None:
        """Remove temp files of a killed compaction, cut a torn tail, learn the last point and the line count."""
        for stale in self.path.parent.glob(TEMP_PREFIX + self.path.name + ".*"):
            try:
                stale.unlink()
            except OSError:
                pass
        good_end, lines, last = 0, 0, None
        if self.path.exists():
            for line, complete, end in _lines(self.path, MAX_LINE_BYTES):
                if not complete:
                    break
                lines, good_end = lines + 1, end
                if line is not None:
                    last = _parse(line) or last
            if self.path.stat().st_size != good_end:
                with open(self.path, "r+b") as handle:
                    handle.truncate(good_end)
                    handle.flush()
                    os.fsync(handle.fileno())
        self._lines, self._last, self._opened = lines, last, True

    def append(self, point: PoolHistoryPoint) -> bool:
        """Append ``point`` unless it equals the last one in everything but time. Returns whether it wrote.

        The line is flushed and fsynced before this returns. Raises ``OSError`` when the file cannot be
        written; the file then holds the earlier points (and at most a torn line, dropped by readers)."""
        if not self._opened:
            self._open()
        if self._last is not None and point.same_pool(self._last):
            return False
        if self.path.is_symlink():  # never write through a link planted where the history belongs
            raise OSError(f"{self.path} is a symbolic link; the pool history is not written through it")
        # Opened per append (points come once per change of the pool, not per turn): no handle outlives the
        # call, so a compaction's os.replace works on Windows too and a restarted writer meets no stale one.
        with open(self.path, "ab") as handle:
            handle.write(point.model_dump_json().encode("utf-8") + b"\n")
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        self._lines += 1
        self._last = point
        if self._lines > self.compact_at:
            self.compact()
        return True

    def compact(self) -> None:
        """Replace the file by its newest ``max_points`` valid points, atomically."""
        kept = read_pool_history(self.path, max_points=self.max_points).points
        data = b"".join(p.model_dump_json().encode("utf-8") + b"\n" for p in kept)
        atomic_write_bytes(self.path, data)  # temp file, fsync, os.replace, folder fsync: old or new, whole
        self._lines = len(kept)
        self.compactions += 1
