"""When an order the venue does not list counts as lost: one spaced-lookup policy for every caller.

A venue's order list can trail a placement by seconds, so one empty lookup proves nothing. An order whose
fate is unknown (a send that timed out, an intent journaled before a crash, an order left open from an
earlier day) is looked up at most once per ``gap``; it counts as lost (or ended) only after
``misses_to_lose`` lookups that did not find it, spread over ``window``. A lookup that finds it ends the
count. The restart recovery and the running sweep both use this policy (Hummingbot's "lost after N
not-found lookups", with the lookups spaced in time). Pure: the caller keeps the tracks and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LookupTrack:
    """What the lookups of one order have found so far."""

    misses: int = 0
    last: datetime | None = None


@dataclass(frozen=True)
class MissVerdict:
    track: LookupTrack
    lost: bool


@dataclass(frozen=True)
class LookupPolicy:
    misses_to_lose: int = 3
    window: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.misses_to_lose < 1:
            raise ValueError("misses_to_lose must be at least 1")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")

    @property
    def gap(self) -> timedelta:
        """The least time between two lookups of one order."""
        return self.window / self.misses_to_lose

    def is_due(self, track: LookupTrack | None, now: datetime) -> bool:
        """True when the order may be looked up now (never looked up, or the gap has passed)."""
        return track is None or track.last is None or now - track.last >= self.gap

    def miss(self, track: LookupTrack | None, now: datetime) -> MissVerdict:
        """One lookup at ``now`` did not find the order; ``lost`` once there were enough misses."""
        misses = (track.misses if track is not None else 0) + 1
        return MissVerdict(LookupTrack(misses, now), misses >= self.misses_to_lose)

    def found(self, now: datetime) -> LookupTrack:
        """A lookup found the order: the count of misses starts again."""
        return LookupTrack(0, now)
