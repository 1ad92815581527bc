"""The manager on a real redis-server and a SQLite store, with the port double: a position's life,
concurrency, Redis loss (kill -9), degraded modes and the treasury."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
import redis

from core.events import AuditCode, AuditEvent
from core.oms.reasons import VenueReason
from crypto.pm.config import ConfigError, PmConfig, load_config
from crypto.pm.decisions import MarketView
from crypto.pm.manager import ConfigHolder, LockBusy, Manager
from crypto.pm.port import client_order_id_for
from crypto.pm.runner import ActionRunner
from crypto.pm.state import RedisState
from crypto.pm.store import SqliteSnapshotStore
from crypto.pm.treasury import TransferRecord, TransferState
from crypto.venue.types import VenueError
from tests.crypto.pm.conftest import RedisProcess
from tests.crypto.pm.doubles import FakePort, ManualClock

SYM = "BTC/USDT:USDT"


def config(**kw: object) -> PmConfig:
    base: dict[str, object] = {
        "locks": [{"trigger_roe": "0.3", "lock_roe": "0.1"}, {"trigger_roe": "0.6", "lock_roe": "0.3"}],
        "ladder": [{"roe": "0.5", "fraction": "0.5"}, {"roe": "1.0", "fraction": "0.5"}],
        "add_on": {"gate_roe": "0.2", "gamma": "0.5", "eta": "1", "cap": 2},
    }
    base.update(kw)
    return load_config(base)


class FakeTreasury:
    def __init__(self, free_spot: D, free_fut: D) -> None:
        self.free_spot, self.free_fut = free_spot, free_fut
        self.sent: list[str] = []
        self.fail = False

    def free_balances(self, asset: str, spot_account: str, fut_account: str) -> tuple[D, D]:
        return self.free_spot, self.free_fut

    def transfer(self, asset: str, amount: D, from_account: str, to_account: str, transfer_id: str) -> str:
        if self.fail:
            raise VenueError(VenueReason.INSUFFICIENT_FUNDS, "58350")
        self.sent.append(transfer_id)
        self.free_spot -= amount
        self.free_fut += amount
        return f"v-{transfer_id}"


def build(url: str, db: Path, port: FakePort, clock: ManualClock, cfg: PmConfig | None = None,
          treasury: FakeTreasury | None = None, audit: list[AuditEvent] | None = None) -> Manager:
    cfg = cfg or config()
    store = SqliteSnapshotStore(db)
    state = RedisState.from_url(url)
    sink = audit if audit is not None else []
    runner = ActionRunner(port, store, state, cfg.retry, clock_ms=clock, rng=random.Random(3),
                          sleep=lambda _s: None, audit=sink.append)
    return Manager(state, store, runner, ConfigHolder(cfg), clock_ms=clock, audit=sink.append,
                   treasury_port=treasury)


def view(mark: str, **kw: object) -> MarketView:
    return MarketView(mark=D(mark), ts_ms=0, **kw)  # type: ignore[arg-type]


def test_life_of_a_futures_position(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    started = time.perf_counter()
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    attach_s = time.perf_counter() - started
    assert attach_s < 1.0
    assert [s.trigger_price for s in port.live_stops()] == [D(97)]  # ATR 2, k 1.5 -> 97
    clock.advance(15_000)
    r = m.manage("p1", view("107", atr=D(2)))  # ROE 0.35 -> lock 0 (0.1 ROE) -> 102
    assert [a.kind for a in r.plan.actions] == ["STOP_MOVE"]
    assert [s.trigger_price for s in port.live_stops()] == [D(102)]
    clock.advance(15_000)
    r = m.manage("p1", view("111", atr=D(2)))  # ROE 0.55: rung 0 closes 1 of 2; stop resized
    assert [a.kind for a in r.plan.actions] == ["TP_PARTIAL", "STOP_MOVE"]
    assert m.state.load_position("p1").qty == D(1)  # type: ignore[union-attr]
    [stop] = port.live_stops()
    assert stop.qty == D(1) and stop.trigger_price == D(102)
    clock.advance(15_000)
    r = m.manage("p1", view("101", atr=D(2)))  # below the stop: the guard exits
    assert [a.kind for a in r.plan.actions] == ["EXIT"]
    assert port.live_stops() == []
    assert m.state.active_ids() == []
    assert m.state.r.get("risk:budget:p1") is None
    types = [e["type"] for e in m.state.events(SYM)]
    assert types == ["ENTRY", "STOP_MOVE", "STOP_MOVE", "TP_PARTIAL", "EXIT"]  # a resize is not a move
    history = m.store.history("p1")
    phases = [h["phase"] for h in history]
    assert phases[0] == "entry" and phases[-1] == "after" and phases.count("decided") == 4  # entry stop + 3 passes
    # Each pass began from the state the row before it holds: its "before" snapshot is that row, confirmed.
    assert phases.count("before") == 0 and sum(h.get("confirmations", 0) for h in history) == 3
    assert port.duplicate_refusals == 0 and len(port.orders) == len({*port.orders})
    sli = m.slis.snapshot()
    assert sli["stop_move_success_rate"] == 1.0 and sli["take_profit_success_rate"] == 1.0


def test_add_on_with_a_same_direction_signal(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    cfg = config(ladder=[], locks=[])
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    r = m.manage("p1", view("105", atr=D(2), signal=1))
    assert [(a.kind, a.qty) for a in r.plan.actions] == [("ADD_ON", D(1)), ("STOP_MOVE", D(3))]
    r = m.manage("p1", view("110", atr=D(2), signal=1))
    assert [(a.kind, a.qty) for a in r.plan.actions] == [("ADD_ON", D("0.5")), ("STOP_MOVE", D("3.5"))]
    [stop] = port.live_stops()
    assert stop.qty == D("3.5")  # the stop covers the whole position after each add
    r = m.manage("p1", view("115", atr=D(2), signal=1))
    assert [a.kind for a in r.plan.actions] == []  # cap 2
    adds = m.state.r.hgetall("pos:adds:p1")
    assert adds["count"] == "2" and D(adds["qty"]) == D("1.5")
    assert [e["type"] for e in m.state.events(SYM)].count("ADD") == 2


def test_two_concurrent_manage_calls_exactly_one_runs(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    entered, release = threading.Event(), threading.Event()
    real_place = port.place

    def slow_place(intent):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return real_place(intent)

    port.place = slow_place  # type: ignore[method-assign]
    results: list[str] = []

    def call() -> None:
        try:
            m.manage("p1", view("107", atr=D(2)))
            results.append("ran")
        except LockBusy:
            results.append("busy")

    first = threading.Thread(target=call)
    first.start()
    assert entered.wait(10)  # the first call is inside its pass, holding lock:pos:p1
    second = threading.Thread(target=call)
    second.start()
    second.join(10)
    release.set()
    first.join(10)
    assert sorted(results) == ["busy", "ran"]
    assert len(port.live_stops()) == 1


def test_kill_9_of_redis_mid_run_rebuilds_from_the_store_without_a_duplicate(own_redis: RedisProcess,
                                                                             tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    audit: list[AuditEvent] = []
    m = build(own_redis.url, tmp_path / "pm.db", port, clock, audit=audit)
    m.cold_start()
    m.open_position("p1", SYM, "swap", 1, D(4), D(100), D(80), view("100", atr=D(2)))
    m.open_position("p2", "ETH/USDT:USDT", "swap", -1, D(10), D(50), D(100), view("50", atr=D(1)))
    marks = {SYM: D(100), "ETH/USDT:USDT": D(50)}

    def views(symbol: str) -> tuple[MarketView, bool]:
        return MarketView(mark=marks[symbol], ts_ms=0, atr=D(2) if symbol == SYM else D(1)), False

    # Redis dies right after the venue accepted the take-profit of p1 (mid-pass).
    real_place = port.place

    def dying_place(intent):  # type: ignore[no-untyped-def]
        ack = real_place(intent)
        if intent.intent_id == "p1:tp:0":
            own_redis.kill9()
        return ack

    port.place = dying_place  # type: ignore[method-assign]
    marks[SYM] = D(111)  # ROE 0.55 -> rung 0 and a stop move
    clock.advance(15_000)
    with pytest.raises(redis.RedisError):
        m.tick(views)
    port.place = real_place  # type: ignore[method-assign]
    clock.advance(15_000)
    assert m.tick(views) == []  # Redis still down: the tick does nothing
    assert not m.redis_ok
    own_redis.restart()  # back, empty (no persistence)
    clock.advance(15_000)
    m.tick(views)
    assert sorted(m.state.active_ids()) == ["p1", "p2"]
    assert any(e.code is AuditCode.PM_STATE_REBUILT for e in audit)
    p1 = m.state.load_position("p1")
    assert p1 is not None and p1.qty == D(2) and p1.ladder_fired == (0,)
    assert m.state.r.get("risk:budget:p1") is not None
    # Run on: more passes, the queue, a second rung.
    marks[SYM] = D(121)
    for _ in range(3):
        clock.advance(15_000)
        m.tick(views)
    assert port.duplicate_refusals == 0
    assert m.store.intents(("NEW", "QUEUED", "PARTIAL", "PLACED")) == []
    tp_orders = [o for o in port.orders.values() if o.intent.intent_id.startswith("p1:tp:")]
    assert sorted(o.intent.intent_id for o in tp_orders) == ["p1:tp:0", "p1:tp:1"]  # each rung once
    assert len(port.live_stops(SYM)) == 1 and len(port.live_stops("ETH/USDT:USDT")) == 1


def test_oms_down_queues_and_only_reduces(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    cfg = config(ladder=[{"roe": "0.5", "fraction": "0.5"}])
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    port.down = True
    r = m.manage("p1", view("111", atr=D(2), signal=1))
    assert "OMS_DOWN" in r.degraded
    assert all(a.reduce_only for a in r.plan.actions) and "ADD_ON" not in [a.kind for a in r.plan.actions]
    assert {o.status for o in r.outcomes} == {"QUEUED"}
    assert m.state.retry_len() == len(r.outcomes)
    port.down = False
    clock.advance(cfg.retry.queue_delay_ms)
    done = m.runner.run_due()
    assert {o.status for o in done} == {"DONE"}
    assert [s.trigger_price for s in port.live_stops()] == [r.plan.position.stop]


def test_market_data_down_guards_the_stop_on_the_last_mid(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    r = m.manage("p1", view("130", atr=D(2)), stale_market=True)  # a stale 130 moves nothing
    assert r.plan.actions == () and "MARKET_DATA_STALE" in r.degraded
    r = m.manage("p1", view("96"), stale_market=True)  # last mid under the stop: guard exit
    assert [a.kind for a in r.plan.actions] == ["EXIT"]


def test_config_fetch_failure_keeps_the_old_config_and_backs_off() -> None:
    good = config()
    calls: list[int] = []

    def fetch() -> PmConfig:
        calls.append(1)
        raise ConfigError("CONFIG_FETCH_FAILED", "unreachable")

    holder = ConfigHolder(good, fetch, backoff_ms=1_000)
    assert not holder.refresh(0) and holder.cfg is good
    assert not holder.refresh(500) and len(calls) == 1  # not due yet
    assert not holder.refresh(1_000) and len(calls) == 2
    assert holder.next_try_ms == 1_000 + 2_000  # doubled
    holder.fetch = lambda: config(manage_interval_s=20)
    assert holder.refresh(3_000) and holder.cfg.manage_interval_s == 20


def test_repeated_transfer_id_is_one_transfer(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    treasury = FakeTreasury(free_spot=D(1000), free_fut=D(200))
    m = build(redis_url, tmp_path / "pm.db", port, clock, treasury=treasury)
    first = m.treasury_tick("t-1")
    again = m.treasury_tick("t-1")
    assert isinstance(first, TransferRecord) and first.state is TransferState.EXECUTED
    assert first.amount == D(300)  # need = 500 - 200
    assert isinstance(again, TransferRecord) and again.state is TransferState.EXECUTED
    assert treasury.sent == ["t-1"]
    assert len(m.store.transfers()) == 1
    assert m.treasury_tick("t-2") == "TREASURY_NO_NEED"  # topped up


def test_concurrent_triggers_of_one_transfer_id_send_once(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    treasury = FakeTreasury(free_spot=D(1000), free_fut=D(200))
    m = build(redis_url, tmp_path / "pm.db", port, clock, treasury=treasury)
    barrier = threading.Barrier(6)
    out: list[object] = []

    def go() -> None:
        barrier.wait()
        try:
            out.append(m.treasury_tick("t-9"))
        except LockBusy:
            out.append("busy")

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert treasury.sent == ["t-9"]


def test_approval_mode_waits_then_executes_or_fails(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    treasury = FakeTreasury(free_spot=D(1000), free_fut=D(200))
    cfg = config(treasury={"mode": "approval"})
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg, treasury)
    pending = m.treasury_tick("t-1")
    assert isinstance(pending, TransferRecord) and pending.state is TransferState.PENDING and treasury.sent == []
    done = m.treasury_tick("t-1", approve=True)
    assert isinstance(done, TransferRecord) and done.state is TransferState.EXECUTED
    treasury.free_fut = D(0)
    treasury.fail = True
    m.treasury_tick("t-2")
    failed = m.treasury_tick("t-2", approve=True)
    assert isinstance(failed, TransferRecord) and failed.state is TransferState.FAILED
    assert failed.reason == "INSUFFICIENT_FUNDS"
    assert m.slis.snapshot()["treasury_transfer_count"] == 2


def test_spot_position_wac_and_guard_stop(redis_url: str, tmp_path: Path) -> None:
    from core.oms.account import HeldPosition
    from crypto.pm.spot import SpotBook, spot_buy

    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    book = spot_buy(spot_buy(SpotBook(HeldPosition("BTC/USDT")), D(1), D(100)), D(1), D(110))
    m.open_position("s1", "BTC/USDT", "spot", 1, book.qty, book.wac, book.qty * book.wac, view("110", atr=D(2)))
    pos = m.state.load_position("s1")
    assert pos is not None and pos.entry == D(105) and pos.stop == D(102)  # 105 - 1.5 x 2
    assert port.orders == {}  # spot: a guard stop, no venue order
    r = m.manage("s1", view("101"))
    assert [a.kind for a in r.plan.actions] == ["EXIT"]
    [sell] = port.orders.values()
    assert sell.intent.client_order_id == client_order_id_for("s1:exit") and sell.intent.qty == D(2)
