"""Our orders as MiniQMT shows them: its status vocabulary, which venue orders are ours, and one order's track.

The venue's vocabulary is translated here and only here: ``XT_ORDER_STATUS`` maps QMT order statuses to
our OrderState, ``XT_ORDER_TYPE`` maps our sides to QMT order types (the two enums overlap numerically:
status 48 "unreported" is not order type 48, so they never share a table).

An order row or trade report is ours (an order placed by an earlier process) only when its remark is a
client_order_id in the executor's journal (``read_journal_ids``) or has one of our id formats
(``OUR_ID_FORMATS``). ``OrderTrack`` is everything known about one of our orders; ``XtOrderBook`` folds the
queued callbacks and query rows into tracks, in any order, and says which tracks changed. Fills are the sum
of trade reports, deduplicated by ``traded_id`` and kept in integer fen (an order push's average price is a
float and cannot give the exact value).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from core.journal import read_records
from core.oms.lost_orders import LostOrderTracker
from core.oms.order_fsm import OrderState
from windows.brokers.protocol import OrderUpdate

log = logging.getLogger("gridbridge.xtquant")

FOREIGN_PREFIX = "xt-"  # client_order_id given to venue orders without our remark (manual orders)

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


def is_our_id_format(remark: str) -> bool:
    """True for a client_order_id in one of the formats gridbridge makes (a node's, the CLI's default)."""
    return any(pattern.fullmatch(remark) for pattern in OUR_ID_FORMATS)


def fen(yuan: Any) -> int:
    """A yuan amount as xtquant gives it (float, str or Decimal) in integer fen, half up."""
    return int((Decimal(str(yuan)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class OrderTrack:
    """Everything known about one of our orders, folded from pushes and queries in any order."""

    client_order_id: str
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
            client_order_id=self.client_order_id, state=state, filled_shares=self.filled, filled_value_fen=self.value_fen,
            fees_fen=self.fees_fen, broker_order_id="" if self.order_id is None else str(self.order_id),
            message=message, code=self.code, side=self.side, shares=self.shares,
        )


class XtOrderBook:
    """Our orders at the venue by client_order_id, folded from callbacks and query rows in any order.

    Callbacks come through ``absorb_callback`` (the adapter's thread, from ``xt_callbacks.CallbackQueue``);
    query rows through ``absorb_order`` / ``absorb_trade``. ``changed_updates`` emits an ``OrderUpdate`` only
    when a track's (state, cumulative fills) changed. ``trade_gaps`` holds the orders whose order row shows
    more traded shares than their trade reports (the adapter fetches the reports, spaced)."""

    def __init__(self, buy_type: int, sell_type: int, trade_gaps: LostOrderTracker,
                 on_order_id: Callable[[OrderTrack], None]) -> None:
        self.tracks: dict[str, OrderTrack] = {}
        self.by_seq: dict[int, str] = {}
        self.journal_ids: frozenset[str] = frozenset()
        self.trade_gaps = trade_gaps
        self._buy_type, self._sell_type = buy_type, sell_type
        self._on_order_id = on_order_id  # the venue named an order (a cancel asked for before may go now)
        self._by_order_id: dict[int, str] = {}
        self._foreign_seen: set[int] = set()

    def is_ours(self, remark: str) -> bool:
        """An order with this remark was placed by gridbridge (this process or an earlier one)."""
        return bool(remark) and (remark in self.tracks or remark in self.journal_ids or is_our_id_format(remark))

    def side_of(self, order_type: Any) -> str:
        if order_type == self._buy_type:
            return "BUY"
        if order_type == self._sell_type:
            return "SELL"
        return ""

    def absorb_callback(self, kind: str, data: dict[str, Any], now: datetime) -> None:
        """Fold one queued callback (any kind but ``disconnected``, which is the session's)."""
        if kind == "order":
            self.absorb_order(data, now)
        elif kind == "trade":
            self.absorb_trade(data)
        elif kind == "async_resp":
            client_order_id = self.by_seq.get(int(data.get("seq") or -1)) or (data.get("order_remark") or None)
            track = self.tracks.get(client_order_id) if client_order_id else None
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
                log.warning("order %s: async response with order_id %s and no message; looking it up",
                            client_order_id, order_id)
        elif kind == "order_error":
            track = self._track_for(data)
            if track is not None:
                track.heard = True
                if track.final_status is None:
                    track.final_status = 57
                track.status_msg = str(data.get("error_msg") or track.status_msg or "order error")
        elif kind == "cancel_error":
            track = self._track_for(data)
            log.warning("cancel refused for %s: %s", track.client_order_id if track else data.get("order_id"),
                        data.get("error_msg"))
            if track is not None:
                track.cancel_wanted = False  # the order push says what really happened to it
        elif kind == "account_status":
            log.info("account status: %s", data)

    def _track_for(self, data: dict[str, Any]) -> OrderTrack | None:
        order_id = int(data.get("order_id") or 0)
        if order_id in self._foreign_seen:
            return None  # someone else's order, even if its remark looks like one of ours
        remark = data.get("order_remark")
        if remark and remark in self.tracks:
            track = self.tracks[remark]
            if order_id > 0 and track.order_id is not None and track.order_id != order_id:
                return None  # another order carrying our remark: never fold it into ours
            return track
        client_order_id = self._by_order_id.get(order_id)
        return self.tracks.get(client_order_id) if client_order_id else None

    def _bind_order_id(self, track: OrderTrack, order_id: int) -> None:
        track.order_id = order_id
        self._by_order_id[order_id] = track.client_order_id
        self._on_order_id(track)

    def absorb_order(self, data: dict[str, Any], now: datetime) -> str | None:
        """Fold one order row (push or query); adopt our orders placed by an earlier process. The
        client_order_id it was folded into, or None for someone else's order."""
        track = self._track_for(data)
        if track is None:
            remark = str(data.get("order_remark") or "")
            if remark in self.tracks or not self.is_ours(remark):
                self._note_foreign(data)
                return None
            track = self.tracks[remark] = OrderTrack(remark)
        track.heard = True
        track.code = track.code or str(data.get("stock_code") or "")
        track.side = track.side or self.side_of(data.get("order_type"))
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
        if track.has_trade_gap and track.client_order_id not in self.trade_gaps:
            self.trade_gaps.wait(track.client_order_id, now)  # fetched if still missing a deadline on
        return track.client_order_id

    def absorb_trade(self, data: dict[str, Any]) -> None:
        """Fold one trade report (push or query), once per ``traded_id``."""
        track = self._track_for(data)
        if track is None:
            remark = str(data.get("order_remark") or "")
            if remark in self.tracks or not self.is_ours(remark):
                return  # a trade of someone else's order
            track = self.tracks[remark] = OrderTrack(remark, code=str(data.get("stock_code") or ""),
                                                     side=self.side_of(data.get("order_type")))
        track.heard = True
        traded_id = str(data.get("traded_id"))
        if traded_id in track.trades:
            return  # a duplicated report
        volume = int(data.get("traded_volume") or 0)
        amount = data.get("traded_amount")
        value = fen(amount) if amount else fen(Decimal(str(data.get("traded_price") or 0)) * volume)
        track.trades[traded_id] = (volume, value, fen(data.get("commission") or 0))
        order_id = int(data.get("order_id") or 0)
        if order_id > 0 and track.order_id is None:
            self._bind_order_id(track, order_id)
        if not track.has_trade_gap:
            self.trade_gaps.forget(track.client_order_id)

    def changed_updates(self) -> list[OrderUpdate]:
        """An update for every track whose (state, cumulative fills) changed since it last spoke."""
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

    def _note_foreign(self, data: dict[str, Any]) -> None:
        order_id = int(data.get("order_id") or 0)
        if order_id > 0 and order_id not in self._foreign_seen:
            self._foreign_seen.add(order_id)
            log.warning("venue order %s (%s) has no gridbridge remark (remark %r): not ours, reported as %s%s",
                        order_id, data.get("stock_code"), data.get("order_remark"), FOREIGN_PREFIX, order_id)

    def foreign_update(self, data: dict[str, Any]) -> OrderUpdate:
        """How a venue order that is not ours is reported (``xt-<order_id>``), never folded into ours."""
        order_id = int(data.get("order_id") or 0)
        self._note_foreign(data)
        state = XT_ORDER_STATUS.get(int(data.get("order_status") or 255)) or OrderState.SENT
        return OrderUpdate(
            client_order_id=f"{FOREIGN_PREFIX}{order_id}", state=state, filled_shares=int(data.get("traded_volume") or 0),
            broker_order_id=str(order_id), message="not placed by gridbridge (no order_remark of ours)",
            code=str(data.get("stock_code") or ""), side=self.side_of(data.get("order_type")),
            shares=int(data.get("order_volume") or 0),
        )


# Journal keys that hold a client_order_id: ``coid`` is the journal's own spelling (records on disk keep it).
_ORDER_ID_KEYS = frozenset({"coid", "client_order_id"})


def read_journal_ids(journal_path: Path) -> frozenset[str]:
    """Every client_order_id the executor's journal at ``journal_path`` names, in its records and in a
    compaction snapshot alike (an absent journal names none)."""
    ids: set[str] = set()
    for record, _size in read_records(journal_path):
        # A compaction snapshot lists every id the state still knows under ``coids`` (its contract for
        # record-scanning readers); the nested scan also covers records and older snapshots.
        listed = record.get("coids") if isinstance(record, dict) else None
        if isinstance(listed, list):
            ids.update(c for c in listed if isinstance(c, str) and c)
        _collect_order_ids(record, ids)
    return frozenset(ids)


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

