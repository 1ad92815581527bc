"""Actions through the port on a real Redis: journal first, place-then-cancel, retries, the queue."""

from __future__ import annotations

import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.events import AuditCode, AuditEvent
from core.oms.reasons import VenueReason
from crypto.pm.config import RetryConfig
from crypto.pm.decisions import Action
from crypto.pm.port import client_order_id_for
from crypto.pm.runner import ActionRunner
from crypto.pm.state import RedisState
from crypto.pm.store import SqliteSnapshotStore
from crypto.venue.types import VenueError
from tests.crypto.pm.doubles import FakePort, ManualClock


def stop_move(pos: str, seq: int, level: D) -> Action:
    cancels = (f"{pos}:sl:{seq - 1}",) if seq > 1 else ()
    return Action("STOP_MOVE", f"{pos}:sl:{seq}", pos, "BTC/USDT:USDT", D(1), "sell", level, cancels)


@pytest.fixture
def kit(redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    store = SqliteSnapshotStore(tmp_path / "pm.db")
    state = RedisState.from_url(redis_url)
    yield clock, store, state
    store.close()


def make_runner(port: FakePort, store: SqliteSnapshotStore, state: RedisState, clock: ManualClock,
                attempts: int = 3, audit: list[AuditEvent] | None = None) -> tuple[ActionRunner, list[float]]:
    sleeps: list[float] = []
    sink = audit if audit is not None else []
    runner = ActionRunner(port, store, state, RetryConfig(attempts=attempts, backoff_ms=200, jitter_ms=100,
                                                          queue_delay_ms=5_000),
                          clock_ms=clock, rng=random.Random(7), sleep=sleeps.append, audit=sink.append)
    return runner, sleeps


def test_stop_move_places_the_new_stop_before_cancelling_the_old(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort()
    runner, _ = make_runner(port, store, state, clock)
    assert runner.run(stop_move("p1", 1, D(97))).status == "DONE"
    calls: list[str] = []
    real_place, real_cancel = port.place, port.cancel
    port.place = lambda i: (calls.append("place"), real_place(i))[1]  # type: ignore[method-assign]
    port.cancel = lambda s, c: (calls.append("cancel"), real_cancel(s, c))[1]  # type: ignore[method-assign]
    assert runner.run(stop_move("p1", 2, D(110))).status == "DONE"
    assert calls == ["place", "cancel"]
    assert [s.trigger_price for s in port.live_stops()] == [D(110)]


def test_a_journaled_intent_is_never_sent_twice(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort()
    runner, _ = make_runner(port, store, state, clock)
    a = Action("TP_PARTIAL", "p1:tp:0", "p1", "BTC/USDT:USDT", D("0.3"), "sell")
    assert runner.run(a).status == "DONE"
    assert runner.run(a).status == "DONE"
    assert port.place_calls == 1 and len(port.orders) == 1


def test_a_lost_response_is_looked_up_not_resent(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort(lost_rate=1.0)
    runner, _ = make_runner(port, store, state, clock)
    out = runner.run(Action("EXIT", "p1:exit", "p1", "BTC/USDT:USDT", D(1), "sell"))
    assert out.status == "DONE" and out.ack is not None
    assert len(port.orders) == 1 and port.duplicate_refusals == 0


def test_failing_action_is_alerted_queued_and_done_when_due(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort(fault_rate=1.0)
    audit: list[AuditEvent] = []
    runner, sleeps = make_runner(port, store, state, clock, audit=audit)
    out = runner.run(stop_move("p1", 1, D(97)))
    assert out.status == "QUEUED"
    assert len(sleeps) == 2 and all(0.2 <= s <= 0.3 for s in sleeps)  # fixed backoff + jitter
    assert [e.code for e in audit] == [AuditCode.PM_ACTION_QUEUED] and audit[0].severity.value == "ERROR"
    assert state.retry_queue() == [("p1:sl:1", clock() + 5_000)]
    port.fault_rate = 0.0
    assert runner.run_due() == []  # not due yet
    clock.advance(5_000)
    [done] = runner.run_due()
    assert done.status == "DONE" and state.retry_len() == 0
    assert store.intent("p1:sl:1")["state"] == "DONE"  # type: ignore[index]


def test_new_stop_placed_but_cancel_failing_is_a_partial_success(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort()
    audit: list[AuditEvent] = []
    runner, _ = make_runner(port, store, state, clock, audit=audit)
    runner.run(stop_move("p1", 1, D(97)))
    real_cancel = port.cancel

    def broken(symbol: str, coid: str) -> bool:
        raise VenueError(VenueReason.VENUE_ERROR, "502")

    port.cancel = broken  # type: ignore[method-assign]
    out = runner.run(stop_move("p1", 2, D(105)))
    assert out.status == "PARTIAL" and audit[-1].code is AuditCode.PM_ACTION_PARTIAL
    assert len(port.live_stops()) == 2  # never zero stops
    port.cancel = real_cancel  # type: ignore[method-assign]
    clock.advance(5_000)
    [done] = runner.run_due()
    assert done.status == "DONE"
    assert [s.trigger_price for s in port.live_stops()] == [D(105)]
    assert port.place_calls == 2  # the resumed intent did not place again


def test_1000_stop_moves_with_5pct_faults(kit) -> None:  # type: ignore[no-untyped-def]
    clock, store, state = kit
    port = FakePort(fault_rate=0.05, seed=4)
    runner, _ = make_runner(port, store, state, clock, attempts=2)
    positions = [f"p{i}" for i in range(100)]
    seq = dict.fromkeys(positions, 0)
    first_pass_ok = queued = retried = 0
    for n in range(1000):
        pos = positions[n % 100]
        seq[pos] += 1
        action = runner.supersede_queued(stop_move(pos, seq[pos], D(90) + D(seq[pos])))
        status = runner.run(action).status
        first_pass_ok += status == "DONE"
        queued += status in ("QUEUED", "PARTIAL")
        clock.advance(1_000)
        retried += sum(o.status == "DONE" for o in runner.run_due())
    queued_after = state.retry_len()
    for _ in range(50):  # every round the clock passes the longest due time
        if state.retry_len() == 0:
            break
        clock.advance(300_000)
        runner.run_due()
    rate = first_pass_ok / 1000
    print(f"stop-move first-pass success {rate:.3f}, faults {port.faults}, queued {queued}, done from the queue"
          f" {retried}, still queued after the run {queued_after}")
    assert rate >= 0.99
    assert queued > 0 and retried > 0  # the queue was exercised (seeded)
    assert state.retry_len() == 0
    assert port.duplicate_refusals == 0
    live = port.live_stops()
    assert sorted(i.client_order_id for i in live) == sorted(
        client_order_id_for(f"{p}:sl:{seq[p]}") for p in positions)  # exactly the latest stop per position
    open_intents = store.intents(("NEW", "QUEUED", "PARTIAL", "PLACED"))
    assert open_intents == []


def test_a_filled_market_order_whose_answer_was_lost_is_not_sent_again(kit) -> None:  # type: ignore[no-untyped-def]
    """A venue that only refuses duplicate *live* ids: the retry must find the filled order by lookup."""
    clock, store, state = kit
    port = FakePort()
    real_place = port.place
    calls = {"n": 0}

    def lossy_place(intent):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            real_place(intent)  # accepted and filled...
            port.orders[intent.client_order_id].status = "closed"
            order = port.orders.pop(intent.client_order_id)  # ...and forgotten by the duplicate check
            port.filled_elsewhere = order  # type: ignore[attr-defined]
            raise VenueError(VenueReason.VENUE_ERROR, "502")  # the answer is lost as a 5xx
        return real_place(intent)

    real_lookup = port.lookup

    def lookup(symbol: str, coid: str):  # type: ignore[no-untyped-def]
        kept = getattr(port, "filled_elsewhere", None)
        if kept is not None and kept.intent.client_order_id == coid:
            return port._ack(kept)
        return real_lookup(symbol, coid)

    port.place = lossy_place  # type: ignore[method-assign]
    port.lookup = lookup  # type: ignore[method-assign]
    runner, _ = make_runner(port, store, state, clock)
    out = runner.run(Action("TP_PARTIAL", "p1:tp:0", "p1", "BTC/USDT:USDT", D("0.3"), "sell"))
    assert out.status == "DONE" and calls["n"] == 1  # found by lookup, never placed a second time
