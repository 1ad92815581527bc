"""XtQuantBroker: the Broker port over MiniQMT's ``xtquant.xttrader`` (or the fake, injected the same way).

The venue's vocabulary is translated here and only here: ``XT_ORDER_STATUS`` maps QMT order statuses to
our OrderState, ``XT_ORDER_TYPE`` maps our sides to QMT order types (the two enums overlap numerically:
status 48 "unreported" is not order type 48, so they never share a table).

Threading: xtquant calls back on its own worker thread. The callback only copies the fields it needs into
a thread-safe queue; nothing blocks or queries there. ``drain_events`` (the executor's thread) folds the
queue into per-order tracks and emits an ``OrderUpdate`` only when a track's (state, cumulative fills)
changed, so duplicated or reordered pushes produce nothing new. Fill quantities and values are the sum of
trade reports (``on_stock_trade``), deduplicated by ``traded_id`` and kept in integer fen: an order push's
average price is a float and cannot give the exact value.

Failure policy, from what users of QMT bridges report:
- ``order_stock_async`` returning -1 or raising is UNKNOWN, never "not live": the executor looks it up.
- an order with no callback at all within ``callback_deadline_s`` is looked up; after
  ``LOST_AFTER_LOOKUPS`` lookups that do not find it, it is reported REJECTED (e.g. an insufficient-funds
  rejection that QMT never pushed), which releases its frozen cash in the vault.
- ``None`` from a query is unknown, and so is a list that does not yet show an order placed less than a
  deadline ago (the terminal's order cache trails by seconds).
- ``on_disconnected``: ``ConnectionEvent(False)`` at once; then reconnect with back-off and a new session id
  (a new ``XtQuantTrader``); ``ConnectionEvent(True)`` only after orders, trades, positions and cash were
  queried again and folded in.
- every call into the terminal is bounded (``call_timeout_s``): xtquant's sync calls wait on a future with no
  timeout, so a frozen MiniQMT would freeze the executor. The adapter hands the bound to
  ``XtQuantTrader.set_timeout`` (milliseconds) and also waits for each call on a helper thread for at most
  that long. A call past its bound is *unknown*, never a failure or a success: a send becomes
  ``PlaceStatus.UNKNOWN`` (looked up later, never re-sent), a query ``None``, a cancel is retried. The session
  is dropped at once (``ConnectionEvent(False)``: trade health lost, the executor goes REDUCE_ONLY) and
  rebuilt like after ``on_disconnected``, which needs the terminal to answer again.
- an order row or trade report is adopted as ours (an order placed by an earlier process) only when its
  remark is a client_order_id in the executor's journal or has one of our id formats (``OUR_ID_FORMATS``);
  anything else on the account is reported as foreign (``xt-<order_id>``) and never folded into ours.
- an async response with ``order_id <= 0`` and an error message is a rejection; without a message it says
  nothing, and the order is looked up as if no callback had come.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from core.journal import read_records
from core.oms.order_fsm import OrderState
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

log = logging.getLogger("gridbridge.xtquant")

MODULE_ENV = "GRIDBRIDGE_XTQUANT_MODULE"
LOST_AFTER_LOOKUPS = 3
FOREIGN_PREFIX = "xt-"  # client_order_id given to venue orders without our remark (manual orders)
MAX_HUNG_CALLS = 32  # helper threads left waiting on a frozen terminal before new calls are refused outright

# Remarks we write ourselves (see mac.grid.core.make_client_order_id and `gridbridge signal`); an order with
# such a remark is ours even when the journal does not name it.
OUR_ID_FORMATS = (
    re.compile(r"G\d{4}[BS][0-9A-Z]{1,6}(?:[01]\d|2[0-3])[0-5]\d[0-9A-Z]{1,4}"),  # a node's order
    re.compile(r"M[0-9a-f]{15}"),  # `gridbridge signal` without --signal-id
)

# QMT order status (xtconstant.ORDER_*) -> our state. None: says nothing about the state (keep looking).
XT_ORDER_STATUS: dict[int, OrderState | None] = {
    48: OrderState.SENT,  # ORDER_UNREPORTED
    49: OrderState.SENT,  # ORDER_WAIT_REPORTING
    50: OrderState.ACK,  # ORDER_REPORTED
    51: OrderState.ACK,  # ORDER_REPORTED_CANCEL: cancel pending, NOT cancelled; may still fill
    52: OrderState.PARTIAL,  # ORDER_PARTSUCC_CANCEL: partly filled, cancel pending, NOT cancelled
    53: OrderState.CANCELLED,  # ORDER_PART_CANCEL: final, keeps its fills
    54: OrderState.CANCELLED,  # ORDER_CANCELED: final
    55: OrderState.PARTIAL,  # ORDER_PART_SUCC
    56: OrderState.FILLED,  # ORDER_SUCCEEDED: final
    57: OrderState.REJECTED,  # ORDER_JUNK: final, reason in status_msg
    255: None,  # ORDER_UNKNOWN
}
XT_FINAL_STATUSES = frozenset({53, 54, 56, 57})

# Our side -> the xtconstant name of QMT's order type (resolved on the injected module, never hard-coded).
XT_ORDER_TYPE = {"BUY": "STOCK_BUY", "SELL": "STOCK_SELL"}


class XtQuantUnavailable(RuntimeError):
    """xtquant's trader cannot be imported here (off Windows, or MiniQMT's package is missing)."""


class TerminalUnavailable(Exception):
    """No call was made: there is no session to make it on (disconnected, or too many calls still hang)."""


class TerminalTimeout(TerminalUnavailable):
    """A call into MiniQMT did not return within its bound: its outcome is unknown."""


def is_our_id_format(remark: str) -> bool:
    """True for a client_order_id in one of the formats gridbridge makes (a node's, the CLI's default)."""
    return any(pattern.fullmatch(remark) for pattern in OUR_ID_FORMATS)


class BoundedCaller:
    """Makes one terminal call on a helper thread and waits for it at most ``timeout_s`` (wall time).

    A call past its bound raises ``TerminalTimeout`` while its thread keeps waiting: Python cannot stop it,
    and the call may still complete (a late send reaches the terminal). Such threads are counted; past
    ``max_hung`` no new call is started, so a dead terminal cannot pile up threads without end."""

    def __init__(self, timeout_s: float, max_hung: int = MAX_HUNG_CALLS) -> None:
        self.timeout_s = timeout_s
        self.max_hung = max_hung
        self.hung = 0
        self._lock = threading.Lock()

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.hung >= self.max_hung:
                raise TerminalUnavailable(f"{name} not called: {self.hung} earlier MiniQMT calls still hang")
        done = threading.Event()
        box: dict[str, Any] = {}
        abandoned = [False]

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # handed to the caller's thread, re-raised there
                box["error"] = exc
            finally:
                with self._lock:
                    done.set()
                    if abandoned[0]:
                        self.hung -= 1
                        log.warning("MiniQMT answered %s late (after %ss); that answer is dropped", name, self.timeout_s)

        threading.Thread(target=run, name=f"xt-call-{name}", daemon=True).start()
        if not done.wait(self.timeout_s):
            with self._lock:
                if not done.is_set():
                    abandoned[0] = True
                    self.hung += 1
                    raise TerminalTimeout(f"MiniQMT did not answer {name} within {self.timeout_s:g} s; "
                                          "its outcome is unknown")
        if "error" in box:
            raise box["error"]
        return box.get("value")


@dataclass(frozen=True)
class XtModules:
    """The xtquant module set the adapters use: the real package on Windows, the fake in tests."""

    xttrader: ModuleType
    xttype: ModuleType
    xtconstant: ModuleType
    xtdata: ModuleType | None = None


def load_xt_modules(package: str | None = None, with_data: bool = False) -> XtModules:
    """Import ``<package>.xttrader/xttype/xtconstant`` (and ``xtdata``) lazily.

    ``package`` defaults to ``$GRIDBRIDGE_XTQUANT_MODULE`` or ``xtquant``; tests point it at
    ``tests.kit.fake_xtquant``. Off Windows the real trader module does not import: the error says so."""
    package = package or os.environ.get(MODULE_ENV) or "xtquant"
    names = ["xttrader", "xttype", "xtconstant"] + (["xtdata"] if with_data else [])
    loaded: dict[str, ModuleType] = {}
    for name in names:
        try:
            loaded[name] = importlib.import_module(f"{package}.{name}")
        except Exception as exc:  # the real wheel raises ImportError or OSError off Windows
            raise XtQuantUnavailable(
                f"cannot import {package}.{name} ({type(exc).__name__}: {exc}). The xtquant broker needs "
                f"Windows with MiniQMT and `pip install .[qmt]`; see docs/windows.md. To run against the fake "
                f"terminal set {MODULE_ENV}=tests.kit.fake_xtquant."
            ) from exc
    return XtModules(**loaded)


def session_ids(base: int, role_offset: int, clock: Clock) -> Iterator[int]:
    """Session ids for one process: a new one for every connection attempt, unlikely to meet an id a
    previous process (or the other role) still holds in the terminal."""
    start = base + role_offset + (int(clock.now().timestamp()) % 1_000_000) * 100
    return itertools.count(start)


# ---------------------------------------------------------------------------------------- connection


class XtConnection:
    """One trader session at a time: build, register, start, connect, subscribe; back off on failure.

    The session id changes on every attempt, because QMT does not take a dropped session back."""

    def __init__(
        self,
        modules: XtModules,
        userdata_path: str,
        account_id: str,
        ids: Iterator[int],
        backoff_s: Sequence[float],
        clock: Clock,
        make_callback: Callable[[int], Any],
        call_timeout_s: float = 5.0,
    ) -> None:
        self.modules = modules
        self.userdata_path = userdata_path
        self.account = modules.xttype.StockAccount(account_id)
        self.ids = ids
        self.backoff_s = list(backoff_s) or [1.0]
        self.clock = clock
        self.make_callback = make_callback
        self.trader: Any = None
        self.session_id: int | None = None
        self.generation = 0
        self.connected = False
        self.failures = 0
        self.retry_at: datetime | None = None
        self.last_error = ""
        self.caller = BoundedCaller(call_timeout_s)

    def call(self, name: str, *args: Any) -> Any:
        """``trader.<name>(*args)`` on the current session, bounded. On a timeout the session is dropped
        (it is rebuilt like after ``on_disconnected``) and ``TerminalTimeout`` says the outcome is unknown."""
        trader = self.trader
        if trader is None or not self.connected:
            raise TerminalUnavailable(f"{name} not called: not connected to MiniQMT")
        try:
            return self.caller(name, getattr(trader, name), *args)
        except TerminalTimeout as exc:
            if self.trader is trader:
                self.abandon(str(exc))
            raise

    def open(self) -> bool:
        """One connection attempt with a fresh session id; on failure the next one is scheduled."""
        self.close()
        self.generation += 1
        self.session_id = next(self.ids)
        trader = self.modules.xttrader.XtQuantTrader(self.userdata_path, self.session_id)
        trader.register_callback(self.make_callback(self.generation))
        call = self.caller
        try:
            call("start", trader.start)
            if hasattr(trader, "set_timeout"):  # the library's own bound on its sync calls, in milliseconds
                call("set_timeout", trader.set_timeout, max(1, int(self.caller.timeout_s * 1000)))
            rc = call("connect", trader.connect)
            if rc != 0:
                return self._failed(trader, f"connect() returned {rc} (session {self.session_id})")
            rc = call("subscribe", trader.subscribe, self.account)
            if rc != 0:
                return self._failed(trader, f"subscribe() returned {rc} (session {self.session_id})")
        except Exception as exc:  # the library raises on a missing terminal or a bad path; or a call hung
            return self._failed(trader, f"{type(exc).__name__}: {exc}")
        self.trader = trader
        self.connected = True
        self.failures = 0
        self.retry_at = None
        log.info("connected to MiniQMT as session %s, account %s", self.session_id, self.account.account_id)
        return True

    def _failed(self, trader: Any, why: str) -> bool:
        self.last_error = why
        log.warning("xtquant connection attempt failed: %s", why)
        self._stop_quietly(trader)
        self.schedule_retry()
        return False

    def schedule_retry(self) -> None:
        delay = self.backoff_s[min(self.failures, len(self.backoff_s) - 1)]
        self.failures += 1
        self.retry_at = self.clock.now() + timedelta(seconds=delay)

    def lost(self, generation: int) -> bool:
        """The session of ``generation`` reported ``on_disconnected``; False for an old session's news."""
        if generation != self.generation or not self.connected:
            return False
        self.connected = False
        self.close()
        self.schedule_retry()
        return True

    def abandon(self, why: str) -> None:
        """Connected but not usable (reconcile failed): drop it and try again later."""
        self.last_error = why
        self.connected = False
        self.close()
        self.schedule_retry()

    def is_retry_due(self) -> bool:
        return not self.connected and self.retry_at is not None and self.clock.now() >= self.retry_at

    def close(self) -> None:
        if self.trader is not None:
            trader, self.trader = self.trader, None
            self._stop_quietly(trader)

    def _stop_quietly(self, trader: Any) -> None:
        try:
            self.caller("stop", trader.stop)
        except Exception as exc:  # stopping a half-started or frozen trader may fail; nothing else to do
            log.debug("trader.stop() failed: %s", exc)


