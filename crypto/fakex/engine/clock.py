"""The model's own time. Nothing in the engine reads the wall clock: tests advance a ``ManualClock``,
``serve`` maps wall time x speed onto the scenario's start with a ``ScaledClock``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class ManualClock:
    """Moves only when told to; thread-safe so the server and a test can share it."""

    def __init__(self, start_ms: int) -> None:
        self._now = int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("the clock does not go back")
        with self._lock:
            self._now += int(ms)
            return self._now

    def set(self, now_ms: int) -> None:
        with self._lock:
            if now_ms < self._now:
                raise ValueError("the clock does not go back")
            self._now = int(now_ms)


class ScaledClock:
    """start_ms + (wall elapsed x speed). ``wall`` is injected (monotonic seconds) so tests can drive it."""

    def __init__(self, start_ms: int, speed: float = 1.0, wall: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = int(start_ms)
        self._speed = speed
        self._wall = wall
        self._wall0 = wall()
        self._extra = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._start + self._extra + int((self._wall() - self._wall0) * 1000 * self._speed)

    def advance(self, ms: int) -> int:
        """An explicit jump on top of the scaled wall time (the admin door's 'advance')."""
        if ms < 0:
            raise ValueError("the clock does not go back")
        with self._lock:
            self._extra += int(ms)
        return self.now_ms()
