"""The position manager's shell: read state, call the pure decisions, write state, hand actions to the runner.

One governance pass (``manage``) runs under ``lock:pos:{pos_id}`` (SET NX PX with a TTL): a second caller
gets ``LockBusy`` at once and does nothing, so two concurrent manage calls on one position run exactly
once. The pass snapshots the position to the store before it decides, writes the decided state (Redis and
store) *before* any order is sent, snapshots after every order result and once more at the end: one
position's whole life can be replayed from the store (``replay``).

Intent ids are deterministic from the position's own counters (stop sequence, ladder rung, add-on index,
exit), and the runner journals each intent before it is sent, so redeciding after a crash or a Redis loss
yields the same client order ids and never a second order.

Cold start (``cold_start``) and Redis loss: Redis carries ``pos:epoch``; when it is missing (a fresh or a
restarted-empty Redis) every open position is rebuilt into ``pos:*`` from its latest snapshot, risk is
reserved again, and every journaled intent that is not finished goes back on the retry queue (resumed by a
lookup by client order id, never blindly resent).

Degraded modes: market data down -> ``MarketFeed`` returns the last mid (flagged stale) and the pass only
guards the stop on it (exit if crossed) and never adds; OMS down (the port's ping fails) -> reduce-only
passes, and failing actions wait in the retry queue; config fetch failing -> ``ConfigHolder`` keeps the
old config and retries with a doubling backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Protocol

import redis

from core.events import AuditCode, AuditEvent, Severity
from crypto.pm.codec import position_doc, position_from, transfer_doc, transfer_from
from crypto.pm.config import ConfigError, PmConfig
from crypto.pm.decisions import (
    Action,
    Event,
    ManagedPosition,
    MarketView,
    Plan,
    entry_stop_plan,
    govern,
    restop_plan,
    unfilled_reduction,
)
from crypto.pm.port import client_order_id_for
from crypto.pm.runner import OPEN_STATES, ActionRunner, Outcome
from crypto.pm.sli import Slis
from crypto.pm.state import LockBusy, RedisState, StateCorrupt
from crypto.pm.store import SnapshotStore
from crypto.pm.treasury import (
    TransferRecord,
    TransferState,
    TransferTrigger,
    decide_transfer,
    transfer_id_for,
    transition,
)
from crypto.venue.types import VenueError

EPOCH_KEY = "pos:epoch"

__all__ = ["ConfigHolder", "LockBusy", "ManageResult", "Manager", "TreasuryPort"]


class TreasuryPort(Protocol):
    def free_balances(self, asset: str, spot_account: str, fut_account: str) -> tuple[Decimal, Decimal]: ...
    def transfer(self, asset: str, amount: Decimal, from_account: str, to_account: str,
                 transfer_id: str) -> str: ...  # the venue's transfer id; raises VenueError


class ConfigHolder:
    """The active config; ``refresh`` fetches a new one and keeps the old one when the fetch fails."""

    def __init__(self, cfg: PmConfig, fetch: Callable[[], PmConfig] | None = None,
                 backoff_ms: int = 5_000, max_backoff_ms: int = 300_000) -> None:
        self.cfg = cfg
        self.fetch = fetch
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.failures = 0
        self.next_try_ms = 0
        self.last_error = ""

    def refresh(self, now_ms: int) -> bool:
        """Try a fetch when due; True when the config changed. A failure keeps the old one."""
        if self.fetch is None or now_ms < self.next_try_ms:
            return False
        try:
            new = self.fetch()
        except (ConfigError, OSError, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            self.next_try_ms = now_ms + min(self.backoff_ms * 2 ** (self.failures - 1), self.max_backoff_ms)
            return False
        self.failures = 0
        self.last_error = ""
        self.next_try_ms = now_ms + self.backoff_ms
        changed = new != self.cfg
        self.cfg = new
        return changed


@dataclass(frozen=True)
class ManageResult:
    pos_id: str
    symbol: str
    ts_ms: int
    plan: Plan
    outcomes: tuple[Outcome, ...]
    degraded: tuple[str, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        """The ``POST /positions/manage`` response body (documented in docs/crypto.md)."""
        pos = self.plan.position
        return {
            "pos_id": self.pos_id, "symbol": self.symbol, "ts": self.ts_ms, "degraded": list(self.degraded),
            "plan": {
                "pnl": str(self.plan.pnl), "roe": str(self.plan.roe),
                "liq_buffer": None if self.plan.liq_buffer is None else str(self.plan.liq_buffer),
                "stop": None if pos.stop is None else str(pos.stop), "qty": str(pos.qty), "closed": pos.closed,
                "actions": [_action_view(a) for a in self.plan.actions],
                "events": [{"type": e.kind, **e.data} for e in self.plan.events],
            },
            "orders": [o.order_doc() for o in self.outcomes],
        }


def _action_view(a: Action) -> dict[str, Any]:
    return {"type": a.kind, "intent_id": a.intent_id, "side": a.side, "qty": str(a.qty),
            "stop": None if a.stop is None else str(a.stop), "reduce_only": a.reduce_only, "reason": a.reason}


SLI_KEY = "slis"
SHORT_FILL_STATUSES = ("canceled", "expired", "rejected")  # the venue says the rest of the order will not fill


def _short_fill(out: Outcome) -> Decimal | None:
    """The filled quantity of a reduction the venue ended short of its size, or None (filled in full, still
    working, or not known: an acknowledgement without a final state changes nothing)."""
    ack = out.ack
    if (out.status != "DONE" or ack is None or out.action.kind not in ("TP_PARTIAL", "RISK_DOWNGRADE", "EXIT")
            or ack.status not in SHORT_FILL_STATUSES or not ack.filled.is_finite() or ack.filled >= out.action.qty):
        return None
    return ack.filled


class Manager:
    def __init__(self, state: RedisState, store: SnapshotStore, runner: ActionRunner, config: ConfigHolder,
                 *, clock_ms: Callable[[], int], slis: Slis | None = None,
                 audit: Callable[[AuditEvent], None] | None = None,
                 treasury_port: TreasuryPort | None = None) -> None:
        self.state = state
        self.store = store
        self.runner = runner
        self.config = config
        self.clock_ms = clock_ms
        self.slis = slis or runner.slis
        saved = store.meta(SLI_KEY)
        if saved is not None:
            self.slis.restore(saved)  # a restart keeps the SLIs (the store outlives Redis and the process)
        self.audit = audit or (lambda _e: None)
        self.treasury_port = treasury_port
        self.last_tick_ms = 0
        self.redis_ok = True

    @property
    def cfg(self) -> PmConfig:
        return self.config.cfg

    # -- entries ------------------------------------------------------------------------------------------
    def open_position(self, pos_id: str, symbol: str, kind: Literal["swap", "spot"], direction: int,
                      qty: Decimal, entry: Decimal, margin: Decimal, view: MarketView,
                      risk_budget: Decimal | None = None) -> ManageResult:
        """A new position (a fill seen): record it and attach its reduce-only stop at once. Idempotent on
        ``pos_id`` (a second call for the same fill returns without acting)."""
        now = self.clock_ms()
        with self.state.hold(f"lock:pos:{pos_id}", self.cfg.lock_ttl_ms):
            existing = self._load(pos_id)
            if existing is not None:
                plan = Plan(existing, (), (), Decimal(0), Decimal(0), None)
                return ManageResult(pos_id, symbol, now, plan, ())
            pos = ManagedPosition(pos_id=pos_id, symbol=symbol, kind=kind, direction=direction, qty=qty,
                                  entry=entry, margin=margin, q0=qty, opened_ms=now, last_progress_ms=now,
                                  last_action_ms=now)
            budget = risk_budget if risk_budget is not None else margin
            self.state.reserve_risk(pos_id, symbol, budget)
            self.store.put_snapshot(pos_id, symbol, now, "entry", position_doc(pos))
            self._emit(Event("ENTRY", pos_id, symbol, now,
                             {"qty": str(qty), "entry": str(entry), "margin": str(margin), "kind": kind}))
            plan = entry_stop_plan(pos, replace(view, ts_ms=now), self.cfg)
            return self._carry_out(pos, plan, now, ())

    # -- governance ---------------------------------------------------------------------------------------
    def manage(self, pos_id: str, view: MarketView, *, stale_market: bool = False) -> ManageResult:
        """One governance pass under the position's lock (``LockBusy`` when another pass holds it)."""
        with self.state.hold(f"lock:pos:{pos_id}", self.cfg.lock_ttl_ms):
            now = self.clock_ms()
            pos = self._load(pos_id)
            if pos is None:
                raise KeyError(pos_id)
            if pos.qty <= 0 and not pos.closed:
                pos = self._settle_exit(pos)
            degraded: list[str] = []
            oms_up = self.runner.port.ping()
            if not oms_up:
                degraded.append("OMS_DOWN")
            if stale_market:
                degraded.append("MARKET_DATA_STALE")
            self.store.put_snapshot(pos_id, pos.symbol, now, "before", position_doc(pos))
            if stale_market:
                # Only the guard on the last mid: no ladder, no tightening on a price we cannot trust.
                plan = govern(pos, replace(view, ts_ms=now, atr=None, signal=None), _guard_only(self.cfg),
                              reduce_only=True)
            else:
                plan = govern(pos, replace(view, ts_ms=now), self.cfg, reduce_only=not oms_up)
            return self._carry_out(pos, plan, now, tuple(degraded), view.mark, replace(view, ts_ms=now))

    def _fresh_exit(self, action: Action) -> Action:
        """An exit's intent id is ``{pos_id}:exit``; once that intent is finished (a partial fill left a
        rest), the next exit of the same position is ``:exit:1``, ``:exit:2``... so it is sent, not answered
        from the journal. An exit still in flight keeps its id (the runner resumes it)."""
        base, k = action.intent_id, 0
        iid = base
        while (rec := self.store.intent(iid)) is not None and rec["state"] in ("DONE", "FAILED"):
            k += 1
            iid = f"{base}:{k}"
        return action if iid == base else replace(action, intent_id=iid)

    def _carry_out(self, before: ManagedPosition, plan: Plan, now: int, degraded: tuple[str, ...],
                   decided_price: Decimal | None = None, view: MarketView | None = None) -> ManageResult:
        pos = plan.position
        actions = [self.runner.supersede_queued(a) for a in plan.actions]
        if pos.kind == "spot":
            # Spot stops are guard stops (the pass exits at market when the mid crosses them), not venue
            # orders: spot has no reduce-only, and a resting spot stop would lock the coins.
            actions = [a for a in actions if a.kind != "STOP_MOVE"]
        # The decided state goes to Redis and the store before the first order is sent.
        self._save(pos, keep_open=pos.closed)
        if actions or pos != before:  # a quiet pass decided nothing: its before/after rows say so already
            self.store.put_snapshot(pos.pos_id, pos.symbol, now, "decided",
                                    position_doc(pos) | {"actions": [_action_view(a) for a in actions]})
        for ev in plan.events:
            self._emit(ev)
            if ev.kind == "STAGNATED":
                self.slis.stagnation()
        outcomes: list[Outcome] = []
        exit_qty = next((a.qty for a in actions if a.kind == "EXIT"), None)
        unit_margin = (pos.margin / pos.qty if pos.qty > 0
                       else pos.margin / exit_qty if exit_qty else Decimal(0))
        corrected = pos
        for action in actions:
            if action.kind == "EXIT":
                action = self._fresh_exit(action)
            out = self.runner.run(action)
            outcomes.append(out)
            self.slis.action(action.kind, out.status == "DONE")
            self.store.put_snapshot(pos.pos_id, pos.symbol, self.clock_ms(), "order", out.order_doc())
            short = _short_fill(out)
            if short is not None and decided_price is not None:
                corrected = unfilled_reduction(corrected, action, short, out.ack.avg_price if out.ack else None,
                                               decided_price, unit_margin)
        failed_stop = next((o for o in outcomes if o.action.kind == "STOP_MOVE" and o.status == "FAILED"
                            and o.action.intent_id == corrected.stop_coid), None)
        if failed_stop is not None and corrected == pos:
            # The new stop never went live and the old one was not cancelled: the books point at the old one
            # again, so the next move cancels the stop that is really there.
            pos = replace(pos, stop=before.stop, stop_coid=before.stop_coid)
            self._save(pos, keep_open=pos.closed)
            corrected = pos
        if corrected != pos:
            # The venue filled a reduction only in part: the books take what it did. The rest is open, keeps
            # its risk reserved and gets a stop for its real size (the plan's stop was sized for less, or
            # cancelled by the exit).
            self._audit(AuditCode.PM_ACTION_PARTIAL, Severity.ERROR, "REDUCTION_PARTIALLY_FILLED", pos.symbol,
                        {"pos_id": pos.pos_id, "booked_qty": str(pos.qty), "venue_qty": str(corrected.qty)})
            pos = corrected
            self._save(pos)
            if pos.stop is not None and view is not None:
                stop_plan = restop_plan(replace(pos, stop_coid=None if exit_qty else pos.stop_coid), view,
                                        "PARTIAL_FILL")
                pos = stop_plan.position
                self._save(pos)
                for action in stop_plan.actions:
                    out = self.runner.run(action)
                    outcomes.append(out)
                    self.store.put_snapshot(pos.pos_id, pos.symbol, self.clock_ms(), "order", out.order_doc())
        if pos.closed:
            exit_done = all(o.status == "DONE" for o in outcomes if o.action.kind == "EXIT")
            if exit_done:
                self._save(pos)
        self.store.put_snapshot(pos.pos_id, pos.symbol, self.clock_ms(), "after", position_doc(pos))
        return ManageResult(pos.pos_id, pos.symbol, now, plan, tuple(outcomes), degraded)

    def tick(self, views: Callable[[str], tuple[MarketView, bool] | None]) -> list[ManageResult]:
        """One management tick over every open position, then the retry queue. ``views(symbol)`` gives the
        market view and whether it is stale (market data down: the last mid)."""
        now = self.clock_ms()
        failures = self.config.failures
        self.config.refresh(now)
        if self.config.failures > failures:  # one audit line per failed fetch, not per tick
            self._audit(AuditCode.PM_CONFIG_STALE, Severity.WARN, self.config.last_error, None,
                        {"failures": self.config.failures, "next_try_ms": self.config.next_try_ms})
        try:
            self.ensure_state()
            ids = self.state.active_ids()
            self.redis_ok = True
        except redis.RedisError:
            self.redis_ok = False
            return []
        results = []
        for pos_id in ids:
            pos = self._load(pos_id)
            if pos is None:
                continue
            got = views(pos.symbol)
            if got is None:
                continue
            view, stale = got
            try:
                results.append(self.manage(pos_id, view, stale_market=stale))
            except LockBusy:
                continue  # a manage call is running on it: this tick skips it
        self.runner.run_due(now)
        self.last_tick_ms = now
        self.save_slis()
        return results

    def save_slis(self) -> None:
        """Write the SLIs to the store (after a tick, a manage call, a transfer): one row, replaced."""
        self.store.put_meta(SLI_KEY, self.clock_ms(), self.slis.to_doc())

    def position_gone(self, pos_id: str, price: Decimal | None = None, reason: str = "VENUE_CLOSED") -> bool:
        """The venue reports no position any more (its stop fired, or a liquidation): close ours, cancel
        what is left of our stops, release the risk. False when the position was not open here."""
        with self.state.hold(f"lock:pos:{pos_id}", self.cfg.lock_ttl_ms):
            pos = self._load(pos_id)
            if pos is None or pos.closed:
                return False
            now = self.clock_ms()
            for coid in [c for c in (pos.stop_coid,) if c]:
                try:
                    self.runner.port.cancel(pos.symbol, client_order_id_for(coid))
                except VenueError:
                    pass  # fired or already gone: nothing to cancel
            closed = replace(pos, qty=Decimal(0), closed=True, last_action_ms=now)
            self._save(closed)
            self._emit(Event("EXIT", pos_id, pos.symbol, now,
                             {"reason": reason, "price": "" if price is None else str(price)}))
            self.store.put_snapshot(pos_id, pos.symbol, now, "after", position_doc(closed) | {"exit_reason": reason})
            return True

    def reconcile(self, pos_id: str, venue_qty: Decimal, venue_entry: Decimal, venue_margin: Decimal,
                  view: MarketView) -> ManageResult | None:
        """Adopt the venue's size, entry and margin when they differ from ours and none of our actions on
        the position is in flight (a refused take-profit, a partial fill, a manual trade). The stop is
        re-placed for the new size. None when nothing changed."""
        with self.state.hold(f"lock:pos:{pos_id}", self.cfg.lock_ttl_ms):
            pos = self._load(pos_id)
            if pos is None or pos.closed or pos.qty <= 0:
                return None
            if any(r["doc"].get("pos_id") == pos_id for r in self.store.intents(OPEN_STATES)):
                return None
            if venue_qty == pos.qty and venue_entry == pos.entry:
                return None
            now = self.clock_ms()
            realised, booked = self._stop_fill_realised(pos, venue_qty)
            new = replace(pos, qty=venue_qty, entry=venue_entry, margin=venue_margin,
                          realised_pnl=pos.realised_pnl + realised)
            self.store.put_snapshot(pos_id, pos.symbol, now, "reconciled",
                                    position_doc(new) | {"was_qty": str(pos.qty), "was_entry": str(pos.entry),
                                                         "stop_fill_booked": booked})
            if new.stop is None or new.qty == pos.qty:
                self._save(new)
                return ManageResult(pos_id, pos.symbol, now, Plan(new, (), (), Decimal(0), Decimal(0), None), ())
            return self._carry_out(new, restop_plan(new, replace(view, ts_ms=now)), now, ("RECONCILED",))

    def _stop_fill_realised(self, pos: ManagedPosition, venue_qty: Decimal) -> tuple[Decimal, str | None]:
        """When the venue holds less than we do because our own stop filled in part (it triggered, the book
        was thin, the venue cancelled its rest), the closed part is realised at the stop's fill price (its
        level when the venue gives none). Any other shrink (a manual trade) has no price we know: nothing is
        booked, the snapshot says so. Returns the PnL and the stop's client id it was booked from."""
        if venue_qty >= pos.qty or pos.stop_coid is None:
            return Decimal(0), None
        try:
            ack = self.runner.port.lookup(pos.symbol, client_order_id_for(pos.stop_coid))
        except VenueError:
            return Decimal(0), None
        if ack is None or ack.filled <= 0 or not ack.filled.is_finite():
            return Decimal(0), None
        closed = min(pos.qty - venue_qty, ack.filled)
        price = ack.avg_price if ack.avg_price is not None and ack.avg_price > 0 else pos.stop
        if price is None:
            return Decimal(0), None
        return (price - pos.entry) * closed * pos.direction, pos.stop_coid

    def _settle_exit(self, pos: ManagedPosition) -> ManagedPosition:
        """An exit decided earlier and left in the retry queue: once its intent is DONE the position is
        closed for good (risk released)."""
        rec = self.store.intent(f"{pos.pos_id}:exit")
        if rec is not None and rec["state"] == "DONE":
            pos = replace(pos, closed=True)
            self._save(pos)
        return pos

    # -- Redis loss and cold start ------------------------------------------------------------------------
    def ensure_state(self) -> str:
        """``redis`` when Redis still holds our state, else rebuild it from the store (``store``)."""
        if self.state.r.exists(EPOCH_KEY):
            return "redis"
        return self.cold_start()

    def cold_start(self) -> str:
        now = self.clock_ms()
        if self.state.r.exists(EPOCH_KEY):
            return "redis"
        open_positions = []
        for doc in self.store.latest_positions().values():
            if doc.get("closed"):
                continue
            open_positions.append(position_from({k: v for k, v in doc.items()
                                                 if k in ManagedPosition.__dataclass_fields__}))
        rebuilt = self.state.restore_positions(open_positions)  # batched: a restart stays short at any size
        requeued = self.runner.requeue_journal(now)
        self.state.r.set(EPOCH_KEY, str(now))
        if rebuilt or requeued:
            self._audit(AuditCode.PM_STATE_REBUILT, Severity.WARN, "redis lost pos:* state", None,
                        {"positions": rebuilt[:100], "positions_count": len(rebuilt),  # one bounded line
                         "intents_requeued": requeued})
        return "store"

    # -- treasury -----------------------------------------------------------------------------------------
    def prune_store(self) -> int:
        """Drop closed positions older than ``closed_retention_days`` from the snapshot store, a bounded batch
        per call (the treasury tick calls it)."""
        keep_ms = self.cfg.closed_retention_days * 86_400_000
        return self.store.prune_closed(self.clock_ms() - keep_ms, limit=self.cfg.prune_batch)

    def treasury_tick(self, transfer_id: str | None = None, approve: bool = False) -> TransferRecord | str:
        """Top up futures free margin from spot when the rule says so, once per ``transfer_id``."""
        t = self.cfg.treasury
        if self.treasury_port is None:
            return "TREASURY_NO_PORT"
        now = self.clock_ms()
        with self.state.hold(f"lock:treasury:{t.from_account}:{t.to_account}", self.cfg.lock_ttl_ms):
            tid = transfer_id or transfer_id_for(t.from_account, t.to_account, now,
                                                 self.cfg.treasury_interval_s * 1000)
            found = self.store.transfer(tid)
            if found is not None:
                rec = transfer_from(found)
                if rec.state is TransferState.PENDING and approve:
                    return self._execute_transfer(transition(rec, TransferTrigger.APPROVE, now, "approved"))
                return rec  # the same transfer_id again: the one record, nothing sent twice
            free_spot, free_fut = self.treasury_port.free_balances(t.asset, t.from_account, t.to_account)
            decision = decide_transfer(free_fut, free_spot, t.min_free_fut, t.spot_buffer)
            if isinstance(decision, str):
                return decision
            rec = TransferRecord(tid, t.asset, decision, t.from_account, t.to_account, TransferState.PENDING, now)
            if not self.store.create_transfer(tid, now, rec.state.value, transfer_doc(rec)):
                return transfer_from(self.store.transfer(tid) or transfer_doc(rec))
            self._audit(AuditCode.PM_TRANSFER, Severity.INFO, "PENDING", None, transfer_doc(rec))
            if t.mode == "auto" or approve:
                return self._execute_transfer(transition(rec, TransferTrigger.APPROVE, now, "auto"))
            return rec

    def _execute_transfer(self, rec: TransferRecord) -> TransferRecord:
        assert self.treasury_port is not None
        self.store.update_transfer(rec.transfer_id, rec.ts_ms, rec.state.value, transfer_doc(rec))
        try:
            venue_id = self.treasury_port.transfer(rec.asset, rec.amount, rec.from_account, rec.to_account,
                                                   rec.transfer_id)
            rec = transition(rec, TransferTrigger.VENUE_OK, self.clock_ms(), venue_transfer_id=venue_id)
        except VenueError as exc:
            rec = transition(rec, TransferTrigger.VENUE_FAILED, self.clock_ms(), exc.reason.value)
        self.store.update_transfer(rec.transfer_id, rec.ts_ms, rec.state.value, transfer_doc(rec))
        self.slis.transfer(rec.state is TransferState.EXECUTED)
        self.save_slis()
        self._audit(AuditCode.PM_TRANSFER, Severity.INFO if rec.state is TransferState.EXECUTED else Severity.ERROR,
                    rec.state.value, None, transfer_doc(rec))
        return rec

    # -- helpers ------------------------------------------------------------------------------------------
    def position(self, pos_id: str) -> ManagedPosition | None:
        """The position from Redis, else (lost or corrupt there) from the store, written back to Redis."""
        return self._load(pos_id)

    def _load(self, pos_id: str) -> ManagedPosition | None:
        try:
            pos = self.state.load_position(pos_id)
        except StateCorrupt as exc:
            # Refused once: the corrupt document was moved aside, the store's snapshot takes its place.
            self._audit(AuditCode.PM_STATE_INVALID, Severity.ERROR, exc.why, None, {"pos_id": pos_id})
            pos = None
            doc = self.store.latest(pos_id)
            if doc is not None:
                restored = position_from({k: v for k, v in doc.items() if k in ManagedPosition.__dataclass_fields__})
                self._save(restored)
                return restored
        if pos is not None:
            return pos
        doc = self.store.latest(pos_id)
        if doc is None:
            return None
        clean = {k: v for k, v in doc.items() if k in ManagedPosition.__dataclass_fields__}
        return position_from(clean)

    def _save(self, pos: ManagedPosition, keep_open: bool = False) -> None:
        # An exit that is decided but not yet done keeps the position active (its risk stays reserved).
        self.state.save_position(replace(pos, closed=False) if keep_open else pos)

    def _emit(self, ev: Event) -> None:
        try:
            self.state.emit(ev)
        except redis.RedisError:
            pass  # the store's snapshots still tell the story

    def _audit(self, code: AuditCode, severity: Severity, cause: str, symbol: str | None,
               data: dict[str, Any]) -> None:
        self.audit(AuditEvent(datetime.fromtimestamp(self.clock_ms() / 1000, tz=timezone.utc), code, severity, cause,
                              symbol, data))

    def health(self) -> dict[str, Any]:
        now = self.clock_ms()
        return {
            "redis": self.state.ping(), "store": self.store.ping(), "venue": self.runner.port.ping(),
            "tick_lag_ms": None if not self.last_tick_ms else now - self.last_tick_ms,
            "retry_queue": self.state.retry_len() if self.state.ping() else None,
            "config_version": self.cfg.version, "config_stale": self.config.failures > 0,
            "sli": self.slis.snapshot(),
        }


def _guard_only(cfg: PmConfig) -> PmConfig:
    return cfg.model_copy(update={"ladder": (), "locks": (), "liq_buffer_min": Decimal(0),
                                  "stagnation_ms": 10**15})


def wall_ms() -> int:
    return int(time.time() * 1000)
