"""Open-order upkeep: broker reports, lookups of unknown outcomes, lost orders, cancels and journal compaction.

Each turn the sweeper folds the venue's reports in, looks up orders whose send was not confirmed (spaced,
lost only after ``LOST_AFTER_LOOKUPS`` misses), settles orders left open from an earlier trading day,
cancels orders past ``max_order_age_s`` (deferred while their exchange refuses cancels) and compacts the
journal once its tail is long enough.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.events import AuditCode, Severity
from core.oms.lost_orders import LOST_AFTER_LOOKUPS, LookupPolicy, LostOrderTracker
from core.oms.order_fsm import OrderState
from shared_schema.failpoints import failpoint
from shared_schema.types import CST
from windows.brokers.protocol import ConnectionEvent
from windows.executor_state import LiveOrder
from windows.journal_records import (
    CancelRequestRecord,
    ForgetRecord,
    LostRecord,
    SentRecord,
    SnapshotRecord,
    UpdateRecord,
)
from windows.market_rules import is_cancel_allowed
from windows.snapshot import SNAPSHOT_VERSION

if TYPE_CHECKING:
    from windows.executor import Executor

log = logging.getLogger("gridbridge.executor")

SEEN_INPUTS_RECENT = 1000  # input keys kept at a compaction besides those of junk still in the signal file


class Sweeper:
    """Keeps the executor ``ex``'s open orders in step with the venue, and its journal short.

    The turn calls ``drain_broker`` and ``sweep``; ``recover_open_orders`` runs once at start; the risk room
    cancels through ``cancel_open``."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.config = ex.config
        self.state = ex.state
        self.journal = ex.journal
        self.broker = ex.broker
        self.risk = ex.risk
        self.wall_clock = ex.wall_clock
        # Unknown outcomes are the executor's to declare lost (core.oms.lost_orders says why, not the adapter):
        # LOST_AFTER_LOOKUPS misses spread over executor.unknown_outcome_lookup_s.
        self.lost_orders = LostOrderTracker(LookupPolicy(
            LOST_AFTER_LOOKUPS, timedelta(seconds=ex.config.executor.unknown_outcome_lookup_s)))
        # Cancels held back while the order's exchange refuses cancels (client_order_id -> why); sent when it
        # accepts.
        self._deferred_cancels: dict[str, str] = {}
        self._compact_retry_at = 0  # after a failed compaction: the tail length at which to try again

    # --------------------------------------------------------------------------------------- broker

    def drain_broker(self) -> None:
        """Fold every event the broker queued (connection changes, order reports) into the executor."""
        ex = self.ex
        for event in self.broker.drain_events():
            if isinstance(event, ConnectionEvent):
                if ex.connected and not event.connected:  # a disconnect or a call past its bound: audited
                    self.risk.emit(AuditCode.EXEC_HEALTH_DEGRADED, ex.now(), f"trade health lost: {event.message}",
                                   severity=Severity.WARN, trade_ok=False)
                ex.connected = event.connected
                self.risk.trade_ok = event.connected
                ex.risk_actions.inputs_changed()
                ex.alerts.post(f"broker {'connected' if event.connected else 'DISCONNECTED'}: {event.message}")
                continue
            ex._fold_update(event)

    def recover_open_orders(self) -> None:
        """After a restart: bring every non-final order up to the venue's truth before trading again.

        An order whose send was never confirmed (intent journaled, then a crash) becomes UNKNOWN; the
        venue's answer at start is its first lookup under ``lost_orders``, and the running sweep
        carries on from there: it is lost only after the same spaced misses as any unknown outcome."""
        ex = self.ex
        pending = [o for o in self.state.open_orders()]
        if not pending:
            return
        wall = self.wall_clock.now()
        known = self.broker.query_orders()
        by_id = {u.client_order_id: u for u in known or ()}
        for live in pending:
            client_order_id = live.record.client_order_id
            found = by_id.get(client_order_id)
            if found is not None:
                ex._fold_update(found)
                continue
            if live.record.state is OrderState.NEW and not live.outcome_unknown:
                ex._commit(SentRecord(client_order_id=client_order_id, status="UNKNOWN",
                                      message="restart before send was confirmed", at=ex.now()))
            if known is not None and live.outcome_unknown:
                self._looked_up_and_missed(live, wall)
        if known is None:
            ex.alerts.post("recovery: broker order query failed; open orders stay unknown until a lookup succeeds")
            return
        ours = set(self.state.orders)
        for update in known:
            if update.client_order_id not in ours and not update.state.is_terminal:
                ex.alerts.post(f"venue has an order we did not send (manual?): {update.client_order_id} {update.code}")

    def _lookup_due(self, live: LiveOrder, wall: datetime) -> bool:
        """Lookups of one order are spaced (``lost_orders.policy.gap``): a venue's order cache can trail by seconds."""
        return self.lost_orders.is_due(live.record.client_order_id, wall)

    def _looked_up_and_missed(self, live: LiveOrder, wall: datetime) -> None:
        """An unknown outcome the venue did not list: one miss; lost (it never reached the venue) after enough."""
        client_order_id = live.record.client_order_id
        if self.lost_orders.missed(client_order_id, wall):
            self.ex._commit(LostRecord(client_order_id=client_order_id, at=self.ex.now()))

    def _settle_previous_days(self, now: datetime, wall: datetime) -> None:
        """Orders still open from an earlier trading day: the exchange ended them at the close. QMT lists
        only today's orders, so one the venue no longer reports is closed here with the fills we have."""
        today = now.astimezone(CST).date()
        stale = [o for o in self.state.open_orders() if not o.outcome_unknown
                 and o.record.state is not OrderState.NEW and o.created_at.astimezone(CST).date() < today
                 and self._lookup_due(o, wall)]
        if not stale:
            return
        known = self.broker.query_orders()
        if known is None:
            return
        by_id = {u.client_order_id: u for u in known}
        for live in stale:
            client_order_id = live.record.client_order_id
            if client_order_id in by_id:
                self.ex._fold_update(by_id[client_order_id])
                if not self.state.orders[client_order_id].record.state.is_terminal:
                    self.lost_orders.found(client_order_id, wall)
                continue
            if self.lost_orders.missed(client_order_id, wall):
                rec = live.record
                self.ex._commit(CancelRequestRecord(client_order_id=client_order_id, why="DAY_END", at=now))
                self.ex._commit(UpdateRecord(
                    client_order_id=client_order_id, state=OrderState.CANCELLED, filled_shares=rec.filled_shares,
                    filled_value_fen=rec.filled_value_fen, fees_fen=rec.fees_fen,
                    message="the trading day ended with the order open; the venue no longer lists it", at=now))

    def sweep(self) -> None:
        """Look up unknown outcomes, settle earlier days, send deferred cancels, cancel old orders, compact."""
        now = self.ex.now()
        wall = self.wall_clock.now()
        due = [o for o in self.state.open_orders() if o.outcome_unknown and self._lookup_due(o, wall)]
        if due:
            # Spaced lookups: a venue's order cache can trail a placement by seconds, so "not found" only
            # counts as lost after LOST_AFTER_LOOKUPS misses spread over unknown_outcome_lookup_s.
            known = self.broker.query_orders()
            if known is not None:
                by_id = {u.client_order_id: u for u in known}
                for live in due:
                    client_order_id = live.record.client_order_id
                    if client_order_id in by_id:
                        self.lost_orders.forget(client_order_id)
                        self.ex._fold_update(by_id[client_order_id])
                        continue
                    self._looked_up_and_missed(live, wall)
        self._settle_previous_days(now, wall)
        self._send_deferred_cancels(now)
        max_age = self.config.executor.max_order_age_s
        for live in self.state.open_orders():
            if live.cancel_requested or live.outcome_unknown or live.record.state is OrderState.NEW:
                continue
            if (now - live.created_at).total_seconds() >= max_age:
                self._request_cancel(live, "MAX_ORDER_AGE", now)
        self._maybe_compact()

    # -------------------------------------------------------------------------------------- cancels

    def _request_cancel(self, live: LiveOrder, why: str, now: datetime) -> bool:
        """Cancel ``live`` now (journal ``cancel_req``, make it durable, ask the broker), unless its exchange
        refuses cancels at market time ``now`` (Shenzhen closing call auction 14:57-15:00, 09:20-09:25;
        ``market_rules.is_cancel_allowed``): then the cancel is deferred, not journaled (nothing was sent),
        audited once (``ORDER_CANCEL_DEFERRED`` DEFER) and sent by ``_send_deferred_cancels`` at the first
        turn its exchange accepts cancels again. True when the cancel went out."""
        client_order_id = live.record.client_order_id
        if not is_cancel_allowed(now, live.record.symbol, self.config.market):
            if client_order_id not in self._deferred_cancels:
                self._deferred_cancels[client_order_id] = why
                self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now,
                               f"{client_order_id}: {live.record.symbol}'s exchange refuses cancels now; "
                               f"cancel ({why}) deferred",
                               symbol=live.record.symbol, severity=Severity.WARN, action="DEFER", why=why,
                               client_order_id=client_order_id)
                self.ex.alerts.post(f"cancel of {client_order_id} ({why}) deferred: {live.record.symbol}'s exchange "
                                    f"refuses cancels at {now.astimezone(CST):%H:%M:%S}; it is sent once cancels "
                                    "are allowed again")
            return False
        self.ex._commit(CancelRequestRecord(client_order_id=client_order_id, why=why, at=now))
        self.journal.sync()
        self.broker.cancel_order(client_order_id)
        if self._deferred_cancels.pop(client_order_id, None) is not None:
            self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now, f"{client_order_id}: deferred cancel ({why}) sent",
                           symbol=live.record.symbol, action="SEND", why=why, client_order_id=client_order_id)
        return True

    def cancel_open(self, now: datetime, why: str, buys_only: bool = False) -> None:
        """Cancel every open order the venue holds (or only the buys); deferred where the exchange refuses."""
        for live in self.state.open_orders():
            if live.cancel_requested or live.record.state is OrderState.NEW:
                continue
            if buys_only and live.record.side != "BUY":
                continue
            self._request_cancel(live, why, now)  # deferred where the exchange refuses cancels now

    def _send_deferred_cancels(self, now: datetime) -> None:
        """Deferred cancels whose exchange accepts cancels again go out; one whose order ended (or got a
        cancel some other way) meanwhile is dropped, audited."""
        for client_order_id, why in list(self._deferred_cancels.items()):
            live = self.state.orders.get(client_order_id)
            if live is None or live.record.state.is_terminal or live.cancel_requested:
                del self._deferred_cancels[client_order_id]
                self.risk.emit(AuditCode.ORDER_CANCEL_DEFERRED, now, f"{client_order_id}: deferred cancel ({why}) "
                               "dropped: the order ended or was cancelled meanwhile", symbol=None if live is None else
                               live.record.symbol, action="DROP", why=why, client_order_id=client_order_id)
                continue
            self._request_cancel(live, why, now)

    # ----------------------------------------------------------------------------------- compaction

    def _bound_seen_inputs(self) -> list[str]:
        """Forget the input keys no longer needed, at a compaction; returns the kept keys, oldest first.

        A key is kept while its junk (an entry without a usable signal_id, or a refused file) is still in
        ``order_signal.json`` as last read, so junk that sits there is never recorded twice, and among the
        SEEN_INPUTS_RECENT newest. Junk that left the file and comes back after that is recorded again, once.
        Memory and the snapshot hold at most the file's junk, the recent set and one compaction interval."""
        ex = self.ex
        order = list(ex._input_order)
        recent = set(order[-SEEN_INPUTS_RECENT:])
        kept = [k for k in order if k in recent or k in ex.intake.present_inputs]
        ex._input_order = dict.fromkeys(kept)
        ex.seen_inputs = set(kept)
        return kept

    def _maybe_compact(self) -> None:
        """Journal compaction, between two turns' worth of work: once the tail has
        ``executor.journal_compact_records`` records, forget what the retention rules allow (a journaled
        ``forget`` record) and replace the journal by one ``snapshot`` record of the state (atomic swap).
        Restart then reads one snapshot and a short tail, and the journal stays bounded by the open state
        plus retention, however many signals went through."""
        ex = self.config.executor
        if self.journal.records_since_snapshot < max(ex.journal_compact_records, self._compact_retry_at):
            return
        now = self.ex.now()
        drop = self.state.forgettable(self.ex.intake.present_ids, now, ex.max_signal_age_s, ex.clock_skew_tolerance_s)
        if drop["ids"] or drop["orders"] or drop["owners"]:
            self.ex._commit(ForgetRecord(ids=tuple(drop["ids"]), orders=tuple(drop["orders"]),
                                         owners=tuple(drop["owners"]), at=now))
        self.journal.sync()
        failpoint("executor.before_compact")  # the forget record is durable, the journal not yet compacted
        try:
            record = SnapshotRecord(
                version=SNAPSHOT_VERSION, at=now, records=self.state.records_applied, state=self.state.snapshot(),
                inputs=tuple(self._bound_seen_inputs()),
                client_order_ids=tuple(sorted(set(self.state.orders) | set(self.state.vault.allocations))))
            size = self.journal.compact(record.encode())
        except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; it must never stop a turn
            # E.g. a reader holds the file open on Windows, or a value the snapshot cannot encode. The full
            # journal stays valid; try again after another interval's worth of records, not every turn.
            if not isinstance(exc, OSError):
                log.exception("journal compaction failed")
            self._compact_retry_at = self.journal.records_since_snapshot + ex.journal_compact_records
            self.ex.alerts.post(f"journal compaction failed, the full journal stays: {exc!r}"[:300],
                                key="journal:compact")
            return
        self._compact_retry_at = 0
        self.ex.alerts.clear("journal:compact")
        log.info("journal compacted: %d signals, %d orders kept; %d bytes", len(self.state.signals),
                 len(self.state.orders), size)
