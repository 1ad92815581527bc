"""Time attacks: one venue clock reading from 2099 never moves the service's clock; a clock that went back
never stops the management tick; the tick runs at 1x in real time and ends on progress."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from pathlib import Path

from crypto.pm.feed import VenueClock, VenueFeed
from crypto.pm.service import PmService
from crypto.venue.types import Position
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, build
from tests.crypto.pm.test_service import StubVenue

Y2099_MS = 4_070_908_800_000


class SkewVenue:
    def __init__(self) -> None:
        self.readings: list[int] = []

    def now_ms(self) -> int:
        return self.readings.pop(0)


def test_one_venue_time_from_2099_never_moves_the_clock() -> None:
    local = [0.0]
    venue = SkewVenue()
    venue.readings = [1_700_000_000_000, Y2099_MS, 1_700_000_010_000, 1_700_000_015_000]
    clock = VenueClock(venue, resync_ms=5_000, local_ms=lambda: local[0])  # type: ignore[arg-type]
    assert clock() == 1_700_000_000_000
    local[0] = 5_000.0
    assert clock() == 1_700_000_005_000  # the outlier is not believed
    local[0] = 10_000.0
    assert clock() == 1_700_000_010_000
    local[0] = 15_000.0
    assert clock() == 1_700_000_015_000


def test_a_real_jump_that_persists_is_taken() -> None:
    """A venue clock that really moved (three readings in a row agree) is followed: the guard is against a
    single outlier, not against the venue."""
    local = [0.0]
    venue = SkewVenue()
    venue.readings = [1_000_000, 2_000_000, 2_005_000, 2_010_000, 2_015_000]
    clock = VenueClock(venue, resync_ms=5_000, local_ms=lambda: local[0])  # type: ignore[arg-type]
    assert clock() == 1_000_000
    seen = []
    for i in range(1, 5):
        local[0] = 5_000.0 * i
        seen.append(clock())
    assert seen[-1] == 2_015_000


def test_a_clock_that_went_back_does_not_stop_the_management_tick(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    svc.last_manage_ms = Y2099_MS  # what a 2099 reading left behind before the guard
    svc.last_treasury_ms = Y2099_MS
    [pos_id] = m.state.active_ids()
    def seen() -> int:  # a quiet pass is stored as one more confirmation of the last snapshot, not a new row
        return sum(1 + e.get("confirmations", 0) for e in m.store.history(pos_id))

    passes = seen()
    clock.advance(1_000)
    svc.step()
    assert seen() > passes, "no management pass after the clock went back"
    assert svc.last_manage_ms <= clock()


def test_the_management_tick_at_1x_in_real_time(redis_url: str, tmp_path: Path) -> None:
    """The service loop on the wall clock (no manual clock): with manage_interval_s 1 the position is governed
    again and again; the test ends when three passes happened (progress), the bound is only a backstop."""
    from tests.crypto.pm.test_manager import config

    wall = lambda: int(time.time() * 1000)  # noqa: E731
    port = FakePort()
    m = build(redis_url, tmp_path / "pm.db", port, wall, cfg=config(manage_interval_s=10))  # type: ignore[arg-type]
    m.config.cfg = m.cfg.model_copy(update={"manage_interval_s": 1})
    venue = StubVenue(wall)  # type: ignore[arg-type]
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=wall), clock_ms=wall, watch_interval_s=0.05)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    stop = threading.Event()
    t = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        passes, first, started = 0, None, time.monotonic()
        while time.monotonic() < deadline:
            ids = m.state.active_ids()
            # Snapshots written (a quiet pass confirms the stored state twice: before and after).
            passes = sum(1 + e.get("confirmations", 0) for e in m.store.history(ids[0])) // 2 if ids else 0
            first = passes if first is None and passes else first
            if first is not None and passes >= first + 2:
                break
            time.sleep(0.05)
        assert first is not None and passes >= first + 2
        # Two more passes take two intervals of real time: the tick runs at 1x, not faster.
        assert time.monotonic() - started >= 1.5
    finally:
        stop.set()
        t.join(timeout=10)
    assert svc.errors == 0


def test_one_spiked_mark_never_takes_profit(redis_url: str, tmp_path: Path) -> None:
    """The venue answers one mark of 1e6 (or NaN, or 0) between normal ones: the feed keeps the last good
    mark (flagged stale: the pass only guards the stop) and takes a new level only when the next reading
    confirms it. Before: the spike was the mark, and the ladder took profit at market on it."""
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    venue = StubVenue(clock)
    feed = VenueFeed(venue, clock_ms=clock)  # type: ignore[arg-type]
    svc = PmService(m, venue, feed, clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    [pos_id] = m.state.active_ids()
    for spike in (D(1_000_000), D("NaN"), D(0), D(-3)):
        venue.mark = spike
        clock.advance(1_000)
        got = feed.observe(SYM)
        assert got is not None and got[0].mark == D(100) and got[1] is True  # the last good mark, stale
        svc.step()
        pos = m.state.load_position(pos_id)
        assert pos is not None and pos.qty == D("0.5") and not pos.ladder_fired
        venue.mark = D(100)
        clock.advance(1_000)
        assert feed.observe(SYM) == (feed.last[SYM], False)
    # A real move is taken once readings agreeing with it span 2 s.
    venue.mark = D(130)
    clock.advance(1_000)
    assert feed.observe(SYM)[1] is True  # type: ignore[index]
    clock.advance(1_000)
    venue.mark = D(131)
    assert feed.observe(SYM)[1] is True  # type: ignore[index]
    clock.advance(1_000)
    got = feed.observe(SYM)
    assert got is not None and got[0].mark == D(131) and got[1] is False
