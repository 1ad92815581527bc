"""The feed's ATR tape, stale views and venue clock; the JSON codec round trip; ladder invariants."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from core.oms.reasons import VenueReason
from crypto.pm.codec import action_doc, action_from, position_doc, position_from
from crypto.pm.config import load_config
from crypto.pm.decisions import Action, ManagedPosition, MarketView, govern
from crypto.pm.feed import AtrTape, VenueClock, VenueFeed
from crypto.venue.types import Market, VenueError


def test_atr_tape_is_the_mean_true_range_of_complete_bars() -> None:
    tape = AtrTape(bar_ms=1000, atr_bars=14)
    assert tape.atr() is None
    # bar 0: 100..102 close 101; bar 1: 99..101 close 100; bar 2: 100..104 close 104; bar 3 forming.
    for ts, px in [(0, 100), (100, 102), (900, 101), (1000, 99), (1500, 101), (1900, 100), (2000, 100),
                   (2500, 104), (3000, 104)]:
        tape.sample(ts, D(px))
    # TR(bar1) = max(2, |101-101|, |99-101|) = 2; TR(bar2) = max(4, |104-100|, |100-100|) = 4
    assert tape.atr() == D(3)


class StubVenue:
    def __init__(self) -> None:
        self.mark = D(100)
        self.down = False
        self.t = 1_000
        self.time_calls = 0

    def now_ms(self) -> int:
        self.time_calls += 1
        if self.down:
            raise VenueError(VenueReason.NETWORK, "down")
        return self.t

    def mark_price(self, symbol: str) -> D:
        if self.down:
            raise VenueError(VenueReason.VENUE_ERROR, "503")
        return self.mark

    def market(self, symbol: str) -> Market:
        return Market(symbol, "X", "swap", "BTC", "USDT", "USDT", D("0.01"), D("0.0001"), D("0.1"), D("0.0001"),
                      D(0))


def test_feed_answers_from_cache_and_marks_a_failed_read_stale() -> None:
    venue = StubVenue()
    clock = [1_000]
    feed = VenueFeed(venue, clock_ms=lambda: clock[0], stale_ms=5_000)  # type: ignore[arg-type]
    view, stale = feed.observe("BTC/USDT:USDT")  # type: ignore[misc]
    assert view.mark == D(100) and not stale and view.tick == D("0.1")
    venue.down = True
    view, stale = feed.observe("BTC/USDT:USDT")  # type: ignore[misc]
    assert view.mark == D(100) and stale  # the last mid, flagged
    venue.down = False
    venue.mark = D(101)
    feed.observe("BTC/USDT:USDT")
    clock[0] += 10_000
    view, stale = feed.view("BTC/USDT:USDT")  # type: ignore[misc]
    assert view.mark == D(101) and stale  # too old


def test_venue_clock_reads_the_venue_once_per_resync() -> None:
    venue = StubVenue()
    local = [0.0]
    clock = VenueClock(venue, resync_ms=5_000, local_ms=lambda: local[0])  # type: ignore[arg-type]
    assert clock() == 1_000
    local[0] = 1_000
    assert clock() == 2_000 and venue.time_calls == 1
    local[0] = 6_000
    venue.t = 7_100
    assert clock() == 7_100 and venue.time_calls == 2
    venue.down = True
    local[0] = 12_000
    assert clock() == 13_100  # a failed resync keeps the old offset


decimals = st.decimals(min_value=D("0.0001"), max_value=D(100000), places=4)


@settings(max_examples=100)
@given(qty=decimals, entry=decimals, stop=st.one_of(st.none(), decimals), fired=st.lists(st.integers(0, 5), max_size=3))
def test_position_document_round_trips_exactly(qty: D, entry: D, stop: D | None, fired: list[int]) -> None:
    pos = ManagedPosition(pos_id="p", symbol="S", kind="swap", direction=-1, qty=qty, entry=entry, margin=entry,
                          q0=qty, opened_ms=5, stop=stop, ladder_fired=tuple(sorted(set(fired))))
    assert position_from(position_doc(pos)) == pos


def test_action_document_round_trips() -> None:
    a = Action("STOP_MOVE", "p:sl:2", "p", "S", D("1.5"), "buy", D("99.5"), ("p:sl:1",), True, "ATR")
    assert action_from(action_doc(a)) == a


@settings(max_examples=150)
@given(marks=st.lists(st.integers(80, 200), min_size=1, max_size=12), lots=st.integers(1, 500))
def test_ladder_closes_never_exceed_the_position_and_rungs_fire_once(marks: list[int], lots: int) -> None:
    cfg = load_config({"ladder": [{"roe": "0.2", "fraction": "0.3"}, {"roe": "0.5", "fraction": "0.5"},
                                  {"roe": "0.9", "fraction": "0.5"}], "locks": []})
    q0 = D(lots) / 100
    pos = ManagedPosition(pos_id="p", symbol="S", kind="swap", direction=1, qty=q0, entry=D(100),
                          margin=q0 * 20, q0=q0, opened_ms=0, stop=D(50))
    closed = D(0)
    seen: list[str] = []
    for i, m in enumerate(marks):
        plan = govern(pos, MarketView(mark=D(m), ts_ms=i, qty_step=D("0.01"), min_qty=D("0.01")), cfg,
                      reduce_only=True)
        for a in plan.actions:
            if a.kind in ("TP_PARTIAL", "EXIT"):
                closed += a.qty
                seen.append(a.intent_id)
        assert plan.position.qty + closed == q0
        pos = plan.position
        if pos.closed:
            break
    assert len(seen) == len(set(seen))
