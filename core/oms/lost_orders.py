"""The one lost-order policy: when an order the venue does not list is declared lost.

A venue's order list can trail a placement by seconds, so one lookup that does not find an order proves
nothing. An order in doubt is looked up at most once per ``gap``; it counts as lost only after
``misses_to_lose`` lookups that did not find it, spread over ``window``. A lookup that finds it starts the
count again; a lookup the venue did not answer is no miss. This is Hummingbot's client order tracker rule
("lost after N order-not-found lookups"), with the lookups spaced in time. Pure: the caller brings the clock
and does the lookups; ``LostOrderTracker`` owns the not-found counters the way Hummingbot's tracker owns
``_order_not_found_records``.

Who declares an order lost: exactly one component per order, the one that knows the order is in doubt.
- The executor (``windows.sweeper``) declares orders whose send has an unknown outcome: a send that timed
  out or answered -1, an intent journaled before a crash. Only the executor knows them all (the journal
  carries them across a restart; a new adapter never saw them), its verdict is journaled (``lost``), and it
  is market-agnostic, so the crypto engine gets the same rule by using the same executor shell.
- A venue adapter declares only orders the venue accepted (a send that returned a request number) and then
  never mentioned: the executor holds those as SENT and cannot tell a quiet order from a missing one; only
  the adapter knows that no callback came (``windows.brokers.xtquant_broker``: an insufficient-funds
  rejection MiniQMT never pushed). The adapter never declares an unknown-outcome send lost; it leaves those
  to the executor, so no order is counted by two trackers with two spacings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

LOST_AFTER_LOOKUPS = 3
"""Lookups that do not find an order before it is declared lost (every caller's ``misses_to_lose``)."""


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
    """How many lookups that do not find an order, spaced how, before it is lost."""

    misses_to_lose: int = LOST_AFTER_LOOKUPS
    window: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if self.misses_to_lose < 1:
            raise ValueError("misses_to_lose must be at least 1")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")

    @classmethod
    def every(cls, gap: timedelta, misses_to_lose: int = LOST_AFTER_LOOKUPS) -> LookupPolicy:
        """The policy whose lookups are ``gap`` apart (a window of ``misses_to_lose`` gaps)."""
        return cls(misses_to_lose, gap * misses_to_lose)

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

    def wait(self, track: LookupTrack | None, now: datetime) -> LookupTrack:
        """No miss, but no lookup before a gap from ``now`` (just placed, or the venue did not answer)."""
        return LookupTrack(track.misses if track is not None else 0, now)


class LostOrderTracker:
    """The not-found counters of the orders in doubt, by client_order_id, under one ``LookupPolicy``.

    Only orders the caller put in doubt (``wait`` or ``missed``) are held; a verdict (``missed`` returning
    True), a find that ends the doubt (``forget``) or ``forget`` itself drops the order, so the table stays
    as small as the set of orders in doubt."""

    def __init__(self, policy: LookupPolicy) -> None:
        self.policy = policy
        self._tracks: dict[str, LookupTrack] = {}

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._tracks

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tracks))

    def __len__(self) -> int:
        return len(self._tracks)

    def misses(self, client_order_id: str) -> int:
        """Lookups in a row that did not find the order (0 for one not in doubt)."""
        track = self._tracks.get(client_order_id)
        return 0 if track is None else track.misses

    def is_due(self, client_order_id: str, now: datetime) -> bool:
        """True when the order may be looked up now (an order not held yet is due at once)."""
        return self.policy.is_due(self._tracks.get(client_order_id), now)

    def wait(self, client_order_id: str, now: datetime) -> None:
        """Put the order in doubt (or keep it there) with no lookup before a gap from ``now``: it was just
        placed, or the venue did not answer the lookup (unknown is not a miss)."""
        self._tracks[client_order_id] = self.policy.wait(self._tracks.get(client_order_id), now)

    def missed(self, client_order_id: str, now: datetime) -> bool:
        """Count one lookup at ``now`` that did not find the order; True (and the order forgotten) once it is
        lost."""
        verdict = self.policy.miss(self._tracks.get(client_order_id), now)
        if verdict.lost:
            self._tracks.pop(client_order_id, None)
        else:
            self._tracks[client_order_id] = verdict.track
        return verdict.lost

    def found(self, client_order_id: str, now: datetime) -> None:
        """A lookup found the order but it is still in doubt: the count starts again, the next lookup a gap
        later."""
        self._tracks[client_order_id] = self.policy.found(now)

    def forget(self, client_order_id: str) -> None:
        """The order is no longer in doubt (found and settled, or ended otherwise)."""
        self._tracks.pop(client_order_id, None)
