"""Reading and writing ``order_signal.json``.

Several writers (both nodes, ``gridbridge signal``) share the file, so every write is a read-modify-write
under a filelock on the writer's machine, finished by an atomic replace. The executor only reads it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from shared_schema.atomic_io import atomic_write_json
from shared_schema.models import SIGNAL_FILE, Signal, SignalFile
from shared_schema.safe_json import MAX_BYTES, MAX_DEPTH, safe_loads

LOCK_SUFFIX = ".lock"


class SignalFileCorrupt(ValueError):
    """The signal file exists but cannot be read; writers refuse to overwrite it blindly."""


class SignalWriteRefused(OSError):
    """The signal file or its lock is a link or not a regular file, or cannot be locked, read or written.
    Nothing was changed; a writer reports it (the CLI exits non-zero, a node alerts and retries)."""


def _refuse_odd_entry(path: Path) -> None:
    """Writers never follow a link and never touch a folder where a file should be."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SignalWriteRefused(f"cannot inspect {path}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode) or getattr(st, "st_file_attributes", 0) & 0x400:
        raise SignalWriteRefused(f"{path} is a symlink or junction; writers do not follow links (remove it)")
    if not stat.S_ISREG(st.st_mode):
        raise SignalWriteRefused(f"{path} is not a regular file (a folder?); move it away")


def signal_lock(shared_dir: Path, timeout: float = 10.0) -> FileLock:
    return FileLock(str(Path(shared_dir) / (SIGNAL_FILE + LOCK_SUFFIX)), timeout=timeout)


def read_raw_entries(data: bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> tuple[list[Any], int]:
    """Entries of a signal file as raw objects plus its seq. Raises ``ValueError`` when not JSON.

    Accepts the envelope ``{"signals": [...]}`` and the legacy file that holds one bare signal object.
    The file is read with ``safe_loads``: a file too large or nested too deep raises ``JsonRefused`` (a
    ``ValueError`` with a ``code``), never ``RecursionError``; number literals a float cannot hold exactly
    come back as ``Decimal`` so that the schema refuses them rather than a rounded value.
    """
    obj = safe_loads(data, max_depth=max_depth, max_bytes=max_bytes)
    if isinstance(obj, dict) and "signals" in obj:
        entries = obj["signals"]
        if not isinstance(entries, list):
            raise ValueError("'signals' is not a list")
        seq = obj.get("seq", 0)
        return entries, seq if isinstance(seq, int) else 0
    if isinstance(obj, dict) and "signal_id" in obj:
        return [obj], 0
    if isinstance(obj, list):
        return obj, 0
    raise ValueError("neither a signal envelope nor a bare signal")


def _load_raw_for_update(path: Path) -> tuple[list[Any], int]:
    _refuse_odd_entry(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise SignalWriteRefused(f"cannot read {path}: {exc}") from exc
    try:
        return read_raw_entries(data)
    except ValueError as exc:
        raise SignalFileCorrupt(f"{path} is not a readable signal file: {exc}") from exc


def entry_signal_id(entry: Any) -> str | None:
    sid = entry.get("signal_id") if isinstance(entry, dict) else None
    return sid if isinstance(sid, str) else None


def update_signal_file(
    shared_dir: Path,
    now: datetime,
    add: Iterable[Signal] = (),
    keep: Callable[[Any], bool] | None = None,
    lock_timeout: float = 10.0,
) -> int:
    """Append ``add`` and drop entries for which ``keep`` is False, atomically, under the writers' lock.

    Entries are kept as they are (another writer's malformed entry is the executor's to reject, not ours
    to drop or rewrite). A signal_id already in the file is not appended twice. Returns the new ``seq``.

    Raises ``SignalWriteRefused`` (an ``OSError``) when the file or its lock is a link or not a regular
    file, or cannot be locked or read; ``SignalFileCorrupt`` for a file that is not a signal file;
    ``WriteFailed`` when the write fails; ``filelock.Timeout`` when another writer holds the lock.
    """
    path = Path(shared_dir) / SIGNAL_FILE
    lock = signal_lock(shared_dir, lock_timeout)
    _refuse_odd_entry(Path(lock.lock_file))
    _refuse_odd_entry(path)
    try:
        lock.acquire()
    except Timeout:
        raise
    except OSError as exc:
        raise SignalWriteRefused(f"cannot take the writers' lock {lock.lock_file}: {exc}") from exc
    try:
        entries, seq = _load_raw_for_update(path)
        if keep is not None:
            entries = [e for e in entries if keep(e)]
        present = {entry_signal_id(e) for e in entries}
        for signal in add:
            if signal.signal_id not in present:
                entries.append(signal.model_dump(mode="json"))
                present.add(signal.signal_id)
        envelope = SignalFile(seq=seq + 1, updated_at=now).model_dump(mode="json")
        envelope["signals"] = entries
        atomic_write_json(path, envelope)
        return seq + 1
    finally:
        lock.release()
