"""The venue: a 429 storm (every request refused for a while) over many positions and many ticks. The retry
queue stays bounded (one unfinished stop move per position: a newer one supersedes it), nothing is sent
twice, and when the storm ends the queue drains to one live stop per position."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from crypto.pm.decisions import MarketView
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, build, config


def test_a_429_storm_keeps_the_queue_bounded_then_drains(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg=config(ladder=[], add_on={"gate_roe": "5"}))
    n = 25
    for i in range(n):
        m.open_position(f"p{i}", SYM, "swap", 1, D(2), D(100), D(40), MarketView(mark=D(100), ts_ms=0, atr=D(2)))
    port.fault_rate = 1.0  # every request: 429 or 503
    mark = D(100)
    for _ in range(10):  # the price climbs through the storm: every tick decides new stop moves
        mark += D(2)
        clock.advance(60_000)
        m.tick(lambda s, mk=mark: (MarketView(mark=mk, ts_ms=0, atr=D(2)), False))
        assert m.state.retry_len() <= n, m.state.retry_len()  # one unfinished stop move per position at most
    assert m.state.retry_len() > 0
    port.fault_rate = 0.0
    for _ in range(20):
        clock.advance(600_000)
        m.runner.run_due(clock())
        if m.state.retry_len() == 0:
            break
    assert m.state.retry_len() == 0
    stops = port.live_stops()
    assert sorted(s.client_order_id for s in stops) == sorted({s.client_order_id for s in stops})
    for pos_id in m.state.active_ids():
        pos = m.state.load_position(pos_id)
        assert pos is not None and pos.stop_coid is not None
    assert len(stops) == n  # exactly one live stop per position
    assert port.duplicate_refusals == 0


def test_a_new_stop_the_venue_answers_rejected_never_costs_the_old_one(redis_url: str, tmp_path: Path) -> None:
    """The venue takes the new stop and answers it rejected/canceled (not an error: an order in a final
    state). Before: counted DONE and the old stop cancelled, leaving the position with no stop at all."""
    from crypto.pm.port import OrderAck, OrderIntent
    from tests.crypto.pm.doubles import PortOrder

    class RejectingPort(FakePort):
        reject_stops = False

        def place(self, intent: OrderIntent) -> OrderAck:
            ack = super().place(intent)
            if self.reject_stops and intent.type == "stop_market":
                self.orders[intent.client_order_id] = PortOrder(intent, ack.venue_order_id, "rejected")
                return OrderAck(ack.client_order_id, ack.venue_order_id, "rejected")
            return ack

    port, clock = RejectingPort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg=config(ladder=[], add_on={"gate_roe": "5"}))
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), MarketView(mark=D(100), ts_ms=0, atr=D(2)))
    [before] = port.live_stops()
    port.reject_stops = True
    res = m.manage("p1", MarketView(mark=D(112), ts_ms=0, atr=D(2)))
    [out] = [o for o in res.outcomes if o.action.kind == "STOP_MOVE"]
    assert out.status != "DONE"
    assert port.live_stops() == [before]  # the old stop stays
    pos = m.state.load_position("p1")
    assert pos is not None and pos.stop_coid is not None


def test_a_stop_move_does_not_read_the_whole_retry_queue(redis_url: str, tmp_path: Path) -> None:
    """Superseding queued stop moves looks at the position's own index, not the whole queue (a storm over
    10,000 positions made each stop move read 10,000 entries: quadratic per tick)."""
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg=config(ladder=[], add_on={"gate_roe": "5"}))
    for i in range(3):
        m.open_position(f"p{i}", SYM, "swap", 1, D(2), D(100), D(40), MarketView(mark=D(100), ts_ms=0, atr=D(2)))
    port.fault_rate = 1.0
    m.tick(lambda s: (MarketView(mark=D(110), ts_ms=0, atr=D(2)), False))
    assert m.state.retry_len() == 3 and m.state.queued_for("p0")
    reads: list[int] = []
    original = m.state.retry_queue
    m.state.retry_queue = lambda: reads.append(1) or original()  # type: ignore[method-assign,func-returns-value]
    clock.advance(60_000)
    m.tick(lambda s: (MarketView(mark=D(114), ts_ms=0, atr=D(2)), False))
    assert reads == []
    assert m.state.retry_len() == 3  # each position's newer move superseded its queued one
    port.fault_rate = 0.0
    for _ in range(20):
        clock.advance(600_000)
        m.runner.run_due(clock())
    assert m.state.retry_len() == 0 and all(not m.state.queued_for(f"p{i}") for i in range(3))
    assert len(port.live_stops()) == 3


def test_the_oms_ping_is_one_request_per_ttl_not_one_per_pass() -> None:
    """50 passes in a tick asked the venue's time 50 times (10,000 positions: 10,000 requests per tick)."""
    from crypto.pm.port import VenuePort
    from crypto.venue.types import VenueError

    class Clocked:
        calls = 0
        down = False

        def now_ms(self) -> int:
            self.calls += 1
            if self.down:
                from core.oms.reasons import VenueReason

                raise VenueError(VenueReason.NETWORK, "down")
            return 1

    venue, t = Clocked(), [0.0]
    port = VenuePort(venue, monotonic=lambda: t[0])  # type: ignore[arg-type]
    assert all(port.ping() for _ in range(50)) and venue.calls == 1
    venue.down = True
    t[0] = 2.5
    assert not port.ping() and not port.ping() and venue.calls == 2
