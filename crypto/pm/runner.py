"""Carries the manager's actions out through the execution port: journal, send, retry, queue.

For every action:

1. The intent is journaled in the snapshot store (``order_intents``) before anything is sent. A journaled
   intent that comes back (a retry from ``pos:retry:z``, a restart) is *resumed*: its order is looked up by
   client order id first, and only sent when the venue does not know it. A duplicate-id refusal is read as
   "already there".
2. STOP_MOVE places the new reduce-only stop **first** and cancels the old one(s) only after the new one is
   acknowledged. The design's cancel-then-place leaves the position without any stop between the two calls
   (and for good if the place then fails); place-then-cancel at worst leaves two reduce-only stops for a
   moment, both on the right side, and the venue caps what reduce-only orders can close.
3. A 5xx or 429 (``VenueReason.retryable``) is retried ``attempts`` times with a fixed backoff plus a
   jitter drawn from the injected RNG. Still failing: an ERROR alert, and the unfinished part (the place,
   or only the cancel after a placed stop: "partial success") goes to the retry queue, due
   ``queue_delay_ms`` later (doubling per round, capped). ``run_due`` runs what is due.
4. A refusal no retry can fix (reduce-only rejected, invalid order) ends the intent FAILED with an ERROR
   alert; it is never queued.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

import redis

from core.events import AuditCode, AuditEvent, Severity
from core.oms.reasons import VenueReason
from crypto.pm.codec import action_doc, action_from
from crypto.pm.config import RetryConfig
from crypto.pm.decisions import Action
from crypto.pm.port import ExecutionPort, OrderAck, OrderIntent, client_order_id_for
from crypto.pm.sli import Slis
from crypto.pm.state import RedisState, StateCorrupt
from crypto.pm.store import SnapshotStore
from crypto.venue.types import VenueError

Status = Literal["DONE", "QUEUED", "PARTIAL", "FAILED"]
OPEN_STATES = ("NEW", "QUEUED", "PARTIAL", "PLACED")
DEAD_STATUSES = ("rejected", "canceled", "expired")  # an order in one of these is not working at the venue


@dataclass(frozen=True)
class Outcome:
    action: Action
    status: Status
    client_order_id: str
    ack: OrderAck | None = None
    reason: str = ""

    def order_doc(self) -> dict[str, Any]:
        a = self.action
        return {
            "intent_id": a.intent_id, "client_order_id": self.client_order_id, "kind": a.kind,
            "symbol": a.symbol, "side": a.side, "qty": str(a.qty),
            "type": "stop_market" if a.kind == "STOP_MOVE" else "market",
            "trigger_price": None if a.stop is None else str(a.stop), "reduce_only": a.reduce_only,
            "cancel_client_order_ids": [client_order_id_for(c) for c in a.cancel_coids],
            "status": self.status, "venue_order_id": None if self.ack is None else self.ack.venue_order_id,
            "reason": self.reason,
        }


def intent_of(action: Action) -> OrderIntent:
    return OrderIntent(
        intent_id=action.intent_id, client_order_id=client_order_id_for(action.intent_id), symbol=action.symbol,
        side=action.side, qty=action.qty, type="stop_market" if action.kind == "STOP_MOVE" else "market",
        trigger_price=action.stop, reduce_only=action.reduce_only)


class _StepFailed(Exception):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class ActionRunner:
    def __init__(self, port: ExecutionPort, store: SnapshotStore, state: RedisState | None, retry: RetryConfig,
                 *, clock_ms: Callable[[], int], rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep, slis: Slis | None = None,
                 audit: Callable[[AuditEvent], None] | None = None,
                 perf_ms: Callable[[], float] = lambda: time.perf_counter() * 1000) -> None:
        self.port = port
        self.store = store
        self.state = state
        self.retry = retry
        self.clock_ms = clock_ms
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.slis = slis or Slis()
        self.audit = audit or (lambda _e: None)
        self.perf_ms = perf_ms

    # -- one action ---------------------------------------------------------------------------------------
    def run(self, action: Action, round_: int = 0) -> Outcome:
        coid = client_order_id_for(action.intent_id)
        now = self.clock_ms()
        fresh = self.store.journal_intent(action.intent_id, action.pos_id, action.symbol, now, "NEW",
                                          action_doc(action) | {"placed": False, "cancelled": []})
        record = self.store.intent(action.intent_id)
        doc = record["doc"] if record else {}
        if record and record["state"] == "DONE":
            return Outcome(action, "DONE", coid, reason="JOURNALED")
        if record and record["state"] == "FAILED":
            return Outcome(action, "FAILED", coid, reason="JOURNALED")
        started = self.perf_ms()
        ack: OrderAck | None = None
        try:
            if not doc.get("placed"):
                # Every send after the first (a retry, a resumed intent) looks the order up first: a market
                # order that filled is no longer "live", so the venue's duplicate-id check would not stop it.
                ack = self._with_retries(lambda attempt: self._place(action, coid, resumed=not fresh or attempt > 0))
                if action.kind == "STOP_MOVE" and ack.status in DEAD_STATUSES:
                    # Taken, then answered in a final state (rejected, cancelled, expired): the new stop is
                    # not live, so the old one must stay. Counting it DONE would cancel the only live stop.
                    raise _StepFailed(f"STOP_NOT_LIVE_{ack.status.upper()}", retryable=False)
                doc["placed"] = True
                doc["venue_order_id"] = ack.venue_order_id
                self.store.set_intent_state(action.intent_id, "PLACED", self.clock_ms(), doc)
                self.slis.order_latency(self.perf_ms() - started)
        except _StepFailed as exc:
            return self._unfinished(action, coid, doc, round_, exc, partial=False)
        try:
            for old in action.cancel_coids:
                if old in doc.get("cancelled", []):
                    continue
                self._with_retries(lambda _attempt, o=old: self._cancel(action.symbol, client_order_id_for(o)))  # type: ignore[misc]
                doc.setdefault("cancelled", []).append(old)
        except _StepFailed as exc:
            return self._unfinished(action, coid, doc, round_, exc, partial=True)
        self.store.set_intent_state(action.intent_id, "DONE", self.clock_ms(), doc)
        return Outcome(action, "DONE", coid, ack)

    def _lookup(self, symbol: str, coid: str) -> OrderAck | None:
        """Look an order up by client id; a failed lookup is a failed step (never a blind resend)."""
        try:
            return self.port.lookup(symbol, coid)
        except VenueError as exc:
            raise _StepFailed(exc.reason.value, exc.reason.retryable) from exc

    def _place(self, action: Action, coid: str, *, resumed: bool) -> OrderAck:
        if resumed:  # may have reached the venue before: look it up before sending again
            found = self._lookup(action.symbol, coid)
            if found is not None:
                return found
        try:
            return self.port.place(intent_of(action))
        except VenueError as exc:
            if exc.reason in (VenueReason.DUPLICATE_CLIENT_ID, VenueReason.UNKNOWN_OUTCOME):
                found = self._lookup(action.symbol, coid)
                if found is not None:
                    return found
                if exc.reason is VenueReason.DUPLICATE_CLIENT_ID:
                    raise _StepFailed(exc.reason.value, retryable=True) from exc
            raise _StepFailed(exc.reason.value, exc.reason.retryable) from exc

    def _cancel(self, symbol: str, coid: str) -> None:
        try:
            self.port.cancel(symbol, coid)
        except VenueError as exc:
            if exc.reason is VenueReason.ORDER_NOT_FOUND:
                return
            raise _StepFailed(exc.reason.value, exc.reason.retryable) from exc

    def _with_retries(self, step: Callable[[int], Any]) -> Any:
        last: _StepFailed | None = None
        for attempt in range(self.retry.attempts):
            try:
                return step(attempt)
            except _StepFailed as exc:
                last = exc
                if not exc.retryable:
                    raise
                if attempt + 1 < self.retry.attempts:
                    jitter = self.rng.uniform(0, self.retry.jitter_ms)
                    self.sleep((self.retry.backoff_ms + jitter) / 1000)
        assert last is not None
        raise last

    def _unfinished(self, action: Action, coid: str, doc: dict[str, Any], round_: int, exc: _StepFailed,
                    *, partial: bool) -> Outcome:
        now = self.clock_ms()
        if not exc.retryable:
            self.store.set_intent_state(action.intent_id, "FAILED", now, doc | {"reason": exc.reason})
            self._alert(AuditCode.PM_ACTION_FAILED, action, exc.reason, round_)
            return Outcome(action, "FAILED", coid, reason=exc.reason)
        delay = min(self.retry.queue_delay_ms * (2**round_), self.retry.queue_max_delay_ms)
        state: Status = "PARTIAL" if partial else "QUEUED"
        self.store.set_intent_state(action.intent_id, state, now, doc | {"reason": exc.reason})
        if self.state is not None:
            try:
                self.state.enqueue_retry(action, now + delay, round_ + 1)
            except redis.RedisError:
                pass  # the store journal still says QUEUED: cold start re-queues it
        self._alert(AuditCode.PM_ACTION_PARTIAL if partial else AuditCode.PM_ACTION_QUEUED, action, exc.reason,
                    round_)
        return Outcome(action, state, coid, reason=exc.reason)

    def _alert(self, code: AuditCode, action: Action, reason: str, round_: int) -> None:
        self.audit(AuditEvent(
            ts=datetime.fromtimestamp(self.clock_ms() / 1000, tz=timezone.utc), code=code, severity=Severity.ERROR,
            cause=reason, symbol=action.symbol,
            data={"intent_id": action.intent_id, "kind": action.kind, "pos_id": action.pos_id, "round": round_}))

    def supersede_queued(self, action: Action) -> Action:
        """Before a new stop move: drop the position's unfinished stop moves from the queue (journal state
        SUPERSEDED) and cancel whatever they may have placed, so a late retry never revives an old stop."""
        if action.kind != "STOP_MOVE" or self.state is None:
            return action
        prefix = f"{action.pos_id}:sl:"
        dropped: list[Action] = []
        for member in self.state.queued_for(action.pos_id):
            if member.startswith(prefix) and member != action.intent_id:
                old = self.state.drop_retry(member)
                if old is not None:
                    dropped.append(old)
                    self.store.set_intent_state(member, "SUPERSEDED", self.clock_ms())
        return superseding(action, dropped) if dropped else action

    # -- the retry queue ----------------------------------------------------------------------------------
    def run_due(self, now_ms: int | None = None) -> list[Outcome]:
        """Run every queued action whose due time has come (each claimed atomically, so two workers never
        run the same one)."""
        if self.state is None:
            return []
        now = self.clock_ms() if now_ms is None else now_ms
        out = []
        for intent_id in self.state.due_retries(now):
            try:
                claimed = self.state.claim_retry(intent_id)
            except StateCorrupt:
                claimed = self._from_journal(intent_id)  # taken by us, but its body was unreadable
            if claimed is None:
                continue
            action, round_ = claimed
            out.append(self.run(action, round_))
        return out

    def _from_journal(self, intent_id: str) -> tuple[Action, int] | None:
        """The action of a still-open journaled intent (a retry body that could not be read)."""
        rec = self.store.intent(intent_id)
        if rec is None or rec["state"] not in OPEN_STATES:
            return None
        doc = {k: v for k, v in rec["doc"].items() if k not in ("placed", "cancelled", "venue_order_id", "reason")}
        try:
            return action_from(doc), 1
        except (ValueError, TypeError, KeyError, ArithmeticError):
            return None

    def requeue_journal(self, now_ms: int) -> int:
        """Cold start: every journaled intent not DONE/FAILED goes (back) on the retry queue, due now. Running
        it resumes it (lookup by client order id first), so nothing is sent twice."""
        if self.state is None:
            return 0
        n = 0
        queued = {m for m, _ in self.state.retry_queue()}
        for rec in self.store.intents(OPEN_STATES):
            if rec["intent_id"] in queued:
                continue
            doc = {k: v for k, v in rec["doc"].items() if k not in ("placed", "cancelled", "venue_order_id", "reason")}
            self.state.enqueue_retry(action_from(doc), now_ms, 0)
            n += 1
        return n


def superseding(action: Action, dropped: list[Action]) -> Action:
    """A new stop move that replaces unfinished ones: it also cancels the stops they may have placed."""
    extra = [d.intent_id for d in dropped] + [c for d in dropped for c in d.cancel_coids]
    cancels = tuple(dict.fromkeys([*action.cancel_coids, *extra]))
    return replace(action, cancel_coids=tuple(c for c in cancels if c != action.intent_id))
