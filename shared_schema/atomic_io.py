"""Atomic file writes and forgiving reads: the only module that touches shared files directly.

Writers put the new content in a temp file in the same folder, flush, fsync and ``os.replace`` it over the
target, so a reader on either machine sees the old file or the new one, never half of one. Readers keep
the last good view when a file is missing, partial or invalid, and say which of those happened.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared_schema.failpoints import failpoint
from shared_schema.safe_json import safe_loads

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"

M = TypeVar("M", bound=BaseModel)


class WriteFailed(OSError):
    """The new content could not be written; the previous file is still in place."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; on any error the old file stays and ``WriteFailed`` is raised."""
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX + path.name + ".", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        failpoint("atomic.before_replace")  # a kill mid-write leaves only a temp file behind
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise WriteFailed(f"could not write {path}: {exc}") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open a directory, and does not need to.
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_model(path: Path, model: BaseModel) -> None:
    atomic_write_bytes(path, model.model_dump_json(indent=1).encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=1, default=str).encode("utf-8"))


class ReadStatus(str, Enum):
    FRESH = "FRESH"  # read and validated now
    UNCHANGED = "UNCHANGED"  # same bytes as the last good read
    MISSING = "MISSING"  # no file (yet); the last good view, if any, is kept
    INVALID = "INVALID"  # unreadable or failed validation; the last good view is kept


@dataclass(frozen=True)
class ReadOutcome(Generic[M]):
    model: M | None
    status: ReadStatus
    error: str = ""

    @property
    def is_degraded(self) -> bool:
        return self.status in (ReadStatus.MISSING, ReadStatus.INVALID)


class ModelFileReader(Generic[M]):
    """Reads one shared file into its model, keeping the last good view across bad reads.

    A read that fails is retried ``retries`` times right away: on a shared folder a replace can briefly
    show an empty or locked file.
    """

    def __init__(self, path: Path, model: type[M], retries: int = 2) -> None:
        self.path = Path(path)
        self.model = model
        self.retries = retries
        self.last_good: M | None = None
        self._last_bytes: bytes | None = None
        self.invalid_reads = 0

    def read(self) -> ReadOutcome[M]:
        error = ""
        for _ in range(self.retries + 1):
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return ReadOutcome(self.last_good, ReadStatus.MISSING, f"{self.path.name} is missing")
            except OSError as exc:
                error = f"{self.path.name} unreadable: {exc}"
                continue
            if data == self._last_bytes and self.last_good is not None:
                return ReadOutcome(self.last_good, ReadStatus.UNCHANGED)
            try:
                parsed = self.model.model_validate_json(data)
            except ValidationError as exc:
                error = f"{self.path.name} invalid: {exc.error_count()} error(s), first: {_first_error(exc)}"
                continue
            except ValueError as exc:
                error = f"{self.path.name} invalid: {exc}"
                continue
            self.last_good = parsed
            self._last_bytes = data
            return ReadOutcome(parsed, ReadStatus.FRESH)
        self.invalid_reads += 1
        log.warning("%s; keeping the last good view", error)
        return ReadOutcome(self.last_good, ReadStatus.INVALID, error)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg', '')}"


def read_json_bytes(path: Path) -> bytes | None:
    """Raw bytes of ``path`` or ``None`` when it does not exist or cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def read_seq(path: Path) -> int:
    """The ``seq`` of an existing shared file (0 when absent or unreadable): a restarted writer continues it."""
    try:
        seq = safe_loads(Path(path).read_bytes()).get("seq", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return seq if isinstance(seq, int) else 0
