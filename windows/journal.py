"""Append-only, fsynced JSON-lines journal: the executor's write-ahead log.

A record is on disk (fsync) before the action it describes happens. A crash can leave a torn last line;
``replay`` drops it (the action it announced never started) and truncates the file so new records follow
a clean line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_records(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Complete records of a journal file with their byte length, stopping at a torn or garbled tail.

    Read-only: readers that do not own the journal (the dashboard) use this and never truncate it.
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError:
                return
            yield record, len(line)


class Journal:
    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._handle: Any = None
        self._pending = False
        self.records_written = 0

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every complete record in order; a torn tail is cut off the file."""
        if not self.path.exists():
            return
        good_end = 0
        for record, size in read_records(self.path):
            good_end += size
            yield record
        if good_end != self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, record: dict[str, Any], sync: bool = True) -> None:
        """Append one record; with ``sync=False`` it waits for the next ``sync()`` (group commit)."""
        if self._handle is None:
            self._handle = open(self.path, "ab")
        self._handle.write(json.dumps(record, separators=(",", ":"), default=str).encode("utf-8") + b"\n")
        self.records_written += 1
        self._pending = True
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make every appended record durable (flush + fsync) before an action that depends on them."""
        if self._handle is None or not self._pending:
            return
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())
        self._pending = False

    def close(self) -> None:
        self.sync()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
