"""The Clock port: logic asks a clock for the time, never the wall."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from shared_schema.types import CST


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock in China time; only process shells construct it."""

    def now(self) -> datetime:
        return datetime.now(tz=CST)


class ManualClock:
    """A clock tests and replays move by hand."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value

    def advance(self, seconds: float) -> datetime:
        self._now = self._now + timedelta(seconds=seconds)
        return self._now
