"""The snapshot store: position snapshots, the order-intent journal and treasury transfers.

The design keeps ``positions_snapshots`` and ``treasury_transfers`` in ArangoDB, which cannot be installed
here; the manager talks to the small ``SnapshotStore`` Protocol and ``SqliteSnapshotStore`` implements it
with JSON documents in SQLite (WAL, ``synchronous=FULL``: a snapshot or a journaled intent is on disk
before the order it announces is sent). Indexes are the design's: symbol; ts; symbol+ts; transfer_id
(unique: a repeated transfer id is one record). ``order_intents`` is the write-ahead journal of the
manager's actions, keyed by intent id (= the client order id root), so a restart that lost Redis knows
what was already sent.

Growth follows what happens, not the clock: a position snapshot whose document equals the position's last
stored one (a quiet governance pass: nothing decided, nothing changed) is not stored again; the last row's
``confirmed_ts`` and ``confirmations`` record that the state was seen again, so a replay still shows when it
held. Closed positions are pruned (``prune_closed``) once they are older than the configured retention.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pos_id TEXT NOT NULL, symbol TEXT NOT NULL, ts INTEGER NOT NULL, phase TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snap_symbol ON positions_snapshots(symbol);
CREATE INDEX IF NOT EXISTS snap_ts ON positions_snapshots(ts);
CREATE INDEX IF NOT EXISTS snap_symbol_ts ON positions_snapshots(symbol, ts);
CREATE INDEX IF NOT EXISTS snap_pos ON positions_snapshots(pos_id, id);
CREATE TABLE IF NOT EXISTS treasury_transfers (
    transfer_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transfer_ts ON treasury_transfers(ts);
CREATE TABLE IF NOT EXISTS order_intents (
    intent_id TEXT PRIMARY KEY, pos_id TEXT NOT NULL, symbol TEXT NOT NULL, ts INTEGER NOT NULL,
    state TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS intent_state ON order_intents(state);
CREATE INDEX IF NOT EXISTS intent_pos ON order_intents(pos_id);
CREATE TABLE IF NOT EXISTS pm_meta (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, doc TEXT NOT NULL);
"""
# Added after the first stores were written: applied to an existing file on open.
COLUMNS_ADDED = (("positions_snapshots", "confirmed_ts", "INTEGER"),
                 ("positions_snapshots", "confirmations", "INTEGER NOT NULL DEFAULT 0"))


class SnapshotStore(Protocol):
    def put_snapshot(self, pos_id: str, symbol: str, ts_ms: int, phase: str, doc: dict[str, Any]) -> None: ...
    def history(self, pos_id: str) -> list[dict[str, Any]]: ...
    def latest_positions(self) -> dict[str, dict[str, Any]]: ...
    def latest(self, pos_id: str) -> dict[str, Any] | None: ...
    def put_meta(self, key: str, ts_ms: int, doc: dict[str, Any]) -> None: ...
    def meta(self, key: str) -> dict[str, Any] | None: ...
    def journal_intent(self, intent_id: str, pos_id: str, symbol: str, ts_ms: int, state: str,
                       doc: dict[str, Any]) -> bool: ...
    def set_intent_state(self, intent_id: str, state: str, ts_ms: int, doc: dict[str, Any] | None = None) -> None: ...
    def intent(self, intent_id: str) -> dict[str, Any] | None: ...
    def intents(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]: ...
    def create_transfer(self, transfer_id: str, ts_ms: int, state: str, doc: dict[str, Any]) -> bool: ...
    def update_transfer(self, transfer_id: str, ts_ms: int, state: str, doc: dict[str, Any]) -> None: ...
    def transfer(self, transfer_id: str) -> dict[str, Any] | None: ...
    def transfers(self) -> list[dict[str, Any]]: ...
    def prune_closed(self, older_than_ms: int, limit: int = 100) -> int: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


