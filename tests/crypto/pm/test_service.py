"""The service loop with a stub venue: the watch opens a position once, Redis loss does not make it new,
a vanished venue position is closed."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from crypto.pm.feed import VenueFeed
from crypto.pm.service import PmService
from crypto.venue.types import Market, Position
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, build


class StubVenue:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.mark = D(100)
        self.open: list[Position] = []

    def now_ms(self) -> int:
        return self.clock()

    def mark_price(self, symbol: str) -> D:
        return self.mark

    def market(self, symbol: str) -> Market:
        return Market(symbol, "BTC-USDT-SWAP", "swap", "BTC", "USDT", "USDT", D("0.01"), D("0.0001"), D("0.1"),
                      D("0.0001"), D(0))

    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        return list(self.open)


def test_watch_step_redis_loss_and_venue_close(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    [pos_id] = m.state.active_ids()
    assert len(port.live_stops()) == 1
    svc.step()
    assert m.state.active_ids() == [pos_id]  # seen once
    m.state.r.flushall()  # Redis lost everything
    clock.advance(1_000)
    svc.step()
    assert m.state.active_ids() == [pos_id]  # rebuilt from the store, not a new position
    assert len(port.live_stops()) == 1 and port.duplicate_refusals == 0
    venue.open = []  # the venue's stop fired
    clock.advance(1_000)
    svc.step()
    assert m.state.active_ids() == []
    assert [e["type"] for e in m.state.events(SYM)][-1] == "EXIT"
    assert svc.errors == 0


def test_watch_adopts_the_venue_size_and_resizes_the_stop(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    [pos_id] = m.state.active_ids()
    # Someone closed 0.2 by hand: the venue shows 0.3.
    venue.open = [Position(SYM, D("0.3"), D(100), D(100), D(70), D(10), D(3), "isolated", D(0))]
    clock.advance(1_000)
    svc.step()
    pos = m.state.load_position(pos_id)
    assert pos is not None and pos.qty == D("0.3") and pos.margin == D(10)
    [stop] = port.live_stops()
    assert stop.qty == D("0.3")
    assert "reconciled" in [h["phase"] for h in m.store.history(pos_id)]
    clock.advance(1_000)
    svc.step()  # nothing differs any more
    assert [h["phase"] for h in m.store.history(pos_id)].count("reconciled") == 1


def test_management_ticks_on_time_and_on_a_price_move(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)  # manage_interval_s 15, price_move_trigger 0.5 %
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()  # opens, and the first management tick runs
    [pos_id] = m.state.active_ids()

    def passes() -> int:
        # A pass writes a snapshot before and after; a state already stored is confirmed, not stored again.
        return sum(1 + h.get("confirmations", 0) for h in m.store.history(pos_id))

    first = passes()
    clock.advance(1_000)
    venue.mark = D("100.2")  # 0.2 %: no event tick, interval not due
    svc.step()
    assert passes() == first
    clock.advance(1_000)
    venue.mark = D("100.7")  # 0.7 % since the last pass: event tick
    svc.step()
    after_event = passes()
    assert after_event >= first + 2
    clock.advance(15_000)  # interval due
    svc.step()
    assert passes() >= after_event + 2
