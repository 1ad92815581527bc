"""``executor_lease.json``: which executor owns a shared folder (the contract; written only by the owner).

One executor per shared folder: the lease lives *in* the folder, so every path to it (``Z:\\``, a UNC
path, a symlink) and every ``--state-dir`` meets the same file. ``windows.lease`` takes, renews and
releases it; nodes, ``gridbridge status`` and the dashboard read it with ``read_lease`` and show the owner
with ``describe_lease``. Reads never follow a link and are bounded in size.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEASE_FILE = "executor_lease.json"
MAX_LEASE_BYTES = 16 * 1024
_REPARSE_POINT = 0x400


class PreviousOwner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    owner_id: str
    host: str
    pid: int
    heartbeat_at: datetime
    how: str = Field(description="TAKE_OVER (a stale lease, --take-over) or RECLAIM (this state folder's last run)")


class LeaseFile(BaseModel):
    """The owner's identity card, rewritten at every heartbeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = 1
    owner_id: str = Field(min_length=8, max_length=64)
    host: str = Field(max_length=255)
    pid: int
    state_id: str = Field(max_length=64, description="random id of the owner's state folder")
    state_dir: str = Field(max_length=4096)
    shared_dir: str = Field(max_length=4096, description="the shared folder as the owner reaches it")
    started_at: datetime
    heartbeat_at: datetime
    renewals: int = 0
    stale_after_s: float = Field(gt=0, description="the owner's own staleness bound")
    disabled_doors: list[str] = Field(default_factory=list, description="operator doors that are off")
    previous_owner: PreviousOwner | None = None

    @field_validator("started_at", "heartbeat_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a timezone")
        return value


class LeaseUnreadable(ValueError):
    """The lease file exists but is not a valid lease (junk, half-written, a link, a folder)."""


def lease_path(shared_dir: Path | str) -> Path:
    return Path(shared_dir) / LEASE_FILE


def _is_link(st: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode) or bool(getattr(st, "st_file_attributes", 0) & _REPARSE_POINT)


def read_lease_bytes(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The lease file's bytes and stat (None when absent); ``LeaseUnreadable`` for a link, a non-file or
    an oversize file. Never follows a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if _is_link(st):
        raise LeaseUnreadable(f"{path} is a symlink or junction; not followed")
    if not stat.S_ISREG(st.st_mode):
        raise LeaseUnreadable(f"{path} is not a regular file")
    if st.st_size > MAX_LEASE_BYTES:
        raise LeaseUnreadable(f"{path} is {st.st_size} bytes, more than {MAX_LEASE_BYTES}")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, MAX_LEASE_BYTES + 1)
    finally:
        os.close(fd)
    return data, st


def parse_lease(data: bytes) -> LeaseFile:
    if len(data) > MAX_LEASE_BYTES:
        raise LeaseUnreadable("lease too large")
    try:
        return LeaseFile.model_validate_json(data)
    except (ValueError, RecursionError) as exc:
        raise LeaseUnreadable(f"not a valid lease: {str(exc).splitlines()[0][:120]}") from exc


def read_lease(shared_dir: Path | str) -> LeaseFile | None:
    """The current lease (None when there is none); ``LeaseUnreadable`` when the file is not a lease;
    ``OSError`` when the folder cannot be read."""
    got = read_lease_bytes(lease_path(shared_dir))
    return None if got is None else parse_lease(got[0])


@dataclass(frozen=True)
class LeaseView:
    """What a reader shows: who owns the folder, since when, and whether the owner is still alive."""

    state: str  # NONE, LIVE, STALE, UNREADABLE
    text: str
    owner: str = ""
    heartbeat_age_s: float | None = None
    disabled_doors: tuple[str, ...] = ()


def describe_lease(lease: LeaseFile | None, now: datetime, error: str = "") -> LeaseView:
    """A one-line description of the lease as judged at ``now`` (wall clock of the reader)."""
    if error:
        return LeaseView("UNREADABLE", f"executor lease unreadable: {error}")
    if lease is None:
        return LeaseView("NONE", "no executor holds this folder (no executor_lease.json)")
    age = (now - lease.heartbeat_at).total_seconds()
    owner = f"{lease.host} pid {lease.pid} (owner {lease.owner_id[:8]}, state {lease.state_dir})"
    state = "STALE" if age > lease.stale_after_s else "LIVE"
    text = f"executor {owner}: heartbeat {age:.0f} s ago" + (
        f", STALE (bound {lease.stale_after_s:g} s; the owner looks dead)" if state == "STALE" else "")
    if lease.previous_owner is not None:
        p = lease.previous_owner
        text += f"; {p.how} from {p.host} pid {p.pid}"
    return LeaseView(state, text, owner, age, tuple(lease.disabled_doors))


def lease_view(shared_dir: Path | str, now: datetime) -> LeaseView:
    """``describe_lease`` over the folder's file; never raises."""
    try:
        return describe_lease(read_lease(shared_dir), now)
    except (LeaseUnreadable, OSError) as exc:
        return describe_lease(None, now, str(exc))
