"""Garbage in the live state: a corrupt position document in Redis, a corrupt retry body, a venue position
with a NaN size, a bug in one step. Each is refused once (audited), the position is governed from the
store, and the service keeps serving: never a second pos_id, never a crash of the loop."""

from __future__ import annotations

import threading
from decimal import Decimal as D
from pathlib import Path

from core.events import AuditCode, AuditEvent
from crypto.pm.decisions import MarketView
from crypto.pm.feed import VenueFeed
from crypto.pm.service import PmService
from crypto.pm.state import RETRY_BODY, RETRY_Z, key_state
from crypto.venue.types import Position
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, build
from tests.crypto.pm.test_service import StubVenue


def _service(redis_url: str, tmp_path: Path) -> tuple[PmService, FakePort, StubVenue, ManualClock, list[AuditEvent]]:
    port, clock, audit = FakePort(), ManualClock(), []
    m = build(redis_url, tmp_path / "pm.db", port, clock, audit=audit)
    venue = StubVenue(clock)
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock)  # type: ignore[arg-type]
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    svc.step()
    return svc, port, venue, clock, audit


def test_a_corrupt_position_document_is_refused_once_and_rebuilt(redis_url: str, tmp_path: Path) -> None:
    svc, port, venue, clock, audit = _service(redis_url, tmp_path)
    m = svc.manager
    [pos_id] = m.state.active_ids()
    for garbage in ('{"qty": "NaN"', '{"qty": "NaN", "pos_id": "x"}', "[]", '"just a string"'):
        m.state.r.set(key_state(pos_id), garbage)
        clock.advance(20_000)
        svc.step()
        assert m.state.active_ids() == [pos_id]  # not mistaken for a new position
        pos = m.state.load_position(pos_id)
        assert pos is not None and pos.qty == D("0.5")  # rebuilt from the store
    assert len(port.live_stops()) == 1 and port.duplicate_refusals == 0
    assert sum(1 for e in audit if e.code is AuditCode.PM_STATE_INVALID) == 4  # once per corruption
    assert svc.errors == 0


def test_a_corrupt_retry_body_is_resumed_from_the_journal(redis_url: str, tmp_path: Path) -> None:
    svc, port, venue, clock, audit = _service(redis_url, tmp_path)
    m = svc.manager
    port.fault_rate = 1.0
    m.tick(lambda s: (MarketView(mark=D(110), ts_ms=0, atr=D(2)), False))
    queued = m.state.retry_queue()
    assert queued
    for intent_id, _ in queued:
        m.state.r.hset(RETRY_BODY, intent_id, "{not json")
    port.fault_rate = 0.0
    clock.advance(3_600_000)
    m.runner.run_due(clock())
    assert m.state.r.zcard(RETRY_Z) == 0
    for intent_id, _ in queued:
        rec = m.store.intent(intent_id)
        assert rec is not None and rec["state"] in ("DONE", "SUPERSEDED"), rec


def test_a_venue_position_with_a_nan_size_is_skipped(redis_url: str, tmp_path: Path) -> None:
    svc, port, venue, clock, audit = _service(redis_url, tmp_path)
    m = svc.manager
    venue.open.append(Position("ETH/USDT:USDT", D("NaN"), D(100), D(100), D(70), D(1), D(3), "isolated", D(0)))
    venue.open.append(Position("SOL/USDT:USDT", D("0.5"), D("-5"), D(100), D(70), D(1), D(3), "isolated", D(0)))
    clock.advance(1_000)
    svc.step()
    svc.step()
    assert len(m.state.active_ids()) == 1  # the BTC one only
    assert sum(1 for e in audit if e.code is AuditCode.PM_STATE_INVALID) == 2  # each refused once
    assert svc.errors == 0


def test_a_bug_in_one_step_does_not_end_the_loop(redis_url: str, tmp_path: Path) -> None:
    svc, port, venue, clock, audit = _service(redis_url, tmp_path)
    calls = []

    def broken(symbols: list[str] | None = None) -> list[Position]:
        calls.append(1)
        if len(calls) < 3:
            raise KeyError("a bug")
        stop.set()
        return list(venue.open)

    venue.positions = broken  # type: ignore[method-assign]
    svc.watch_interval_s = 0.01
    stop = threading.Event()
    t = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive() and len(calls) >= 3 and svc.errors >= 2


def test_a_nan_or_negative_balance_never_sizes_a_transfer(redis_url: str, tmp_path: Path) -> None:
    from tests.crypto.pm.test_manager import FakeTreasury

    for spot, fut in ((D("NaN"), D(0)), (D(1000), D("NaN")), (D(-5), D(0)), (D(1000), D(-1))):
        t = FakeTreasury(spot, fut)
        m = build(redis_url, tmp_path / f"pm{len(str(spot))}{fut}.db", FakePort(), ManualClock(), treasury=t)
        assert m.treasury_tick(f"t-{spot}-{fut}") == "TREASURY_BALANCE_INVALID"
        assert t.sent == []


def test_replay_is_read_only_and_refuses_what_is_not_a_store(redis_url: str, tmp_path: Path,
                                                             capsys: object) -> None:
    import hashlib

    from crypto.pm.cli import main as pm_main

    m = build(redis_url, tmp_path / "pm.db", FakePort(), ManualClock())
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), MarketView(mark=D(100), ts_ms=0, atr=D(2)))
    m.store.close()
    digest = hashlib.sha256((tmp_path / "pm.db").read_bytes()).hexdigest()
    assert pm_main(["replay", "--pos-id", "p1", "--db", str(tmp_path / "pm.db")]) == 0
    assert hashlib.sha256((tmp_path / "pm.db").read_bytes()).hexdigest() == digest  # nothing written
    (tmp_path / "adir").mkdir()
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert pm_main(["replay", "--pos-id", "p1", "--db", str(tmp_path / "adir")]) == 2
    assert pm_main(["replay", "--pos-id", "p1", "--db", str(tmp_path / "junk.db")]) == 2
    assert not (tmp_path / "junk.db-wal").exists()


def test_an_unknown_symbol_in_the_watch_list_does_not_stop_the_others(redis_url: str, tmp_path: Path) -> None:
    """--symbols BTC/USDT:USDT,NOPE/USDT: the venue does not know NOPE. Before: every step raised on it before
    the BTC watch ran, so nothing was governed at all. Now NOPE is skipped (audited once), BTC is watched."""
    from core.oms.reasons import VenueReason
    from crypto.venue.types import Market, VenueError

    port, clock, audit = FakePort(), ManualClock(), []  # type: ignore[var-annotated]
    m = build(redis_url, tmp_path / "pm.db", port, clock, audit=audit)
    venue = StubVenue(clock)
    real_market = venue.market

    def market(symbol: str) -> Market:
        if symbol.startswith("NOPE"):
            raise VenueError(VenueReason.INVALID_ORDER, "unknown symbol")
        return real_market(symbol)

    venue.market = market  # type: ignore[method-assign]
    svc = PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock,  # type: ignore[arg-type]
                    symbols=[SYM, "NOPE/USDT"])
    venue.open = [Position(SYM, D("0.5"), D(100), D(100), D(70), D(1000 / 60), D(3), "isolated", D(0))]
    for _ in range(3):
        clock.advance(1_000)
        svc.step()
    assert len(m.state.active_ids()) == 1 and len(port.live_stops()) == 1
    assert sum(1 for e in audit if e.cause == "SYMBOL_UNKNOWN") == 1
