"""Redis keys, locks, events and the retry queue on a real redis-server; the SQLite snapshot store."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.pm.codec import position_doc, position_from
from crypto.pm.decisions import Action, Event, ManagedPosition
from crypto.pm.state import LockBusy, RedisState
from crypto.pm.store import SqliteSnapshotStore


def pos(**kw: object) -> ManagedPosition:
    base: dict[str, object] = dict(pos_id="p1", symbol="BTC/USDT:USDT", kind="swap", direction=1, qty=D(1),
                                   entry=D(100), margin=D(20), q0=D(1), opened_ms=0, stop=D(97),
                                   ladder_fired=(0,), add_count=1, adds_qty=D("0.5"))
    base.update(kw)
    return ManagedPosition(**base)  # type: ignore[arg-type]


def test_position_keys_are_written_and_released_on_close(redis_url: str) -> None:
    st = RedisState.from_url(redis_url)
    st.reserve_risk("p1", "BTC/USDT:USDT", D(25))
    st.save_position(pos())
    r = st.r
    assert r.get("pos:sl:level:p1") == "97"
    assert r.get("pos:tp:ladder:p1") == "[0]"
    assert r.hgetall("pos:adds:p1") == {"count": "1", "qty": "0.5"}
    assert r.get("risk:budget:p1") == "25" and st.concurrency("BTC/USDT:USDT") == 1
    assert st.active_ids() == ["p1"] and st.load_position("p1") == pos()
    st.save_position(pos(closed=True, qty=D(0)))
    assert r.get("risk:budget:p1") is None and st.concurrency("BTC/USDT:USDT") == 0
    assert st.active_ids() == []


def test_events_are_a_stream_per_symbol(redis_url: str) -> None:
    st = RedisState.from_url(redis_url)
    st.emit(Event("ENTRY", "p1", "BTC/USDT:USDT", 5, {"qty": "1"}))
    st.emit(Event("STOP_MOVE", "p1", "BTC/USDT:USDT", 6, {"to": "97"}))
    assert [e["type"] for e in st.events("BTC/USDT:USDT")] == ["ENTRY", "STOP_MOVE"]
    assert st.r.type("pos:events:BTC/USDT:USDT") == "stream"


def test_lock_is_exclusive_and_released_only_by_its_holder(redis_url: str) -> None:
    st = RedisState.from_url(redis_url)
    with st.hold("lock:pos:p1", 10_000):
        assert st.r.pttl("lock:pos:p1") > 0  # SET NX PX: it expires on its own
        with pytest.raises(LockBusy), st.hold("lock:pos:p1", 10_000):
            pass
    assert st.r.get("lock:pos:p1") is None
    # An expired lock taken over by another holder is not deleted by the first one's release.
    first = st.lock("lock:treasury:funding:trading", 50)
    assert first.acquire(blocking=False)
    st.r.delete("lock:treasury:funding:trading")  # as if it expired
    second = st.lock("lock:treasury:funding:trading", 10_000)
    assert second.acquire(blocking=False)
    with pytest.raises(Exception):  # noqa: B017 - redis-py's LockNotOwnedError
        first.release()
    assert st.r.get("lock:treasury:funding:trading") is not None


def test_only_one_of_many_threads_gets_the_lock(redis_url: str) -> None:
    st = RedisState.from_url(redis_url)
    barrier = threading.Barrier(8)
    got: list[int] = []
    busy: list[int] = []
    all_tried = threading.Event()
    mutex = threading.Lock()

    def tried() -> None:
        if len(got) + len(busy) == 8:
            all_tried.set()

    def worker(i: int) -> None:
        barrier.wait()
        try:
            with st.hold("lock:pos:p9", 10_000):
                with mutex:
                    got.append(i)
                    tried()
                all_tried.wait(10)  # hold until every other thread has tried
        except LockBusy:
            with mutex:
                busy.append(i)
                tried()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(got) == 1 and len(busy) == 7


def test_retry_queue_orders_by_due_time_and_claims_once(redis_url: str) -> None:
    st = RedisState.from_url(redis_url)
    a = Action("TP_PARTIAL", "p1:tp:0", "p1", "BTC/USDT:USDT", D("0.3"))
    b = Action("STOP_MOVE", "p1:sl:2", "p1", "BTC/USDT:USDT", D(1), stop=D(99), cancel_coids=("p1:sl:1",))
    st.enqueue_retry(a, 2_000, 1)
    st.enqueue_retry(b, 1_000, 0)
    assert st.due_retries(999) == []
    assert st.due_retries(2_000) == ["p1:sl:2", "p1:tp:0"]
    assert st.claim_retry("p1:sl:2") == (b, 0)
    assert st.claim_retry("p1:sl:2") is None
    assert st.r.type("pos:retry:z") == "zset"


def test_store_history_latest_transfers_and_indexes(tmp_path: Path) -> None:
    store = SqliteSnapshotStore(tmp_path / "s.db")
    store.put_snapshot("p1", "BTC/USDT:USDT", 1, "before", position_doc(pos()))
    store.put_snapshot("p1", "BTC/USDT:USDT", 2, "after", position_doc(pos(stop=D(110))))
    store.put_snapshot("p2", "ETH/USDT:USDT", 3, "after", position_doc(pos(pos_id="p2", symbol="ETH/USDT:USDT")))
    assert [h["phase"] for h in store.history("p1")] == ["before", "after"]
    assert position_from(store.latest_positions()["p1"]).stop == D(110)
    assert [h["ts"] for h in store.by_symbol("ETH/USDT:USDT")] == [3]
    assert store.create_transfer("t1", 1, "PENDING", {"transfer_id": "t1"})
    assert not store.create_transfer("t1", 2, "PENDING", {"transfer_id": "t1", "again": True})
    assert store.transfers() == [{"transfer_id": "t1"}]
    assert store.journal_intent("i1", "p1", "BTC/USDT:USDT", 1, "NEW", {"a": 1})
    assert not store.journal_intent("i1", "p1", "BTC/USDT:USDT", 2, "NEW", {"a": 2})
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"snap_symbol", "snap_ts", "snap_symbol_ts"} <= names
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE tbl_name='treasury_transfers' AND type='index' "
                      "AND name LIKE 'sqlite_autoindex%'").fetchone()[0] == 1  # transfer_id unique index
