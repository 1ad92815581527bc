"""Change detection for shared files: watchdog events with a polling fallback.

File events do not cross a Parallels shared folder, so ``auto`` (the default) listens for events *and*
polls the files' stat signature: an event wakes the reader at once, polling guarantees it wakes anyway.
``events`` trusts events alone (a local folder), ``poll`` never starts an observer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

WatchMode = Literal["auto", "events", "poll"]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ChangeWatcher:
    def __init__(self, paths: Iterable[Path], mode: WatchMode = "auto", poll_interval: float = 0.05) -> None:
        self.paths = [Path(p) for p in paths]
        self.mode = mode
        self.poll_interval = poll_interval
        self._event = threading.Event()
        self._signatures = {p: _signature(p) for p in self.paths}
        self._observer = None
        self.events_seen = 0
        self.polls_detected = 0
        if mode in ("auto", "events"):
            self._start_observer()

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency; poll if it is broken
            self.mode = "poll"
            return
        names = {p.name for p in self.paths}
        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:  # type: ignore[no-untyped-def]
                for attr in ("src_path", "dest_path"):
                    value = getattr(event, attr, "")
                    if value and os.path.basename(os.fsdecode(value)) in names:
                        watcher.events_seen += 1
                        watcher._event.set()
                        return

        observer = Observer()
        for folder in {p.parent for p in self.paths}:
            folder.mkdir(parents=True, exist_ok=True)
            observer.schedule(_Handler(), str(folder), recursive=False)
        observer.daemon = True
        try:
            observer.start()
        except OSError:
            self.mode = "poll"
            return
        self._observer = observer

    def _poll_changed(self) -> bool:
        changed = False
        for path in self.paths:
            sig = _signature(path)
            if sig != self._signatures.get(path):
                self._signatures[path] = sig
                changed = True
        return changed

    def wait(self, timeout: float) -> bool:
        """Block until a watched file changed or ``timeout`` passed; True when a change was seen."""
        if self.mode == "events":
            fired = self._event.wait(timeout)
            self._event.clear()
            return fired
        remaining = timeout
        while True:
            if self._poll_changed():
                self.polls_detected += 1
                self._event.clear()
                return True
            step = min(self.poll_interval, remaining)
            if step <= 0:
                return False
            if self._event.wait(step):
                self._event.clear()
                self._poll_changed()
                return True
            remaining -= step

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None


def run_turns(turn: Callable[[], object], watcher: ChangeWatcher, idle_wait: float,
              max_seconds: float | None = None, stop_flag: Any = None) -> None:
    """A process's main loop: one ``turn`` per change (or every ``idle_wait`` seconds at the latest), until
    ``stop_flag.is_set()`` or ``max_seconds`` of wall time have passed."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while True:
        turn()
        if stop_flag is not None and stop_flag.is_set():
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        watcher.wait(idle_wait)
