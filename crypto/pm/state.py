"""Live state in Redis: the position keys, risk reservations, events, the retry queue and locks.

Keys (``{pos_id}``/``{SYMBOL}`` filled in):

- ``pos:state:{pos_id}``     the position document (JSON, ``crypto.pm.codec``); ``pos:active`` the open ids
- ``pos:sl:level:{pos_id}``  the stop level the manager decided (string Decimal)
- ``pos:tp:ladder:{pos_id}`` the rungs already fired (JSON list of indexes)
- ``pos:adds:{pos_id}``      hash ``count``, ``qty`` (add-ons so far)
- ``risk:budget:{pos_id}``   the risk the position reserved (quote); ``risk:concurrency:{SYMBOL}`` a set of
  open position ids per symbol. Both are released (deleted / removed) when the position closes.
- ``pos:events:{SYMBOL}``    stream (XADD): ENTRY, EXIT, ADD, STOP_MOVE, TP_PARTIAL, STAGNATED, RISK_DOWNGRADE
- ``pos:retry:z``            ZSET intent id -> due time (ms); ``pos:retry:body`` hash intent id -> action JSON
- ``lock:pos:{pos_id}``, ``lock:treasury:{from}:{to}``: SET NX PX with a random token, released only by
  the holder (compare-and-delete in Lua): redis-py's ``Lock`` does exactly that.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, cast

import redis
from redis.lock import Lock

from crypto.pm.codec import action_doc, action_from, position_doc, position_from
from crypto.pm.decisions import Action, Event, ManagedPosition

ACTIVE = "pos:active"
RETRY_Z = "pos:retry:z"
RETRY_BODY = "pos:retry:body"
EVENTS_MAXLEN = 100_000


class StateCorrupt(ValueError):
    """A ``pos:state`` document that does not decode to a position. It was moved aside to
    ``pos:corrupt:{pos_id}`` (kept for a look, never read again): the caller rebuilds from the store."""

    code = "PM_STATE_INVALID"

    def __init__(self, pos_id: str, why: str) -> None:
        super().__init__(f"{pos_id}: {why}")
        self.pos_id = pos_id
        self.why = why


class LockBusy(RuntimeError):
    """Another caller holds the lock: this call did not run (HTTP 409)."""

    code = "LOCK_BUSY"


def key_state(pos_id: str) -> str:
    return f"pos:state:{pos_id}"


def key_sl(pos_id: str) -> str:
    return f"pos:sl:level:{pos_id}"


def key_ladder(pos_id: str) -> str:
    return f"pos:tp:ladder:{pos_id}"


def key_adds(pos_id: str) -> str:
    return f"pos:adds:{pos_id}"


def key_budget(pos_id: str) -> str:
    return f"risk:budget:{pos_id}"


def key_concurrency(symbol: str) -> str:
    return f"risk:concurrency:{symbol}"


def key_retry_index(pos_id: str) -> str:
    return f"pos:retry:idx:{pos_id}"


def key_events(symbol: str) -> str:
    return f"pos:events:{symbol}"


class Held:
    """Context manager of one held lock (a plain class: it never touches the body's exception, some of
    which are frozen dataclasses that ``contextlib`` cannot re-raise)."""

    def __init__(self, lk: Lock, name: str) -> None:
        self.lk = lk
        self.name = name

    def __enter__(self) -> None:
        if not self.lk.acquire(blocking=False):
            raise LockBusy(self.name)

    def __exit__(self, *exc: object) -> None:
        try:
            self.lk.release()
        except redis.exceptions.LockError:
            pass  # expired under us: the next holder's lock is not ours to delete
        except redis.RedisError:
            pass  # Redis went away mid-pass: the lock went with it (or expires by its TTL)


class RedisState:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    @classmethod
    def from_url(cls, url: str) -> RedisState:
        return cls(redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2))

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False

    # Positions.
    def save_position(self, pos: ManagedPosition) -> None:
        """Write the document and the per-aspect keys in one MULTI, so readers never see half a position."""
        p = self.r.pipeline(transaction=True)
        self._position_ops(p, pos)
        p.execute()

    def restore_positions(self, positions: list[ManagedPosition]) -> list[str]:
        """Cold start: write back every open position Redis does not hold, its risk reserved again (its
        margin), in two round trips whatever their number. Returns the pos_ids written."""
        check = self.r.pipeline(transaction=False)
        for pos in positions:
            check.exists(key_state(pos.pos_id))
        present = check.execute()
        write = self.r.pipeline(transaction=True)
        written = []
        for pos, here in zip(positions, present, strict=True):
            if here or pos.closed:
                continue
            write.set(key_budget(pos.pos_id), str(pos.margin))
            write.sadd(key_concurrency(pos.symbol), pos.pos_id)
            self._position_ops(write, pos)
            written.append(pos.pos_id)
        if written:
            write.execute()
        return written

    @staticmethod
    def _position_ops(p: Any, pos: ManagedPosition) -> None:
        p.set(key_state(pos.pos_id), json.dumps(position_doc(pos), sort_keys=True))
        if pos.stop is not None:
            p.set(key_sl(pos.pos_id), str(pos.stop))
        p.set(key_ladder(pos.pos_id), json.dumps(list(pos.ladder_fired)))
        p.hset(key_adds(pos.pos_id), mapping={"count": pos.add_count, "qty": str(pos.adds_qty)})
        if pos.closed:
            p.srem(ACTIVE, pos.pos_id)
            p.delete(key_budget(pos.pos_id))
            p.srem(key_concurrency(pos.symbol), pos.pos_id)
        else:
            p.sadd(ACTIVE, pos.pos_id)

    def load_position(self, pos_id: str) -> ManagedPosition | None:
        """The position document, None when absent; ``StateCorrupt`` (once: the key is moved aside) when it
        does not decode."""
        raw = self.r.get(key_state(pos_id))
        if raw is None:
            return None
        try:
            return position_from(json.loads(str(raw)))
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            try:
                self.r.rename(key_state(pos_id), f"pos:corrupt:{pos_id}")
            except redis.ResponseError:
                pass  # already moved by another reader
            raise StateCorrupt(pos_id, f"{type(exc).__name__}: {str(exc)[:120]}") from None

    def active_ids(self) -> list[str]:
        members: set[str] = cast(Any, self.r).smembers(ACTIVE)
        return sorted(str(x) for x in members)

    def stop_level(self, pos_id: str) -> Decimal | None:
        raw = self.r.get(key_sl(pos_id))
        return None if raw is None else Decimal(str(raw))

    # Risk reservations.
    def reserve_risk(self, pos_id: str, symbol: str, budget: Decimal) -> None:
        p = self.r.pipeline(transaction=True)
        p.set(key_budget(pos_id), str(budget))
        p.sadd(key_concurrency(symbol), pos_id)
        p.execute()

    def concurrency(self, symbol: str) -> int:
        return int(cast(Any, self.r).scard(key_concurrency(symbol)))

    # Events.
    def emit(self, event: Event) -> str:
        fields: dict[str, Any] = {"type": event.kind, "pos_id": event.pos_id, "ts": event.ts_ms,
                                  "data": json.dumps(event.data, sort_keys=True)}
        return str(cast(Any, self.r).xadd(key_events(event.symbol), fields, maxlen=EVENTS_MAXLEN, approximate=True))

    def events(self, symbol: str) -> list[dict[str, str]]:
        entries: list[tuple[str, dict[str, str]]] = cast(Any, self.r).xrange(key_events(symbol))
        return [dict(fields) for _, fields in entries]

    # Retry queue.
    def enqueue_retry(self, action: Action, due_ms: int, attempt: int) -> None:
        body = action_doc(action) | {"_attempt": attempt}
        p = self.r.pipeline(transaction=True)
        p.hset(RETRY_BODY, action.intent_id, json.dumps(body, sort_keys=True))
        p.zadd(RETRY_Z, {action.intent_id: due_ms})
        p.sadd(key_retry_index(action.pos_id), action.intent_id)
        p.execute()

    def queued_for(self, pos_id: str) -> list[str]:
        """The queued intent ids of one position (its own index: a stop move that supersedes queued ones
        does not read the whole queue, which a 429 storm over many positions makes long)."""
        members: set[str] = cast(Any, self.r).smembers(key_retry_index(pos_id))
        return sorted(str(m) for m in members)

    def due_retries(self, now_ms: int, limit: int = 100) -> list[str]:
        due: list[str] = cast(Any, self.r).zrangebyscore(RETRY_Z, "-inf", now_ms, start=0, num=limit)
        return [str(x) for x in due]

    def claim_retry(self, intent_id: str) -> tuple[Action, int] | None:
        """Take one due entry off the queue; None when another worker took it first (ZREM is atomic)."""
        if not self.r.zrem(RETRY_Z, intent_id):
            return None
        raw = self.r.hget(RETRY_BODY, intent_id)
        self.r.hdel(RETRY_BODY, intent_id)
        if raw is None:
            return None
        try:
            doc = json.loads(str(raw))
            attempt = int(doc.pop("_attempt", 0))
            action = action_from(doc)
            self.r.srem(key_retry_index(action.pos_id), intent_id)
            return action, attempt
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
            self.r.srem(key_retry_index(intent_id.rsplit(":", 2)[0]), intent_id)  # "{pos_id}:kind[:n]", best effort
            # Claimed (ours now) but unreadable: the caller resumes the intent from the store's journal.
            raise StateCorrupt(intent_id, f"retry body: {type(exc).__name__}") from None

    def drop_retry(self, intent_id: str) -> Action | None:
        """Remove a queued entry (a newer stop move supersedes an unfinished one)."""
        try:
            claimed = self.claim_retry(intent_id)
        except StateCorrupt:
            return None
        return None if claimed is None else claimed[0]

    def retry_queue(self) -> list[tuple[str, int]]:
        rows: list[tuple[str, float]] = cast(Any, self.r).zrange(RETRY_Z, 0, -1, withscores=True)
        return [(str(m), int(s)) for m, s in rows]

    def retry_len(self) -> int:
        return int(cast(Any, self.r).zcard(RETRY_Z))

    # Locks.
    def lock(self, name: str, ttl_ms: int) -> Lock:
        return Lock(self.r, name, timeout=ttl_ms / 1000, blocking=False)

    def hold(self, name: str, ttl_ms: int) -> Held:
        """Run the body only if the lock is free (SET NX PX); otherwise raise ``LockBusy``. The release is a
        compare-and-delete: a lock that expired and was taken by someone else is left alone."""
        return Held(self.lock(name, ttl_ms), name)

    def flush_positions(self) -> None:
        """Forget every ``pos:*`` key (tests and the cold-start check use it)."""
        for key in self.r.scan_iter("pos:*"):
            self.r.delete(key)
