"""One executor per shared folder: the lease in ``executor_lease.json``.

Shared folders (SMB, Parallels) do not give file locks across machines, so the lease uses only
operations that are atomic on them:

- **claim** = exclusive create (``O_CREAT|O_EXCL``): of two executors creating the file, one fails;
- **take-over / reclaim** = rename the old lease to a unique name first (of two renamers, one fails with
  "not found"), check that what was moved is the lease that was judged, then claim by exclusive create;
- **renew** = the owner re-reads the file, and only if it still names it, writes the new heartbeat with an
  atomic replace and reads it back. A lease that is missing is re-claimed by exclusive create (whoever
  else is claiming at that moment then fails), one naming another owner means the lease was lost.

Every new owner reads the lease back before it trades; after a take-over it first waits ``settle_s``, so
an old owner that was only paused and had a renewal in flight (read, then replace) is seen and the
newcomer backs off. Identity is a random ``owner_id`` per process, never a path: a folder reached through two paths or
from two state folders is still one lease.

The decisions are pure functions (``judge_claim``, ``judge_renewal``); ``SharedLease`` is the thin IO.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from shared_schema.atomic_io import TEMP_PREFIX, WriteFailed, atomic_write_bytes
from shared_schema.clock import Clock
from shared_schema.lease import (
    LeaseFile,
    LeaseUnreadable,
    PreviousOwner,
    lease_path,
    parse_lease,
    read_lease_bytes,
)

log = logging.getLogger("gridbridge.lease")

EXIT_LEASE_HELD = 4  # `gridbridge executor` exit code: another executor owns the folder, or the lease was lost
STATE_ID_FILE = "executor_state_id"


class LeaseRefused(RuntimeError):
    """This executor may not own the shared folder (another one does, or the lease is stale)."""


class LeaseLost(RuntimeError):
    """The running executor found the lease no longer names it: it must stop trading at once."""


class Verdict(str, Enum):
    FREE = "FREE"  # no lease: claim it
    RECLAIM = "RECLAIM"  # this state folder's previous run on this host, provably dead (we hold its state lock)
    HELD = "HELD"  # a live owner: refuse
    STALE = "STALE"  # the owner's heartbeat is older than the bound: refuse without --take-over
    TAKE_OVER = "TAKE_OVER"  # stale and --take-over given: take it, audited
    UNREADABLE = "UNREADABLE"  # not a lease: refuse without --take-over (it may be a claim being written)


@dataclass(frozen=True)
class Claimant:
    owner_id: str
    host: str
    pid: int
    state_id: str
    state_dir: str
    shared_dir: str


@dataclass(frozen=True)
class LeaseSettings:
    renew_interval_s: float = 5.0
    stale_after_s: float = 60.0
    settle_s: float = 1.0


@dataclass(frozen=True)
class ClaimDecision:
    verdict: Verdict
    message: str

    @property
    def may_claim(self) -> bool:
        return self.verdict in (Verdict.FREE, Verdict.RECLAIM, Verdict.TAKE_OVER)


def _who(lease: LeaseFile) -> str:
    return (f"owner {lease.owner_id[:8]} on host {lease.host} pid {lease.pid} (state dir {lease.state_dir}, "
            f"shared dir {lease.shared_dir})")


def judge_claim(
    current: LeaseFile | None,
    unreadable: str | None,
    file_age_s: float | None,
    me: Claimant,
    now: datetime,
    stale_after_s: float,
    take_over: bool,
) -> ClaimDecision:
    """May ``me`` claim the folder? ``current`` is the lease read (None when absent or unreadable, then
    ``unreadable`` says why and ``file_age_s`` is the file's age by its mtime)."""
    if unreadable is not None:
        if take_over and (file_age_s is None or file_age_s > stale_after_s):
            return ClaimDecision(Verdict.TAKE_OVER, f"replacing an unreadable lease ({unreadable})")
        return ClaimDecision(Verdict.UNREADABLE,
                             f"the lease file is not a valid lease ({unreadable}); another executor may be "
                             f"claiming it right now. Look at it; once it is older than {stale_after_s:g} s "
                             "start with --take-over to replace it")
    if current is None:
        return ClaimDecision(Verdict.FREE, "no lease: claiming the folder")
    if current.owner_id == me.owner_id:
        return ClaimDecision(Verdict.RECLAIM, "the lease already names this process")
    if current.host == me.host and current.state_id == me.state_id and current.state_dir == me.state_dir:
        # The same state folder on the same host: its previous run cannot be alive, because a live run
        # holds the state folder's lock, which this process holds now.
        return ClaimDecision(Verdict.RECLAIM, f"reclaiming the lease of this state folder's previous run ({_who(current)})")
    age = (now - current.heartbeat_at).total_seconds()
    if age <= stale_after_s:
        return ClaimDecision(Verdict.HELD,
                             f"another executor owns this shared folder: {_who(current)}, heartbeat {age:.0f} s "
                             f"ago. Only one executor may trade one folder; stop that one first")
    if not take_over:
        return ClaimDecision(Verdict.STALE,
                             f"the lease of {_who(current)} is stale (heartbeat {age:.0f} s ago, bound "
                             f"{stale_after_s:g} s). Make sure that executor is really gone, then start with "
                             "--take-over")
    return ClaimDecision(Verdict.TAKE_OVER, f"taking over the stale lease of {_who(current)} (heartbeat {age:.0f} s ago)")


class Renewal(str, Enum):
    OURS = "OURS"
    MISSING = "MISSING"  # re-claim by exclusive create
    LOST = "LOST"


def judge_renewal(current: LeaseFile | None, unreadable: str | None, me: Claimant) -> tuple[Renewal, str]:
    """What the running owner must do with the lease it just read."""
    if unreadable is not None:
        return Renewal.LOST, f"the lease file is no longer ours: {unreadable}"
    if current is None:
        return Renewal.MISSING, "the lease file is missing"
    if current.owner_id != me.owner_id:
        return Renewal.LOST, f"the lease now names {_who(current)}"
    return Renewal.OURS, ""


def state_id(state_dir: Path) -> str:
    """The state folder's random id, made once and kept in the folder (a copy to another path keeps it,
    which is why a reclaim also needs the same path and host)."""
    path = Path(state_dir) / STATE_ID_FILE
    try:
        value = path.read_text(encoding="ascii").strip()
        if 8 <= len(value) <= 64 and value.isalnum():
            return value
    except (OSError, ValueError):
        pass
    value = uuid.uuid4().hex
    atomic_write_bytes(path, value.encode("ascii"))
    return value


def claimant_for(shared_dir: Path, state_dir: Path) -> Claimant:
    return Claimant(owner_id=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(),
                    state_id=state_id(state_dir), state_dir=str(Path(state_dir).resolve()),
                    shared_dir=str(Path(shared_dir).absolute()))


@dataclass(frozen=True)
class Claimed:
    verdict: Verdict
    message: str
    previous: LeaseFile | None


class SharedLease:
    """The IO around the decisions: claim at start, renew every ``renew_interval_s``, release at stop."""

    def __init__(self, shared_dir: Path, me: Claimant, clock: Clock, settings: LeaseSettings,
                 sleep: Callable[[float], None] = time.sleep, disabled_doors: tuple[str, ...] = ()) -> None:
        self.path = lease_path(shared_dir)
        self.me = me
        self.clock = clock
        self.settings = settings
        self.sleep = sleep
        self.disabled_doors = disabled_doors
        self.lease: LeaseFile | None = None  # ours, as last written
        self.last_confirmed: datetime | None = None
        self.lost_reason = ""
        self.notes: list[str] = []  # things an operator should hear about (re-created file, read errors)

    # --------------------------------------------------------------------------------------- reading

    def _read(self) -> tuple[LeaseFile | None, str | None, float | None]:
        """(lease, why it is unreadable, file age by mtime); OSError passes through."""
        try:
            got = read_lease_bytes(self.path)
        except LeaseUnreadable as exc:
            return None, str(exc), None
        if got is None:
            return None, None, None
        data, st = got
        age = self.clock.now().timestamp() - st.st_mtime
        try:
            return parse_lease(data), None, age
        except LeaseUnreadable as exc:
            return None, str(exc), age

    def _body(self, renewals: int, started: datetime, previous: PreviousOwner | None) -> LeaseFile:
        m = self.me
        return LeaseFile(owner_id=m.owner_id, host=m.host, pid=m.pid, state_id=m.state_id, state_dir=m.state_dir,
                         shared_dir=m.shared_dir, started_at=started, heartbeat_at=self.clock.now(),
                         renewals=renewals, stale_after_s=self.settings.stale_after_s,
                         disabled_doors=list(self.disabled_doors), previous_owner=previous)

    def _create_exclusive(self, body: LeaseFile) -> bool:
        """Claim: create the file only if it does not exist. False when someone else's file is there.

        The content is written to a temp file first and hard-linked into place (atomic, never replaces),
        so a crash mid-claim leaves no half-written lease; where the share has no hard links, the file is
        created with ``O_EXCL`` and written in place."""
        data = body.model_dump_json(indent=1).encode("utf-8")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        tmp = self.path.with_name(f"{TEMP_PREFIX}{self.path.name}.{self.me.owner_id}")
        try:
            self._write_new(tmp, data, flags)
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError:
                pass  # no hard links on this share: fall back to O_EXCL on the lease itself
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        try:
            self._write_new(self.path, data, flags)
        except FileExistsError:
            return False
        return True

    @staticmethod
    def _write_new(path: Path, data: bytes, flags: int) -> None:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------------------- claim

    def acquire(self, take_over: bool = False) -> Claimed:
        """Claim the folder or raise ``LeaseRefused`` with a message an operator can act on."""
        for _ in range(3):  # a race lost while the file changed under us is judged again
            try:
                current, unreadable, age = self._read()
            except OSError as exc:
                raise LeaseRefused(f"cannot read the lease {self.path}: {exc}") from exc
            decision = judge_claim(current, unreadable, age, self.me, self.clock.now(),
                                   self.settings.stale_after_s, take_over)
            if not decision.may_claim:
                raise LeaseRefused(decision.message)
            previous = None
            if current is not None and decision.verdict in (Verdict.RECLAIM, Verdict.TAKE_OVER):
                previous = PreviousOwner(owner_id=current.owner_id, host=current.host, pid=current.pid,
                                         heartbeat_at=current.heartbeat_at, how=decision.verdict.value)
            if decision.verdict is not Verdict.FREE and not self._move_aside(current, unreadable is not None):
                continue  # someone else moved or rewrote it first: judge again
            body = self._body(0, self.clock.now(), previous)
            try:
                created = self._create_exclusive(body)
            except OSError as exc:
                raise LeaseRefused(f"cannot create the lease {self.path}: {exc}") from exc
            if not created:
                continue
            if decision.verdict is Verdict.TAKE_OVER:
                # The old owner may be alive after all (a paused machine): let an in-flight renewal land.
                self.sleep(self.settings.settle_s)
            try:
                confirmed, why, _ = self._read()
            except OSError as exc:
                raise LeaseRefused(f"cannot read back the lease {self.path}: {exc}") from exc
            if confirmed is None or confirmed.owner_id != self.me.owner_id:
                who = _who(confirmed) if confirmed is not None else (why or "nobody")
                raise LeaseRefused(f"lost the lease right after claiming it: it now names {who}")
            self.lease = confirmed
            self.last_confirmed = self.clock.now()
            log.info("lease: %s", decision.message)
            return Claimed(decision.verdict, decision.message, current)
        raise LeaseRefused(f"the lease {self.path} kept changing while claiming it; another executor is starting")

    def _move_aside(self, judged: LeaseFile | None, was_unreadable: bool) -> bool:
        """Rename the judged lease away (atomic: of two renamers one fails), then check it is the one that
        was judged; if not, put it back and report False."""
        aside = self.path.with_name(f"{self.path.name}.old-{self.me.owner_id}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # gone already: claim by exclusive create decides
        except OSError as exc:
            raise LeaseRefused(f"cannot move the old lease aside: {exc}") from exc
        try:
            got = read_lease_bytes(aside)
            moved = parse_lease(got[0]) if got is not None else None
        except (LeaseUnreadable, OSError):
            moved = None
        same = (moved is None and was_unreadable) or (
            moved is not None and judged is not None and moved.owner_id == judged.owner_id
            and moved.heartbeat_at == judged.heartbeat_at)
        if not same:
            if not self.path.exists():
                try:
                    os.rename(aside, self.path)  # put back what we should not have moved
                except OSError:
                    pass
            return False
        try:
            os.unlink(aside)
        except OSError:
            pass
        return True

    # ----------------------------------------------------------------------------------------- renew

    def due(self) -> bool:
        last = self.last_confirmed
        return last is None or (self.clock.now() - last).total_seconds() >= self.settings.renew_interval_s

    def renew(self) -> bool:
        """Write a new heartbeat if the lease is still ours; False (and ``lost_reason``) when it is not.

        A read error is not a loss, but a lease not confirmed for half the stale bound is treated as lost:
        by then another executor could take it over."""
        assert self.lease is not None, "renew before acquire"
        try:
            current, unreadable, _ = self._read()
        except OSError as exc:
            return self._unconfirmed(f"cannot read the lease: {exc}")
        verdict, why = judge_renewal(current, unreadable, self.me)
        if verdict is Renewal.LOST:
            self.lost_reason = why
            return False
        body = self._body(self.lease.renewals + 1, self.lease.started_at, self.lease.previous_owner)
        try:
            if verdict is Renewal.MISSING:
                if not self._create_exclusive(body):
                    return self.renew_after_race()
                self.notes.append("lease file was missing; re-created it")
            else:
                atomic_write_bytes(self.path, body.model_dump_json(indent=1).encode("utf-8"))
            confirmed, why2, _ = self._read()
        except (OSError, WriteFailed) as exc:
            return self._unconfirmed(f"cannot write the lease: {exc}")
        if confirmed is None or confirmed.owner_id != self.me.owner_id:
            self.lost_reason = f"the lease now names {_who(confirmed)}" if confirmed else f"lease gone: {why2}"
            return False
        self.lease = confirmed
        self.last_confirmed = self.clock.now()
        return True

    def renew_after_race(self) -> bool:
        current, unreadable, _ = self._read()
        verdict, why = judge_renewal(current, unreadable, self.me)
        if verdict is not Renewal.OURS:
            self.lost_reason = why or "another executor claimed the missing lease first"
            return False
        return True

    def _unconfirmed(self, why: str) -> bool:
        self.notes.append(why)
        last = self.last_confirmed
        if last is not None and (self.clock.now() - last).total_seconds() > self.settings.stale_after_s / 2:
            self.lost_reason = f"lease not confirmed for more than half the stale bound ({why})"
            return False
        return True

    # --------------------------------------------------------------------------------------- release

    def release(self) -> None:
        """Remove the lease if it still names us (a clean stop: the next executor needs no take-over)."""
        try:
            current, _, _ = self._read()
        except OSError:
            return
        if current is not None and current.owner_id == self.me.owner_id:
            try:
                os.unlink(self.path)
            except OSError as exc:
                log.warning("could not remove the lease %s: %s", self.path, exc)
        self.lease = None
