"""XtQuantBroker: the Broker port over MiniQMT's ``xtquant.xttrader`` (or the fake, injected the same way).

The session (connect, reconnect, bounded calls) is ``xt_session``; the callback queue (xtquant's thread ->
plain copies) is ``xt_callbacks``; the venue's vocabulary and one order's track are ``xt_orders``. This
module is the adapter: it places, cancels and queries, and folds the queued callbacks into tracks.

Threading: ``drain_events`` (the executor's thread) folds the queue into per-order tracks and emits an
``OrderUpdate`` only when a track's (state, cumulative fills) changed, so duplicated or reordered pushes
produce nothing new. Fill quantities and values are the sum of trade reports (``on_stock_trade``),
deduplicated by ``traded_id`` and kept in integer fen.

Failure policy, from what users of QMT bridges report:
- ``order_stock_async`` returning -1 or raising is UNKNOWN, never "not live": the executor looks it up and
  is the one that declares it lost (``core.oms.lost_orders`` says why); this adapter never does.
- an order the venue accepted (a request number came back) with no callback at all within
  ``callback_deadline_s`` is looked up; after ``LOST_AFTER_LOOKUPS`` lookups a deadline apart that do not
  find it, it is reported REJECTED (e.g. an insufficient-funds rejection that QMT never pushed), which
  releases its frozen cash in the vault. The rule is ``core.oms.lost_orders``; only this adapter knows
  that no callback came, so it declares these orders lost.
- ``None`` from a query is unknown, and so is a list that does not yet show an order placed less than a
  deadline ago (the terminal's order cache trails by seconds).
- ``on_disconnected``: ``ConnectionEvent(False)`` at once; then reconnect with back-off and a new session id
  (a new ``XtQuantTrader``); ``ConnectionEvent(True)`` only after orders, trades, positions and cash were
  queried again and folded in.
- every call into the terminal is bounded (``call_timeout_s``, see ``xt_session``). A call past its bound is
  *unknown*, never a failure or a success: a send becomes ``PlaceStatus.UNKNOWN`` (looked up later, never
  re-sent), a query ``None``, a cancel is retried. The session is dropped at once (``ConnectionEvent(False)``:
  trade health lost, the executor goes REDUCE_ONLY) and rebuilt like after ``on_disconnected``, which needs
  the terminal to answer again.
- an order row or trade report is adopted as ours only when ``xt_orders`` says it is; anything else on the
  account is reported as foreign (``xt-<order_id>``) and never folded into ours.
- an async response with ``order_id <= 0`` and an error message is a rejection; without a message it says
  nothing, and the order is looked up as if no callback had come.
- trade reports missing behind an order row's traded volume are fetched a deadline apart; after
  ``LOST_AFTER_LOOKUPS`` fetches that do not bring them, the value of the missing shares is estimated from
  the venue's average price (same spaced-miss rule, its own counters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from core.oms.lost_orders import LOST_AFTER_LOOKUPS, LookupPolicy, LostOrderTracker
from shared_schema.clock import Clock, SystemClock
from windows.brokers.protocol import (
    BrokerAsset,
    BrokerEvent,
    BrokerPosition,
    ConnectionEvent,
    OrderRequest,
    OrderUpdate,
    PlaceOutcome,
    PlaceStatus,
)
from windows.brokers.xt_callbacks import ORDER_FIELDS, TRADE_FIELDS, CallbackQueue, copy_fields
from windows.brokers.xt_orders import (
    XT_ORDER_TYPE,
    OrderTrack,
    XtOrderBook,
    fen,
    read_journal_ids,
)
from windows.brokers.xt_session import (
    TerminalTimeout,
    TerminalUnavailable,
    XtConnection,
    XtModules,
    session_ids,
)

log = logging.getLogger("gridbridge.xtquant")


@dataclass(frozen=True)
class XtBrokerSettings:
    userdata_path: str
    account_id: str
    session_id_base: int = 100_000
    strategy_name: str = "gridbridge"
    reconnect_backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    callback_deadline_s: float = 10.0
    role_offset: int = 0
    call_timeout_s: float = 5.0  # the longest wait for any one call into MiniQMT
    journal_path: str = ""  # the executor's journal: its client_order_ids are ours when seen at the venue


class XtQuantBroker:
    """The Broker Protocol on MiniQMT. See the module docstring for the failure policy."""

    name = "xtquant"

    def __init__(self, modules: XtModules, settings: XtBrokerSettings, clock: Clock | None = None) -> None:
        self.modules = modules
        self.settings = settings
        self.clock = clock or SystemClock()
        self.xc = modules.xtconstant
        self.callbacks = CallbackQueue(modules.xttrader.XtQuantTraderCallback)
        self.conn = XtConnection(
            modules, settings.userdata_path, settings.account_id,
            session_ids(settings.session_id_base, settings.role_offset, self.clock),
            settings.reconnect_backoff_s, self.clock, self.callbacks.callback,
            call_timeout_s=settings.call_timeout_s,
        )
        self._pending: list[BrokerEvent] = []
        self._reported_up = True  # what the executor was last told (it starts out assuming connected)
        self.deadline = timedelta(seconds=settings.callback_deadline_s)
        # Accepted orders no callback spoke of yet (looked up a deadline apart; this adapter declares them
        # lost), and orders whose trade reports trail their order row (fetched a deadline apart, then
        # estimated): one policy, core.oms.lost_orders.
        policy = LookupPolicy.every(self.deadline, LOST_AFTER_LOOKUPS)
        self.silent = LostOrderTracker(policy)
        self.trade_gaps = LostOrderTracker(policy)
        # A cancel asked for before the venue named the order goes out once it does.
        self.book = XtOrderBook(self.xc.STOCK_BUY, self.xc.STOCK_SELL, self.trade_gaps, self._send_cancel)

    @property
    def tracks(self) -> dict[str, OrderTrack]:
        """Our orders at the venue by client_order_id (the book's)."""
        return self.book.tracks

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.book.journal_ids = self._read_journal_ids()
        if not self.conn.open():
            self._report(False, f"cannot connect to MiniQMT: {self.conn.last_error}")

    def _read_journal_ids(self) -> frozenset[str]:
        """Every client_order_id the executor's journal names (read once: later ones are placed here),
        in its records and in a compaction snapshot alike."""
        if not self.settings.journal_path:
            return frozenset()
        return read_journal_ids(Path(self.settings.journal_path))

    def is_ours(self, remark: str) -> bool:
        """An order with this remark was placed by gridbridge (this process or an earlier one)."""
        return self.book.is_ours(remark)

    def _report(self, connected: bool, message: str, sink: list[BrokerEvent] | None = None) -> None:
        """Tell the executor about trade health, once per change (a loss while already down says nothing)."""
        if not connected and not self._reported_up:
            return
        self._reported_up = connected
        (self._pending if sink is None else sink).append(ConnectionEvent(connected, message))

    def _call(self, name: str, *args: Any) -> Any:
        """A bounded terminal call; a timeout drops the session and reports trade health lost."""
        try:
            return self.conn.call(name, *args)
        except TerminalTimeout as exc:
            log.error("%s; dropping session %s and reconnecting", exc, self.conn.session_id)
            self._report(False, f"{exc}; trade health lost, reconnecting with a new session id")
            raise

    def stop(self) -> None:
        self.conn.close()

    @property
    def connected(self) -> bool:
        return self.conn.connected

    # ------------------------------------------------------------------------------------- orders

    def place_limit_order(self, request: OrderRequest) -> PlaceOutcome:
        client_order_id = request.client_order_id
        if client_order_id in self.tracks:
            # A remark reused would map the venue's answers to the wrong order: refuse, send nothing.
            return PlaceOutcome(PlaceStatus.REJECTED,
                                message=f"client_order_id {client_order_id} is already at the venue")
        if not self.conn.connected:
            return PlaceOutcome(PlaceStatus.REJECTED, message="not connected to MiniQMT; nothing was sent")
        now = self.clock.now()
        track = OrderTrack(client_order_id, request.code, request.side, request.shares, placed_at=now)
        self.tracks[client_order_id] = track
        order_type = getattr(self.xc, XT_ORDER_TYPE[request.side])
        try:
            seq = self._call(
                "order_stock_async", self.conn.account, request.code, order_type, int(request.shares),
                self.xc.FIX_PRICE, float(request.price), self.settings.strategy_name, client_order_id,
            )
        except TerminalTimeout as exc:  # it may have reached the terminal: unknown, looked up, never re-sent
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=str(exc))
        except TerminalUnavailable as exc:  # nothing was called
            del self.tracks[client_order_id]
            return PlaceOutcome(PlaceStatus.REJECTED, message=f"{exc}; nothing was sent")
        except Exception as exc:  # the request may have left before the failure: unknown, not "not live"
            log.warning("order_stock_async raised for %s: %s", client_order_id, exc)
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=f"order_stock_async raised {type(exc).__name__}: {exc}")
        if not isinstance(seq, int) or seq <= 0:
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=f"order_stock_async returned {seq}; the order may be live")
        track.seq = seq
        self.book.by_seq[seq] = client_order_id
        self.silent.wait(client_order_id, now)  # accepted: looked up if no callback speaks of it within a deadline
        return PlaceOutcome(PlaceStatus.SENT)

    def cancel_order(self, client_order_id: str) -> None:
        track = self.tracks.get(client_order_id)
        if track is None and self.conn.connected:
            # Placed by an earlier process: find its order id by remark first.
            try:
                orders = self._call("query_stock_orders", self.conn.account, False)
            except TerminalUnavailable:
                orders = None
            for row in orders or ():
                if row.order_remark == client_order_id and self.is_ours(client_order_id):
                    self._absorb_order(copy_fields(row, ORDER_FIELDS))
            track = self.tracks.get(client_order_id)
        if track is None:
            log.warning("cancel of %s: not known at the venue (yet); nothing to cancel", client_order_id)
            return
        if track.is_final():
            return
        track.cancel_wanted = True
        self._send_cancel(track)

    def _send_cancel(self, track: OrderTrack) -> None:
        if track.cancel_sent or not track.cancel_wanted or not self.conn.connected or track.final_status is not None:
            return
        acc = self.conn.account
        try:
            if track.order_id is not None:
                seq = self._call("cancel_order_stock_async", acc, track.order_id)
            elif track.sysid:
                seq = self._call("cancel_order_stock_sysid_async", acc, track.code.rsplit(".", 1)[-1], track.sysid)
            else:
                return  # no id yet: sent as soon as the venue names the order
        except Exception as exc:  # unknown or refused: cancel_sent stays False, so it is sent again
            log.warning("cancel of %s raised %s; retrying on the next sweep", track.client_order_id, exc)
            return
        track.cancel_sent = isinstance(seq, int) and seq > 0

    # ------------------------------------------------------------------------------------ queries

    def query_asset(self) -> BrokerAsset | None:
        try:
            asset = self._call("query_stock_asset", self.conn.account)
        except TerminalUnavailable:
            return None
        if asset is None:
            return None
        return BrokerAsset(cash=_yuan(asset.cash), frozen_cash=_yuan(asset.frozen_cash),
                           total_asset=_yuan(asset.total_asset))

    def query_positions(self) -> list[BrokerPosition] | None:
        try:
            rows = self._call("query_stock_positions", self.conn.account)
        except TerminalUnavailable:
            return None
        if rows is None:
            return None
        return [
            BrokerPosition(
                code=p.stock_code, volume=int(p.volume), can_use_volume=int(p.can_use_volume),
                avg_cost=Decimal(str(getattr(p, "avg_price", 0) or getattr(p, "open_price", 0) or 0)),
                market_value=_yuan(p.market_value),
            )
            for p in rows
        ]

    def query_orders(self) -> list[OrderUpdate] | None:
        """Every order the venue has today, ours by remark; None when the answer is unknown."""
        acc = self.conn.account
        try:
            rows = self._call("query_stock_orders", acc, False)
            if rows is None:
                return None
            trades = self._call("query_stock_trades", acc)
        except TerminalUnavailable:
            return None
        for trade in trades or ():
            self.book.absorb_trade(copy_fields(trade, TRADE_FIELDS))
        out: list[OrderUpdate] = []
        seen: set[str] = set()
        for row in rows:
            data = copy_fields(row, ORDER_FIELDS)
            client_order_id = self._absorb_order(data)
            if client_order_id is None:
                out.append(self.book.foreign_update(data))
                continue
            seen.add(client_order_id)
            track = self.tracks[client_order_id]
            if trades is None and track.has_trade_gap:
                return None  # fills without their trade reports: the value is not known exactly
            out.append(track.update())
        now = self.clock.now()
        for track in self.tracks.values():
            if track.client_order_id not in seen and not track.heard and track.placed_at and now < track.placed_at + self.deadline:
                return None  # just placed and not in the terminal's cache yet: unknown, not absent
        return out

    # ------------------------------------------------------------------------------------- events

    def on_market(self, quotes: Any) -> None:
        """The real venue has its own market; nothing to do."""

    def drain_events(self) -> list[BrokerEvent]:
        out, self._pending = self._pending, []
        for generation, kind, data in self.callbacks.drain():
            self._absorb(generation, kind, data, out)
        self.sweep_deadlines(self.clock.now(), out)
        out.extend(self.book.changed_updates())
        out.extend(self._pending)  # a call that timed out during the sweep
        self._pending = []
        return out

    def _absorb(self, generation: int, kind: str, data: dict[str, Any] | None, out: list[BrokerEvent]) -> None:
        if kind == "disconnected":
            if self.conn.lost(generation):
                out.extend(self.book.changed_updates())  # what arrived before the break, in order
                self._report(False, f"on_disconnected (session {self.conn.session_id}); "
                                    "reconnecting with a new session id", out)
            return
        assert data is not None
        self.book.absorb_callback(kind, data, self.clock.now())

    def _absorb_order(self, data: dict[str, Any]) -> str | None:
        """Fold one order row now (see ``XtOrderBook.absorb_order``)."""
        return self.book.absorb_order(data, self.clock.now())

    # ------------------------------------------------------------------------------------- sweeps

    def sweep_deadlines(self, now: datetime, out: list[BrokerEvent] | None = None) -> None:
        """Deadline work, driven by the executor's loop: reconnect when due, look up orders that had no
        callback in time, fetch trade reports missing behind an order row, retry pending cancels."""
        sink = out if out is not None else self._pending
        if self.conn.is_retry_due():
            self._reconnect(sink)
        if not self.conn.connected:
            return
        silent = self._due(self.silent, lambda t: not t.heard and not t.lost, now)
        gaps = self._due(self.trade_gaps, lambda t: t.has_trade_gap, now)
        if silent:
            self._look_up_silent(silent, now)
        if gaps and self.conn.connected:
            self._fill_trade_gaps(gaps, now)
        for track in self.tracks.values():
            if track.cancel_wanted and not track.cancel_sent and self.conn.connected:
                self._send_cancel(track)

    def _due(self, doubts: LostOrderTracker, in_doubt: Callable[[OrderTrack], bool], now: datetime) -> list[OrderTrack]:
        """The tracks ``doubts`` holds that are still in doubt and due for a lookup; the rest are forgotten."""
        due = []
        for client_order_id in doubts:
            track = self.tracks.get(client_order_id)
            if track is None or not in_doubt(track):
                doubts.forget(client_order_id)
            elif doubts.is_due(client_order_id, now):
                due.append(track)
        return due

    def _look_up_silent(self, silent: list[OrderTrack], now: datetime) -> None:
        """Look up accepted orders no callback spoke of; declare lost those the policy says are lost."""
        try:
            rows = self._call("query_stock_orders", self.conn.account, False)
        except TerminalUnavailable:
            rows = None
        if rows is None:
            for t in silent:
                self.silent.wait(t.client_order_id, now)  # unknown: not a miss
            return
        remarks = {row.order_remark: row for row in rows}
        for t in silent:
            row = remarks.get(t.client_order_id)
            if row is not None:
                log.warning("order %s had no callback within %ss; found by lookup", t.client_order_id,
                            self.deadline.total_seconds())
                self.silent.forget(t.client_order_id)
                self._absorb_order(copy_fields(row, ORDER_FIELDS))
                if t.has_trade_gap:
                    self._fill_trade_gaps([t], now, count=False)
                continue
            if self.silent.missed(t.client_order_id, now):
                t.lost = True
                t.status_msg = (f"no callback and not at the venue after {self.silent.policy.misses_to_lose} "
                                "lookups (a rejection QMT did not report, e.g. insufficient funds)")
                log.warning("order %s: %s", t.client_order_id, t.status_msg)

    def _fill_trade_gaps(self, gaps: list[OrderTrack], now: datetime, count: bool = True) -> None:
        try:
            trades = self._call("query_stock_trades", self.conn.account)
        except TerminalUnavailable:
            return  # unknown: not a miss; the next sweep asks again
        for trade in trades or ():
            self.book.absorb_trade(copy_fields(trade, TRADE_FIELDS))
        for t in gaps:
            if not t.has_trade_gap or not count:
                continue
            if self.trade_gaps.missed(t.client_order_id, now):
                # Last resort: the venue's average price for the shares whose trade reports never came.
                missing = t.venue_traded - t.filled
                value = max(0, fen(Decimal(str(t.venue_avg)) * t.venue_traded) - t.value_fen)
                t.trades[f"estimated:{t.order_id}:{t.venue_traded}"] = (missing, value, 0)
                log.error("order %s: %d shares without trade reports; value estimated from the average price",
                          t.client_order_id, missing)

    def _reconnect(self, sink: list[BrokerEvent]) -> None:
        if not self.conn.open():
            return
        try:
            problem = self._reconcile()
        except TerminalUnavailable as exc:  # a reconcile query hung: the session is already dropped
            log.warning("reconnected but could not reconcile (%s); trying again later", exc)
            return
        if problem is not None:
            self.conn.abandon(problem)
            log.warning("reconnected but could not reconcile (%s); trying again later", problem)
            return
        sink.extend(self.book.changed_updates())
        self._report(True, f"reconnected as session {self.conn.session_id}; orders, trades, positions and cash "
                           "re-queried", sink)

    def _reconcile(self) -> str | None:
        """Re-read everything after a reconnect; pushes sent while we were away are lost to us."""
        acc = self.conn.account
        orders = self._call("query_stock_orders", acc, False)
        trades = self._call("query_stock_trades", acc)
        positions = self._call("query_stock_positions", acc)
        asset = self._call("query_stock_asset", acc)
        missing = [name for name, v in (("orders", orders), ("trades", trades), ("positions", positions),
                                        ("asset", asset)) if v is None]
        if missing:
            return f"queries unanswered: {', '.join(missing)}"
        for trade in trades:
            self.book.absorb_trade(copy_fields(trade, TRADE_FIELDS))
        for row in orders:
            self._absorb_order(copy_fields(row, ORDER_FIELDS))
        return None



def _yuan(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def settings_from_config(config: Any, role_offset: int = 0, journal_path: str = "") -> XtBrokerSettings:
    """The adapter's settings from ``GridbridgeConfig.xtquant`` (and the executor's journal, if any)."""
    x = config.xtquant
    return XtBrokerSettings(
        userdata_path=x.userdata_path, account_id=x.account_id, session_id_base=x.session_id_base,
        strategy_name=x.strategy_name, reconnect_backoff_s=tuple(x.reconnect_backoff_s),
        callback_deadline_s=x.callback_deadline_s, role_offset=role_offset, call_timeout_s=x.call_timeout_s,
        journal_path=journal_path,
    )