# ------------------------------------------------------------------------------------------- callback

_ORDER_FIELDS = ("order_id", "order_sysid", "stock_code", "order_type", "order_volume", "price", "traded_volume",
                 "traded_price", "order_status", "status_msg", "order_remark", "strategy_name")
_TRADE_FIELDS = ("traded_id", "order_id", "order_sysid", "stock_code", "order_type", "traded_volume", "traded_price",
                 "traded_amount", "commission", "order_remark")
_RESP_FIELDS = ("seq", "order_id", "order_remark", "error_msg", "strategy_name")
_ERROR_FIELDS = ("order_id", "error_id", "error_msg", "order_remark")
_CANCEL_RESP_FIELDS = ("seq", "order_id", "order_sysid", "cancel_result", "error_msg")
_CANCEL_ERROR_FIELDS = ("order_id", "order_sysid", "error_id", "error_msg")


def _copy(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(obj, name, None) for name in names}


def make_callback_class(base: type) -> type:
    """A ``XtQuantTraderCallback`` subclass that only enqueues copies of what it is given."""

    class QueueingCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, sink: queue.SimpleQueue, generation: int) -> None:
            super().__init__()
            self._sink = sink
            self._generation = generation

        def _put(self, kind: str, data: dict[str, Any] | None) -> None:
            self._sink.put((self._generation, kind, data))

        def on_disconnected(self) -> None:
            self._put("disconnected", None)

        def on_stock_order(self, order: Any) -> None:
            self._put("order", _copy(order, _ORDER_FIELDS))

        def on_stock_trade(self, trade: Any) -> None:
            self._put("trade", _copy(trade, _TRADE_FIELDS))

        def on_order_error(self, order_error: Any) -> None:
            self._put("order_error", _copy(order_error, _ERROR_FIELDS))

        def on_cancel_error(self, cancel_error: Any) -> None:
            self._put("cancel_error", _copy(cancel_error, _CANCEL_ERROR_FIELDS))

        def on_order_stock_async_response(self, response: Any) -> None:
            self._put("async_resp", _copy(response, _RESP_FIELDS))

        def on_cancel_order_stock_async_response(self, response: Any) -> None:
            self._put("cancel_resp", _copy(response, _CANCEL_RESP_FIELDS))

        def on_account_status(self, status: Any) -> None:
            self._put("account_status", _copy(status, ("account_id", "status")))

    return QueueingCallback


