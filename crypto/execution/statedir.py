"""The engine's state folder: claimed by one process at a time, never through a link.

Two engines on one folder would both append to one journal and cancel each other's orders as orphans, so a
folder is claimed with an exclusive lock (``filelock``: ``flock`` on a file inside it) before anything is
read or written; a second claimant is refused at once (``AlreadyRunning``), never queued. The lock file
holds the owner's pid for the operator's message. The lock lives on the folder's inode, so another path to
the same folder (a bind mount, ``./state`` vs ``/abs/state``) meets the same lock.

What the engine writes and deletes it never reaches through a symbolic link: a state folder that is a link,
or a journal, audit log or status file that is a link or a directory, is refused (``StateDirError``) before
the first write: the engine would otherwise append its journal to wherever the link points.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock, Timeout


class StateDirError(RuntimeError):
    """The state folder cannot be used as it is (a link, a file in its place, unwritable)."""


class AlreadyRunning(RuntimeError):
    """Another process holds this state folder."""


def check_state_dir(path: Path, files: Iterable[str] = ()) -> None:
    """Refuse a folder that is a link or not a folder, and any of ``files`` that is a link or a folder."""
    if path.is_symlink():
        raise StateDirError(f"{path} is a symbolic link: give the real folder ({os.path.realpath(path)}); "
                            "the engine never writes through a link")
    if path.exists() and not path.is_dir():
        raise StateDirError(f"{path} exists and is not a folder")
    for name in files:
        child = path / name
        if child.is_symlink():
            raise StateDirError(f"{child} is a symbolic link: the engine never writes through a link")
        if child.is_dir():
            raise StateDirError(f"{child} is a folder where the engine keeps a file")


def claim(path: Path, lock_name: str, files: Iterable[str] = ()) -> FileLock:
    """Check and create the folder, then take its lock without waiting; the caller releases it."""
    files = tuple(files)
    check_state_dir(path, (lock_name, *files))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"{path}: cannot create the state folder: {exc.strerror or exc}") from None
    check_state_dir(path, (lock_name, *files))  # a link swapped in between is still refused
    lock_path = path / lock_name
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise AlreadyRunning(f"another process{_holder(lock_path)} holds {path}") from None
    except OSError as exc:
        raise StateDirError(f"{path}: cannot lock the state folder: {exc.strerror or exc}") from None
    try:
        with open(lock_path, "w", encoding="ascii") as handle:  # the lock is on the inode, not the content
            handle.write(f"{os.getpid()}\n")
    except OSError:
        pass  # the pid is for the operator's message only
    return lock


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text(encoding="ascii").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