class SqliteSnapshotStore:
    """``SnapshotStore`` on one SQLite file; thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """``read_only`` (``pm replay``): opened ``mode=ro``, no schema, nothing written: a replay while the
        service runs (WAL: readers do not block the writer) or of a copy never changes the store."""
        self.path = str(path)
        self._lock = threading.Lock()
        if read_only:
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
            self._confirmations = self._has_column("positions_snapshots", "confirmations")
            return
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        for table, column, kind in COLUMNS_ADDED:
            if not self._has_column(table, column):
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._confirmations = True

    def _has_column(self, table: str, column: str) -> bool:
        return column in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # Positions.
    def put_snapshot(self, pos_id: str, symbol: str, ts_ms: int, phase: str, doc: dict[str, Any]) -> None:
        text = json.dumps(doc, sort_keys=True)
        with self._tx() as db:
            last = db.execute("SELECT id, doc FROM positions_snapshots WHERE pos_id=? ORDER BY id DESC LIMIT 1",
                              (pos_id,)).fetchone()
            if last is not None and last[1] == text:
                db.execute("UPDATE positions_snapshots SET confirmed_ts=?, confirmations=confirmations+1 WHERE id=?",
                           (ts_ms, last[0]))
                return
            db.execute("INSERT INTO positions_snapshots(pos_id, symbol, ts, phase, doc) VALUES (?,?,?,?,?)",
                       (pos_id, symbol, ts_ms, phase, text))

    def history(self, pos_id: str) -> list[dict[str, Any]]:
        """Every stored snapshot of one position, oldest first: ``{ts, phase, doc}``, plus ``confirmed_ts`` and
        ``confirmations`` where later passes saw the same state again."""
        held = "confirmed_ts, confirmations" if self._confirmations else "NULL, 0"  # a pre-retention file, read only
        rows = self._rows(f"SELECT ts, phase, doc, {held} FROM positions_snapshots WHERE pos_id=? ORDER BY id",
                          (pos_id,))
        out: list[dict[str, Any]] = []
        for ts, phase, doc, confirmed_ts, confirmations in rows:
            row: dict[str, Any] = {"ts": ts, "phase": phase, "doc": json.loads(doc)}
            if confirmations:
                row["confirmed_ts"], row["confirmations"] = confirmed_ts, confirmations
            out.append(row)
        return out

    def snapshot_rows(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM positions_snapshots")[0][0])

    def prune_closed(self, older_than_ms: int, limit: int = 100) -> int:
        """Delete the whole record (snapshots and finished intents) of at most ``limit`` closed positions whose
        last snapshot is older than ``older_than_ms``; returns how many positions went. Open positions and
        unfinished intents are never touched."""
        with self._tx() as db:
            candidates = db.execute(
                "SELECT s.pos_id, s.doc FROM positions_snapshots s JOIN "
                "(SELECT pos_id, MAX(id) AS m FROM positions_snapshots GROUP BY pos_id) l ON s.id = l.m "
                "WHERE COALESCE(s.confirmed_ts, s.ts) < ?", (older_than_ms,)).fetchall()
            gone = 0
            for pos_id, doc in candidates:
                if gone >= limit:
                    break
                if json.loads(doc).get("closed") is not True:
                    continue
                unfinished = db.execute("SELECT COUNT(*) FROM order_intents WHERE pos_id=? AND state NOT IN "
                                        "('DONE', 'FAILED')", (pos_id,)).fetchone()[0]
                if unfinished:
                    continue
                db.execute("DELETE FROM positions_snapshots WHERE pos_id=?", (pos_id,))
                db.execute("DELETE FROM order_intents WHERE pos_id=?", (pos_id,))
                gone += 1
        return gone

    def latest_positions(self) -> dict[str, dict[str, Any]]:
        """The last snapshot document of every position (closed ones included: the caller filters)."""
        rows = self._rows(
            "SELECT s.pos_id, s.doc FROM positions_snapshots s JOIN "
            "(SELECT pos_id, MAX(id) AS m FROM positions_snapshots GROUP BY pos_id) l ON s.id = l.m")
        return {pos_id: json.loads(doc) for pos_id, doc in rows}

    def latest(self, pos_id: str) -> dict[str, Any] | None:
        """The last snapshot document of one position (the ``snap_pos`` index: one row read)."""
        rows = self._rows("SELECT doc FROM positions_snapshots WHERE pos_id=? ORDER BY id DESC LIMIT 1", (pos_id,))
        return json.loads(rows[0][0]) if rows else None

    # The manager's own small documents (the SLIs), one per key, replaced on write.
    def put_meta(self, key: str, ts_ms: int, doc: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO pm_meta(key, ts, doc) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET "
                       "ts=excluded.ts, doc=excluded.doc", (key, ts_ms, json.dumps(doc, sort_keys=True)))

    def meta(self, key: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT doc FROM pm_meta WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def by_symbol(self, symbol: str, since_ms: int = 0) -> list[dict[str, Any]]:
        rows = self._rows("SELECT ts, phase, doc FROM positions_snapshots WHERE symbol=? AND ts>=? ORDER BY ts, id",
                          (symbol, since_ms))
        return [{"ts": ts, "phase": phase, "doc": json.loads(doc)} for ts, phase, doc in rows]

    # Intents (the write-ahead journal of actions).
    def journal_intent(self, intent_id: str, pos_id: str, symbol: str, ts_ms: int, state: str,
                       doc: dict[str, Any]) -> bool:
        """Record an intent before its first send; False when the id is already journaled (then the caller
        resumes the existing intent instead of making a new order)."""
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO order_intents(intent_id, pos_id, symbol, ts, state, doc) "
                             "VALUES (?,?,?,?,?,?)", (intent_id, pos_id, symbol, ts_ms, state,
                                                      json.dumps(doc, sort_keys=True)))
            return cur.rowcount == 1

    def set_intent_state(self, intent_id: str, state: str, ts_ms: int, doc: dict[str, Any] | None = None) -> None:
        with self._tx() as db:
            if doc is None:
                db.execute("UPDATE order_intents SET state=?, ts=? WHERE intent_id=?", (state, ts_ms, intent_id))
            else:
                db.execute("UPDATE order_intents SET state=?, ts=?, doc=? WHERE intent_id=?",
                           (state, ts_ms, json.dumps(doc, sort_keys=True), intent_id))

    def intent(self, intent_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT state, ts, doc FROM order_intents WHERE intent_id=?", (intent_id,))
        if not rows:
            return None
        state, ts, doc = rows[0]
        return {"intent_id": intent_id, "state": state, "ts": ts, "doc": json.loads(doc)}

    def intents(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._rows(f"SELECT intent_id, state, ts, doc FROM order_intents WHERE state IN ({marks}) "
                              "ORDER BY ts, intent_id", tuple(states))
        else:
            rows = self._rows("SELECT intent_id, state, ts, doc FROM order_intents ORDER BY ts, intent_id")
        return [{"intent_id": i, "state": s, "ts": t, "doc": json.loads(d)} for i, s, t, d in rows]

    # Treasury.
    def create_transfer(self, transfer_id: str, ts_ms: int, state: str, doc: dict[str, Any]) -> bool:
        """Insert a transfer; False (and nothing written) when the id exists: one record per transfer_id."""
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO treasury_transfers(transfer_id, ts, state, doc) VALUES (?,?,?,?)",
                             (transfer_id, ts_ms, state, json.dumps(doc, sort_keys=True)))
            return cur.rowcount == 1

    def update_transfer(self, transfer_id: str, ts_ms: int, state: str, doc: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE treasury_transfers SET ts=?, state=?, doc=? WHERE transfer_id=?",
                       (ts_ms, state, json.dumps(doc, sort_keys=True), transfer_id))

    def transfer(self, transfer_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT doc FROM treasury_transfers WHERE transfer_id=?", (transfer_id,))
        return json.loads(rows[0][0]) if rows else None

    def transfers(self) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self._rows("SELECT doc FROM treasury_transfers ORDER BY ts, transfer_id")]

    def ping(self) -> bool:
        try:
            self._rows("SELECT 1")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