# --------------------------------------------------------------------------------------------- tracks


def _fen(yuan: Any) -> int:
    return int((Decimal(str(yuan)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class _Track:
    """Everything known about one of our orders, folded from pushes and queries in any order."""

    coid: str
    code: str = ""
    side: str = ""
    shares: int = 0
    placed_at: datetime | None = None  # None: adopted from the venue (placed by an earlier process)
    seq: int | None = None
    order_id: int | None = None
    sysid: str = ""
    heard: bool = False  # any push or query answer about it
    status: int | None = None  # latest non-final status
    final_status: int | None = None  # the first final status seen; a later non-final one cannot undo it
    status_msg: str = ""
    venue_traded: int = 0  # cumulative traded volume as the order rows say
    venue_avg: float = 0.0
    trades: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # traded_id -> (shares, fen, fee fen)
    lookups: int = 0
    next_lookup_at: datetime | None = None
    gap_since: datetime | None = None
    gap_lookups: int = 0
    cancel_wanted: bool = False
    cancel_sent: bool = False
    lost: bool = False
    emitted: tuple[Any, ...] | None = None

    @property
    def filled(self) -> int:
        return sum(t[0] for t in self.trades.values())

    @property
    def value_fen(self) -> int:
        return sum(t[1] for t in self.trades.values())

    @property
    def fees_fen(self) -> int:
        return sum(t[2] for t in self.trades.values())

    @property
    def has_trade_gap(self) -> bool:
        return self.venue_traded > self.filled

    def state(self) -> OrderState:
        if self.lost:
            return OrderState.REJECTED
        filled = self.filled
        if self.final_status is not None:
            target = XT_ORDER_STATUS[self.final_status]
            assert target is not None
            if target in (OrderState.FILLED, OrderState.CANCELLED) and (
                self.has_trade_gap or (target is OrderState.FILLED and filled < self.shares)
            ):
                # Final at the venue, but some trade reports are still missing: hold until the value is exact.
                return OrderState.PARTIAL if filled else OrderState.ACK
            return target
        current = XT_ORDER_STATUS.get(self.status) if self.status is not None else None
        if filled:
            return OrderState.PARTIAL
        return current or OrderState.SENT

    def is_final(self) -> bool:
        return self.state().is_terminal

    def update(self) -> OrderUpdate:
        state = self.state()
        message = ""
        if state in (OrderState.REJECTED, OrderState.CANCELLED):
            message = self.status_msg
        return OrderUpdate(
            client_order_id=self.coid, state=state, filled_shares=self.filled, filled_value_fen=self.value_fen,
            fees_fen=self.fees_fen, broker_order_id="" if self.order_id is None else str(self.order_id),
            message=message, code=self.code, side=self.side, shares=self.shares,
        )


# --------------------------------------------------------------------------------------------- broker


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
        self._raw: queue.SimpleQueue = queue.SimpleQueue()
        callback_class = make_callback_class(modules.xttrader.XtQuantTraderCallback)
        self.conn = XtConnection(
            modules, settings.userdata_path, settings.account_id,
            session_ids(settings.session_id_base, settings.role_offset, self.clock),
            settings.reconnect_backoff_s, self.clock, lambda gen: callback_class(self._raw, gen),
            call_timeout_s=settings.call_timeout_s,
        )
        self.tracks: dict[str, _Track] = {}
        self._by_seq: dict[int, str] = {}
        self._by_order_id: dict[int, str] = {}
        self._pending: list[BrokerEvent] = []
        self._foreign_seen: set[int] = set()
        self._journal_ids: frozenset[str] = frozenset()
        self._reported_up = True  # what the executor was last told (it starts out assuming connected)
        self.deadline = timedelta(seconds=settings.callback_deadline_s)

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._journal_ids = self._read_journal_ids()
        if not self.conn.open():
            self._report(False, f"cannot connect to MiniQMT: {self.conn.last_error}")

    def _read_journal_ids(self) -> frozenset[str]:
        """Every client_order_id the executor's journal names (read once: later ones are placed here),
        in its records and in a compaction snapshot alike."""
        if not self.settings.journal_path:
            return frozenset()
        ids: set[str] = set()
        for record, _size in read_records(Path(self.settings.journal_path)):
            # A compaction snapshot lists every id the state still knows under ``coids`` (its contract for
            # record-scanning readers); the nested scan also covers records and older snapshots.
            coids = record.get("coids") if isinstance(record, dict) else None
            if isinstance(coids, list):
                ids.update(c for c in coids if isinstance(c, str) and c)
            _collect_order_ids(record, ids)
        return frozenset(ids)

    def is_ours(self, remark: str) -> bool:
        """An order with this remark was placed by gridbridge (this process or an earlier one)."""
        return bool(remark) and (remark in self.tracks or remark in self._journal_ids or is_our_id_format(remark))

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
        coid = request.client_order_id
        if coid in self.tracks:
            # A remark reused would map the venue's answers to the wrong order: refuse, send nothing.
            return PlaceOutcome(PlaceStatus.REJECTED, message=f"client_order_id {coid} is already at the venue")
        if not self.conn.connected:
            return PlaceOutcome(PlaceStatus.REJECTED, message="not connected to MiniQMT; nothing was sent")
        now = self.clock.now()
        track = _Track(coid, request.code, request.side, request.shares, placed_at=now, next_lookup_at=now + self.deadline)
        self.tracks[coid] = track
        order_type = getattr(self.xc, XT_ORDER_TYPE[request.side])
        try:
            seq = self._call(
                "order_stock_async", self.conn.account, request.code, order_type, int(request.shares),
                self.xc.FIX_PRICE, float(request.price), self.settings.strategy_name, coid,
            )
        except TerminalTimeout as exc:  # it may have reached the terminal: unknown, looked up, never re-sent
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=str(exc))
        except TerminalUnavailable as exc:  # nothing was called
            del self.tracks[coid]
            return PlaceOutcome(PlaceStatus.REJECTED, message=f"{exc}; nothing was sent")
        except Exception as exc:  # the request may have left before the failure: unknown, not "not live"
            log.warning("order_stock_async raised for %s: %s", coid, exc)
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=f"order_stock_async raised {type(exc).__name__}: {exc}")
        if not isinstance(seq, int) or seq <= 0:
            return PlaceOutcome(PlaceStatus.UNKNOWN, message=f"order_stock_async returned {seq}; the order may be live")
        track.seq = seq
        self._by_seq[seq] = coid
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
                    self._absorb_order(_copy(row, _ORDER_FIELDS))
            track = self.tracks.get(client_order_id)
        if track is None:
            log.warning("cancel of %s: not known at the venue (yet); nothing to cancel", client_order_id)
            return
        if track.is_final():
            return
        track.cancel_wanted = True
        self._send_cancel(track)

    def _send_cancel(self, track: _Track) -> None:
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
            log.warning("cancel of %s raised %s; retrying on the next sweep", track.coid, exc)
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
            self._absorb_trade(_copy(trade, _TRADE_FIELDS))
        out: list[OrderUpdate] = []
        seen: set[str] = set()
        for row in rows:
            data = _copy(row, _ORDER_FIELDS)
            coid = self._absorb_order(data)
            if coid is None:
                out.append(self._foreign_update(data))
                continue
            seen.add(coid)
            track = self.tracks[coid]
            if trades is None and track.has_trade_gap:
                return None  # fills without their trade reports: the value is not known exactly
            out.append(track.update())
        now = self.clock.now()
        for track in self.tracks.values():
            if track.coid not in seen and not track.heard and track.placed_at and now < track.placed_at + self.deadline:
                return None  # just placed and not in the terminal's cache yet: unknown, not absent
        return out

    def _note_foreign(self, data: dict[str, Any]) -> None:
        order_id = int(data.get("order_id") or 0)
        if order_id > 0 and order_id not in self._foreign_seen:
            self._foreign_seen.add(order_id)
            log.warning("venue order %s (%s) has no gridbridge remark (remark %r): not ours, reported as %s%s",
                        order_id, data.get("stock_code"), data.get("order_remark"), FOREIGN_PREFIX, order_id)

    def _foreign_update(self, data: dict[str, Any]) -> OrderUpdate:
        order_id = int(data.get("order_id") or 0)
        self._note_foreign(data)
        state = XT_ORDER_STATUS.get(int(data.get("order_status") or 255)) or OrderState.SENT
        return OrderUpdate(
            client_order_id=f"{FOREIGN_PREFIX}{order_id}", state=state, filled_shares=int(data.get("traded_volume") or 0),
            broker_order_id=str(order_id), message="not placed by gridbridge (no order_remark of ours)",
            code=str(data.get("stock_code") or ""), side=self._side_of(data.get("order_type")),
            shares=int(data.get("order_volume") or 0),
        )

    # ------------------------------------------------------------------------------------- events

    def on_market(self, quotes: Any) -> None:
        """The real venue has its own market; nothing to do."""

    def drain_events(self) -> list[BrokerEvent]:
        out, self._pending = self._pending, []
        while True:
            try:
                generation, kind, data = self._raw.get_nowait()
            except queue.Empty:
                break
            self._absorb(generation, kind, data, out)
        self.sweep_deadlines(self.clock.now(), out)
        out.extend(self._changed_updates())
        out.extend(self._pending)  # a call that timed out during the sweep
        self._pending = []
        return out

    def _absorb(self, generation: int, kind: str, data: dict[str, Any] | None, out: list[BrokerEvent]) -> None:
        if kind == "disconnected":
            if self.conn.lost(generation):
                out.extend(self._changed_updates())  # what arrived before the break, in order
                self._report(False, f"on_disconnected (session {self.conn.session_id}); "
                                    "reconnecting with a new session id", out)
            return
        assert data is not None
        if kind == "order":
            self._absorb_order(data)
        elif kind == "trade":
            self._absorb_trade(data)
        elif kind == "async_resp":
            coid = self._by_seq.get(int(data.get("seq") or -1)) or (data.get("order_remark") or None)
            track = self.tracks.get(coid) if coid else None
            if track is None:
                return
            order_id = int(data.get("order_id") or 0)
            if order_id > 0:
                track.heard = True
                self._bind_order_id(track, order_id)
            elif data.get("error_msg"):  # refused by QMT before the counter: no order id, a reason
                track.heard = True
                track.final_status, track.status_msg = 57, str(data["error_msg"])
            else:  # no id and no reason says nothing: the lookup after the deadline decides
                log.warning("order %s: async response with order_id %s and no message; looking it up", coid, order_id)
        elif kind == "order_error":
            track = self._track_for(data)
            if track is not None:
                track.heard = True
                if track.final_status is None:
                    track.final_status = 57
                track.status_msg = str(data.get("error_msg") or track.status_msg or "order error")
        elif kind == "cancel_error":
            track = self._track_for(data)
            log.warning("cancel refused for %s: %s", track.coid if track else data.get("order_id"), data.get("error_msg"))
            if track is not None:
                track.cancel_wanted = False  # the order push says what really happened to it
        elif kind == "account_status":
            log.info("account status: %s", data)

    def _track_for(self, data: dict[str, Any]) -> _Track | None:
        order_id = int(data.get("order_id") or 0)
        if order_id in self._foreign_seen:
            return None  # someone else's order, even if its remark looks like one of ours
        remark = data.get("order_remark")
        if remark and remark in self.tracks:
            track = self.tracks[remark]
            if order_id > 0 and track.order_id is not None and track.order_id != order_id:
                return None  # another order carrying our remark: never fold it into ours
            return track
        coid = self._by_order_id.get(order_id)
        return self.tracks.get(coid) if coid else None

    def _bind_order_id(self, track: _Track, order_id: int) -> None:
        track.order_id = order_id
        self._by_order_id[order_id] = track.coid
        self._send_cancel(track)  # a cancel asked for before the venue named the order

    def _absorb_order(self, data: dict[str, Any]) -> str | None:
        """Fold one order row (push or query); adopt our orders placed by an earlier process."""
        track = self._track_for(data)
        if track is None:
            remark = str(data.get("order_remark") or "")
            if remark in self.tracks or not self.is_ours(remark):
                self._note_foreign(data)
                return None
            track = self.tracks[remark] = _Track(remark)
        track.heard = True
        track.code = track.code or str(data.get("stock_code") or "")
        track.side = track.side or self._side_of(data.get("order_type"))
        track.shares = track.shares or int(data.get("order_volume") or 0)
        order_id = int(data.get("order_id") or 0)
        if order_id > 0 and track.order_id is None:
            self._bind_order_id(track, order_id)
        track.sysid = track.sysid or str(data.get("order_sysid") or "")
        raw_status = data.get("order_status")
        status = 255 if raw_status is None else int(raw_status)
        if status in XT_FINAL_STATUSES:
            if track.final_status is None:
                track.final_status = status
        elif status != 255:
            track.status = status
        if data.get("status_msg"):
            track.status_msg = str(data["status_msg"])
        traded = int(data.get("traded_volume") or 0)
        if traded > track.venue_traded:
            track.venue_traded = traded
            track.venue_avg = float(data.get("traded_price") or 0.0)
        if track.has_trade_gap and track.gap_since is None:
            track.gap_since = self.clock.now()
        return track.coid

    def _absorb_trade(self, data: dict[str, Any]) -> None:
        track = self._track_for(data)
        if track is None:
            remark = str(data.get("order_remark") or "")
            if remark in self.tracks or not self.is_ours(remark):
                return  # a trade of someone else's order
            track = self.tracks[remark] = _Track(remark, code=str(data.get("stock_code") or ""),
                                                 side=self._side_of(data.get("order_type")))
        track.heard = True
        traded_id = str(data.get("traded_id"))
        if traded_id in track.trades:
            return  # a duplicated report
        volume = int(data.get("traded_volume") or 0)
        amount = data.get("traded_amount")
        value = _fen(amount) if amount else _fen(Decimal(str(data.get("traded_price") or 0)) * volume)
        track.trades[traded_id] = (volume, value, _fen(data.get("commission") or 0))
        order_id = int(data.get("order_id") or 0)
        if order_id > 0 and track.order_id is None:
            self._bind_order_id(track, order_id)
        if not track.has_trade_gap:
            track.gap_since, track.gap_lookups = None, 0

    def _side_of(self, order_type: Any) -> str:
        if order_type == self.xc.STOCK_BUY:
            return "BUY"
        if order_type == self.xc.STOCK_SELL:
            return "SELL"
        return ""

    def _changed_updates(self) -> list[OrderUpdate]:
        out = []
        for track in self.tracks.values():
            update = track.update()
            if not (track.heard or track.lost):
                continue  # nothing from the venue yet: an UNKNOWN send must stay unknown until looked up
            key = (update.state, update.filled_shares, update.filled_value_fen, update.fees_fen)
            if key == track.emitted:
                continue
            if track.emitted is not None and track.emitted[0].is_terminal and update.filled_shares <= track.emitted[1]:
                continue  # a final order only speaks again if late trade reports add fills
            track.emitted = key
            out.append(update)
        return out

    # ------------------------------------------------------------------------------------- sweeps

    def sweep_deadlines(self, now: datetime, out: list[BrokerEvent] | None = None) -> None:
        """Deadline work, driven by the executor's loop: reconnect when due, look up orders that had no
        callback in time, fetch trade reports missing behind an order row, retry pending cancels."""
        sink = out if out is not None else self._pending
        if self.conn.is_retry_due():
            self._reconnect(sink)
        if not self.conn.connected:
            return
        silent = [t for t in self.tracks.values()
                  if t.placed_at and not t.heard and not t.lost and t.next_lookup_at and now >= t.next_lookup_at]
        gaps = [t for t in self.tracks.values() if t.has_trade_gap and t.gap_since and now >= t.gap_since + self.deadline]
        if silent:
            self._look_up_silent(silent, now)
        if gaps and self.conn.connected:
            self._fill_trade_gaps(gaps, now)
        for track in self.tracks.values():
            if track.cancel_wanted and not track.cancel_sent and self.conn.connected:
                self._send_cancel(track)

    def _look_up_silent(self, silent: list[_Track], now: datetime) -> None:
        try:
            rows = self._call("query_stock_orders", self.conn.account, False)
        except TerminalUnavailable:
            rows = None
        if rows is None:
            for t in silent:
                t.next_lookup_at = now + self.deadline  # unknown: not a miss
            return
        remarks = {row.order_remark: row for row in rows}
        for t in silent:
            row = remarks.get(t.coid)
            if row is not None:
                log.warning("order %s had no callback within %ss; found by lookup", t.coid, self.deadline.total_seconds())
                self._absorb_order(_copy(row, _ORDER_FIELDS))
                if t.has_trade_gap:
                    self._fill_trade_gaps([t], now, count=False)
                continue
            t.lookups += 1
            t.next_lookup_at = now + self.deadline
            if t.lookups >= LOST_AFTER_LOOKUPS:
                t.lost = True
                t.status_msg = (f"no callback and not at the venue after {t.lookups} lookups "
                                "(a rejection QMT did not report, e.g. insufficient funds)")
                log.warning("order %s: %s", t.coid, t.status_msg)

    def _fill_trade_gaps(self, gaps: list[_Track], now: datetime, count: bool = True) -> None:
        try:
            trades = self._call("query_stock_trades", self.conn.account)
        except TerminalUnavailable:
            return  # unknown: not a miss; the next sweep asks again
        for trade in trades or ():
            self._absorb_trade(_copy(trade, _TRADE_FIELDS))
        for t in gaps:
            if not t.has_trade_gap or not count:
                continue
            t.gap_lookups += 1
            t.gap_since = now
            if t.gap_lookups >= LOST_AFTER_LOOKUPS:
                # Last resort: the venue's average price for the shares whose trade reports never came.
                missing = t.venue_traded - t.filled
                value = max(0, _fen(Decimal(str(t.venue_avg)) * t.venue_traded) - t.value_fen)
                t.trades[f"estimated:{t.order_id}:{t.venue_traded}"] = (missing, value, 0)
                log.error("order %s: %d shares without trade reports; value estimated from the average price",
                          t.coid, missing)

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
        sink.extend(self._changed_updates())
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
            self._absorb_trade(_copy(trade, _TRADE_FIELDS))
        for row in orders:
            self._absorb_order(_copy(row, _ORDER_FIELDS))
        return None


_ORDER_ID_KEYS = frozenset({"coid", "client_order_id"})


def _collect_order_ids(record: Any, into: set[str]) -> None:
    """Add every string held under a ``coid``/``client_order_id`` key, at any depth (a journal record is
    flat; a snapshot record nests the executor's whole state)."""
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _ORDER_ID_KEYS and isinstance(value, str) and value:
                    into.add(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


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
