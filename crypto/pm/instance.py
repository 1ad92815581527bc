"""One position manager per store and per Redis: the second ``pm serve`` refuses with its own exit code.

Two managers on one store would journal the same intent ids from two processes; two on one Redis would
both govern every position in ``pos:active`` (two stops, two take-profits). So ``serve`` takes two locks
before it reads any state:

- the store: ``flock(LOCK_EX | LOCK_NB)`` on the SQLite file itself, opened with ``O_NOFOLLOW``. A lock
  on the file (not on a side file named after the path) holds for every path to it: a symlinked folder, a
  relative path. The kernel drops it when the process dies (``kill -9`` included): no stale lock to clear.
  flock locks are separate from SQLite's POSIX record locks, and the descriptor stays open until the
  store is closed (closing a descriptor of the file would drop SQLite's own POSIX locks in this process).
- Redis: ``lock:pm:instance`` (SET NX PX, a random token, renewed by compare-and-set every loop, so a
  killed manager's lock expires after ``ttl_ms``). After a Redis loss the key is gone and the holder
  takes it again; if another manager took it meanwhile, the holder stops (``InstanceLost``).

The path checks refuse, with a code, a store path that is a symlink, not a regular file, in a missing
folder, or not writable: nothing is created or written through a link.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import Any, cast

import redis

INSTANCE_KEY = "lock:pm:instance"
EXIT_STORE_PATH = 3
EXIT_ALREADY_RUNNING = 4

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""


class StorePathRefused(RuntimeError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class AlreadyRunning(RuntimeError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class InstanceLost(RuntimeError):
    """Another manager holds ``lock:pm:instance`` now: this one must stop governing."""

    code = "INSTANCE_LOST"


def open_store_lock(db: Path) -> int:
    """Check the store path and take the exclusive flock on it; returns the descriptor (keep it open)."""
    if db.is_symlink():
        raise StorePathRefused("STORE_PATH_SYMLINK", f"{db} is a symlink; give the real path")
    if db.exists() and not db.is_file():
        raise StorePathRefused("STORE_PATH_NOT_A_FILE", f"{db} exists and is not a regular file")
    if not db.parent.is_dir():
        raise StorePathRefused("STORE_DIR_MISSING", f"{db.parent} is not a folder")
    for side in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), db.with_suffix(".audit.jsonl")):
        if side.is_symlink():
            raise StorePathRefused("STORE_PATH_SYMLINK", f"{side} is a symlink")
    try:
        fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        code = {errno.EACCES: "STORE_NOT_WRITABLE", errno.EROFS: "STORE_NOT_WRITABLE",
                errno.ELOOP: "STORE_PATH_SYMLINK", errno.EISDIR: "STORE_PATH_NOT_A_FILE"}.get(exc.errno or 0,
                                                                                           "STORE_OPEN_FAILED")
        raise StorePathRefused(code, f"{db}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StorePathRefused("STORE_PATH_NOT_A_FILE", str(db))
    if not os.access(db.parent, os.W_OK):  # SQLite's WAL and shm files live beside the store
        os.close(fd)
        raise StorePathRefused("STORE_NOT_WRITABLE", f"{db.parent} is not writable (WAL files go there)")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning("STORE_IN_USE", f"another position manager holds {db}") from None
    return fd


class RedisInstance:
    """``lock:pm:instance`` on the manager's Redis (see the module doc)."""

    def __init__(self, client: redis.Redis, db: Path, ttl_ms: int = 15_000) -> None:
        self.r = client
        self.ttl_ms = ttl_ms
        self.token = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "db": str(db),
                                 "nonce": secrets.token_hex(8)}, sort_keys=True)
        self._renew = self.r.register_script(_RENEW)

    def acquire(self) -> None:
        if not self.r.set(INSTANCE_KEY, self.token, nx=True, px=self.ttl_ms):
            holder = cast(Any, self.r.get(INSTANCE_KEY))
            raise AlreadyRunning("REDIS_IN_USE", f"another position manager governs this Redis: {holder}")

    def renew(self) -> None:
        """Extend the lease; take it again after a Redis loss; raise ``InstanceLost`` when another has it.
        A Redis error propagates (the service counts it and tries again on the next loop)."""
        got = int(cast(Any, self._renew)(keys=[INSTANCE_KEY], args=[self.token, self.ttl_ms]))
        if got == 0:
            raise InstanceLost(str(self.r.get(INSTANCE_KEY)))

    def release(self) -> None:
        try:
            if self.r.get(INSTANCE_KEY) == self.token:
                self.r.delete(INSTANCE_KEY)
        except redis.RedisError:
            pass  # it expires by its TTL
