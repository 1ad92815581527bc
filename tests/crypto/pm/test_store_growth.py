"""The snapshot store grows with what happens, not with the clock: quiet passes confirm the stored state,
closed positions are pruned after their retention, and a replay still shows the whole life."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

from crypto.pm.cli import replay
from crypto.pm.store import SqliteSnapshotStore
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, build, config, view

DAY_MS = 86_400_000


def _size(db: Path, store: SqliteSnapshotStore) -> int:
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def test_quiet_passes_add_no_rows_and_replay_keeps_the_life(redis_url: str, tmp_path: Path, capsys) -> None:
    port, clock = FakePort(), ManualClock()
    db = tmp_path / "pm.db"
    m = build(redis_url, db, port, clock)
    for i in range(20):
        m.open_position(f"p{i}", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    m.manage("p0", view("100", atr=D(2)))  # settle every position's first decisions
    for i in range(20):
        m.manage(f"p{i}", view("100", atr=D(2)))
    rows, size = m.store.snapshot_rows(), _size(db, m.store)
    for _ in range(50):  # 50 quiet passes over 20 positions: 2,000 snapshots asked for
        clock.advance(15_000)
        for i in range(20):
            m.manage(f"p{i}", view("100", atr=D(2)))
    assert m.store.snapshot_rows() == rows
    assert _size(db, m.store) <= size + 64 * 1024  # pages rewritten in place, nothing appended per pass
    last = m.store.history("p3")[-1]
    assert last["confirmations"] >= 100 and last["confirmed_ts"] == clock()
    # Something happens: it is stored, and replay shows it after the quiet stretch.
    clock.advance(15_000)
    r = m.manage("p3", view("115", atr=D(2)))
    assert r.plan.actions
    assert m.store.snapshot_rows() > rows
    assert replay(db, "p3") == 0
    out = capsys.readouterr().out
    assert "more passes)" in out and out.index("more passes)") < out.rindex("decided")


def test_closed_positions_are_pruned_after_retention_and_open_ones_never(redis_url: str, tmp_path: Path,
                                                                         capsys) -> None:
    port, clock = FakePort(), ManualClock()
    db = tmp_path / "pm.db"
    m = build(redis_url, db, port, clock, cfg=config(closed_retention_days=2))
    for pos_id in ("old", "young", "open"):
        m.open_position(pos_id, SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
    m.manage("old", view("80", atr=D(2)))  # under the stop: exits
    assert "old" not in m.state.active_ids()
    clock.advance(DAY_MS)
    m.manage("young", view("80", atr=D(2)))
    assert m.state.active_ids() == ["open"]
    clock.advance(DAY_MS + 60_000)  # "old" closed 2 days and a minute ago, "young" 1 day ago
    assert m.prune_store() == 1
    assert m.store.history("old") == [] and m.store.history("young") and m.store.history("open")
    kept = [i["intent_id"] for i in m.store.intents()]
    assert kept and not [i for i in kept if i.startswith("old:")] and [i for i in kept if i.startswith("young:")]
    assert replay(db, "old") == 1
    assert "pruned" in capsys.readouterr().err
    clock.advance(30 * DAY_MS)  # an open position is kept however old its last snapshot
    assert m.prune_store() == 1
    assert m.store.history("open")


def test_prune_runs_in_bounded_batches(redis_url: str, tmp_path: Path) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, cfg=config(closed_retention_days=1, prune_batch=3))
    for i in range(7):
        m.open_position(f"c{i}", SYM, "swap", 1, D(2), D(100), D(40), view("100", atr=D(2)))
        m.manage(f"c{i}", view("80", atr=D(2)))
    clock.advance(2 * DAY_MS)
    assert [m.prune_store() for _ in range(4)] == [3, 3, 1, 0]


def test_a_store_written_before_the_retention_columns_still_replays(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:
        con.executescript(
            "CREATE TABLE positions_snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, pos_id TEXT NOT NULL, "
            "symbol TEXT NOT NULL, ts INTEGER NOT NULL, phase TEXT NOT NULL, doc TEXT NOT NULL);"
            "INSERT INTO positions_snapshots(pos_id, symbol, ts, phase, doc) VALUES "
            "('p1', 'BTC/USDT:USDT', 1, 'entry', '{\"qty\": \"1\"}');")
    assert SqliteSnapshotStore(db, read_only=True).history("p1") == [
        {"ts": 1, "phase": "entry", "doc": {"qty": "1"}}]
    store = SqliteSnapshotStore(db)  # a writer adds the columns, and the old row keeps its life
    store.put_snapshot("p1", "BTC/USDT:USDT", 2, "after", {"qty": "1"})
    assert store.history("p1") == [{"ts": 1, "phase": "entry", "doc": {"qty": "1"}, "confirmed_ts": 2,
                                    "confirmations": 1}]
