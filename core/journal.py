"""Append-only, fsynced JSON-lines journal: the executor's write-ahead log, compacted in place.

A record is on disk (fsync) before the action it describes happens. A crash can leave a torn last line;
``replay`` drops it (the action it announced never started) and truncates the file so new records follow
a clean line.

Compaction (``compact``) replaces the whole file, atomically, by one ``snapshot`` record that holds the state
the old records built: a temp file in the same folder is written and fsynced, then renamed over the journal
(and the folder fsynced). A kill -9 at any moment leaves either the old journal, whole, or the new one,
whole; never both halves, never neither. Readers replay a compacted journal the same way as a full one:
the snapshot record restores the state, the records after it are the tail.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared_schema.atomic_io import fsync_dir
from shared_schema.failpoints import failpoint

SNAPSHOT_KIND = "snapshot"
TEMP_PREFIX = ".tmp-"


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
            except (ValueError, RecursionError):  # RecursionError: a line of deeply nested brackets
                return
            if not isinstance(record, dict):
                return
            yield record, len(line)


class JournalCorrupt(ValueError):
    """A garbled record with complete records after it: not a torn tail (a crash tears only the last line)
    but damage. Replay refuses it rather than cutting the records that follow off the file."""


class Journal:
    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._handle: Any = None
        self._pending = False
        self.records_written = 0
        self.records_since_snapshot = 0  # records after the snapshot (the tail), replayed or appended
        self.compactions = 0

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every complete record in order; a torn tail is cut off the file. A garbled record *followed* by
        complete ones is damage, not a torn tail: ``JournalCorrupt``, and nothing is cut."""
        self._remove_stale_temps()
        if not self.path.exists():
            return
        good_end = 0
        self.records_since_snapshot = 0
        for record, size in read_records(self.path):
            good_end += size
            if record.get("k") == SNAPSHOT_KIND:
                self.records_since_snapshot = 0
            else:
                self.records_since_snapshot += 1
            yield record
        if good_end != self.path.stat().st_size:
            with open(self.path, "rb") as handle:
                handle.seek(good_end)
                handle.readline()  # the bad line itself
                after = handle.read(1)
            if after:
                raise JournalCorrupt(f"{self.path}: a garbled record at byte {good_end} with records after it; "
                                     "the file is left as it is (restore it or remove the damaged line)")
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
        self.records_since_snapshot += 1
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

    def compact(self, snapshot: dict[str, Any]) -> int:
        """Replace the journal by ``snapshot`` (a record of kind ``snapshot`` holding the state every record so
        far built), atomically. The caller has applied every record and sends nothing meanwhile. Returns the
        size of the new journal in bytes."""
        if snapshot.get("k") != SNAPSHOT_KIND:
            raise ValueError("a compaction writes one snapshot record")
        self.sync()
        line = json.dumps(snapshot, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
        failpoint("journal.compact.before_write")
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            failpoint("journal.compact.before_swap")  # the snapshot is on disk, the old journal still rules
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            os.replace(tmp, self.path)
            tmp = ""
        finally:
            if tmp:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        fsync_dir(self.path.parent)
        failpoint("journal.compact.after_swap")
        self.records_since_snapshot = 0
        self.compactions += 1
        return len(line)

    def _remove_stale_temps(self) -> None:
        """A compaction killed before its swap leaves a temp file: the journal beside it is the truth."""
        for stale in self.path.parent.glob(TEMP_PREFIX + self.path.name + ".*"):
            try:
                stale.unlink()
            except OSError:
                pass

    def close(self) -> None:
        self.sync()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

