"""The engine's durable state: the write-ahead journal's records and the book they build.

Every change is a record appended (fsynced) to ``core.journal.Journal`` *before* it is acted on: an
``intent`` (the client order id and the whole order) before the first send, ``sent`` with the venue's
answer, ``update`` for each report folded, ``cancel_req`` before a cancel, ``lost`` for an unknown outcome
the venue never knew, ``adopt`` when reconciliation takes the venue's position as the truth, ``halt`` for
the kill switch. ``EngineBook.apply`` is the one place a record changes the state, live and at replay, so
a restart rebuilds exactly the state the killed process had. A compacted journal starts with one
``snapshot`` record (``EngineBook.snapshot_record``) that restores the state, the records after it are the
tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.journal import SNAPSHOT_KIND
from core.oms.idempotency import IdSequence
from core.oms.ledger import (
    FundingBill,
    LedgerError,
    LedgerFill,
    LedgerPosition,
    MarginLedger,
    apply_fill,
    bill_key,
    book_funding,
    fill_key,
    settlement_key,
)
from core.oms.order_fsm import OrderState
from crypto.execution.orders import LiveOrder, mark_cancelled, mark_rejected, mark_sent

ZERO = Decimal(0)
# Fills and funding bills are re-read from the venue from a little before the newest one booked; keys older
# than that are never met again and leave the booked set at compaction (the set stays bounded).
LEDGER_OVERLAP_MS = 10 * 60 * 1000


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def intent_record(order: LiveOrder, counter: int) -> dict[str, Any]:
    return {
        "k": "intent", "coid": order.client_order_id, "iid": order.intent_id, "sym": order.symbol,
        "side": order.side, "qty": str(order.qty), "type": order.type, "purpose": order.purpose,
        "px": None if order.price is None else str(order.price),
        "trig": None if order.trigger_price is None else str(order.trigger_price),
        "ro": order.reduce_only, "po": order.post_only, "t": order.created_ms, "n": counter,
    }


def update_record(order: LiveOrder) -> dict[str, Any]:
    return {
        "k": "update", "coid": order.client_order_id, "state": order.state.value, "filled": str(order.filled),
        "avg": None if order.avg_price is None else str(order.avg_price), "fee": str(order.fee),
        "voi": order.venue_order_id, "t": order.updated_ms,
    }


def order_to_dict(order: LiveOrder) -> dict[str, Any]:
    """A whole order (for a snapshot): its intent and its last update in one dict."""
    rec = intent_record(order, 0)
    rec.update(update_record(order))
    rec.update({"k": "order", "cr": order.cancel_requested, "msg": order.message, "t0": order.created_ms})
    return rec


def order_from_dict(rec: Mapping[str, Any]) -> LiveOrder:
    return LiveOrder(
        client_order_id=rec["coid"], intent_id=rec["iid"], symbol=rec["sym"], side=rec["side"],
        qty=Decimal(rec["qty"]), type=rec["type"], purpose=rec["purpose"], price=_dec(rec.get("px")),
        trigger_price=_dec(rec.get("trig")), reduce_only=bool(rec.get("ro")), post_only=bool(rec.get("po")),
        state=OrderState(rec["state"]), filled=Decimal(rec["filled"]), avg_price=_dec(rec.get("avg")),
        fee=Decimal(rec.get("fee") or "0"), venue_order_id=rec.get("voi") or "", created_ms=int(rec["t0"]),
        updated_ms=int(rec.get("t", 0)), cancel_requested=bool(rec.get("cr")), message=rec.get("msg") or "",
    )


@dataclass
class EngineBook:
    """Orders by client id, the latest order of each intent, local positions (base units, signed), the id
    sequence, the last trade time per symbol and the halt flag."""

    prefix: str
    orders: dict[str, LiveOrder] = field(default_factory=dict)
    by_intent: dict[str, str] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    adopted: set[str] = field(default_factory=set)
    last_trade_ms: dict[str, int] = field(default_factory=dict)
    seq: IdSequence | None = None
    halted: bool = False
    records: int = 0
    # What the engine stored beside the book in the last snapshot (its risk snapshot and the audit log's
    # position then): a restart replays only the audit written after it.
    restored_extra: dict[str, Any] = field(default_factory=dict)
    # Money, exact: core's margin ledger (average cost, realised PnL, fees, funding), booked from the venue's
    # own fills and funding bills, each once by its id; ``ledger_since`` is the newest booked time per
    # "fill:SYMBOL" / "funding:SYMBOL" (the next read starts a little before it).
    ledger: MarginLedger = field(default_factory=MarginLedger)
    ledger_since: dict[str, int] = field(default_factory=dict)
    ledger_key_ms: dict[str, int] = field(default_factory=dict)
    ledger_floor: dict[str, int] = field(default_factory=dict)
    fills_seen: dict[str, int] = field(default_factory=dict)  # fill reports folded per symbol (this process)

    def __post_init__(self) -> None:
        if self.seq is None:
            self.seq = IdSequence(self.prefix)

    # -- reading -------------------------------------------------------------------------------------
    def live(self, symbol: str | None = None) -> list[LiveOrder]:
        """Non-terminal orders (NEW ones included: their outcome is unknown until looked up)."""
        return [o for o in self.orders.values() if not o.is_terminal and (symbol is None or o.symbol == symbol)]

    def intent_order(self, intent_id: str) -> LiveOrder | None:
        coid = self.by_intent.get(intent_id)
        return None if coid is None else self.orders.get(coid)

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, ZERO)

    # -- the one place records change the state ------------------------------------------------------
    def apply(self, rec: Mapping[str, Any]) -> None:
        kind = rec.get("k")
        self.records += 1
        if kind == "intent":
            order = LiveOrder(
                client_order_id=rec["coid"], intent_id=rec["iid"], symbol=rec["sym"], side=rec["side"],
                qty=Decimal(rec["qty"]), type=rec["type"], purpose=rec["purpose"], price=_dec(rec.get("px")),
                trigger_price=_dec(rec.get("trig")), reduce_only=bool(rec.get("ro")),
                post_only=bool(rec.get("po")), created_ms=int(rec["t"]), updated_ms=int(rec["t"]),
            )
            self.orders[order.client_order_id] = order
            self.by_intent[order.intent_id] = order.client_order_id
            assert self.seq is not None
            counter = int(rec.get("n", 0))
            if counter > self.seq.counter:
                self.seq = replace(self.seq, counter=counter, last_ms=max(self.seq.last_ms, int(rec["t"])))
            if order.purpose in ("target", "close"):
                self.last_trade_ms[order.symbol] = order.created_ms
        elif kind == "sent":
            order = self.orders.get(rec["coid"])
            if order is None:
                return
            status, t = rec["status"], int(rec.get("t", 0))
            if status == "SENT":
                self.orders[order.client_order_id] = mark_sent(order, rec.get("voi") or "", t)
            elif status == "REJECTED":
                self.orders[order.client_order_id] = mark_rejected(order, rec.get("msg") or "", t)
            # UNKNOWN and RETRY leave the order NEW: it is looked up (and re-sent with the same id).
        elif kind == "update":
            order = self.orders.get(rec["coid"])
            if order is None:
                return
            filled = Decimal(rec["filled"])
            delta = filled - order.filled
            new = replace(
                order, state=OrderState(rec["state"]), filled=filled, avg_price=_dec(rec.get("avg")),
                fee=Decimal(rec.get("fee") or "0"), venue_order_id=rec.get("voi") or order.venue_order_id,
                updated_ms=int(rec.get("t", 0)),
            )
            self.orders[order.client_order_id] = new
            if delta:
                sign = Decimal(1) if order.side == "buy" else Decimal(-1)
                self.positions[order.symbol] = self.position(order.symbol) + sign * delta
                self.fills_seen[order.symbol] = self.fills_seen.get(order.symbol, 0) + 1
        elif kind == "cancel_req":
            order = self.orders.get(rec["coid"])
            if order is not None:
                self.orders[order.client_order_id] = replace(order, cancel_requested=True)
        elif kind == "cancelled":
            order = self.orders.get(rec["coid"])
            if order is not None:
                self.orders[order.client_order_id] = mark_cancelled(order, int(rec.get("t", 0)))
        elif kind == "lost":
            order = self.orders.get(rec["coid"])
            if order is not None:
                self.orders[order.client_order_id] = mark_rejected(order, "LOST", int(rec.get("t", 0)))
        elif kind == "adopt":
            self.positions[rec["sym"]] = Decimal(rec["qty"])
            self.adopted.add(rec["sym"])
            # The venue's fills and bills from this (venue) time on are the ledger's; earlier ones are inside
            # the adopted position.
            self.ledger_floor[rec["sym"]] = int(rec.get("vt", rec["t"]))
        elif kind == "halt":
            self.halted = bool(rec["on"])
        elif kind == "lfill":
            # A venue fill (or the opening of a position adopted at the venue's entry price), once by id.
            try:
                self.ledger = apply_fill(self.ledger, LedgerFill(rec["id"], rec["sym"], Decimal(rec["qty"]),
                                                                 Decimal(rec["px"]), Decimal(rec["fee"]))).ledger
            except LedgerError:
                return  # refused when it was written too (the engine vets before journaling)
            self._ledger_seen(fill_key(rec["id"]), f"fill:{rec['sym']}", int(rec["t"]), rec.get("vt"))
        elif kind == "lfund":
            # "vt" is the venue's settlement time (the settlement's key); "t" the same clamped near our clock
            # (the read watermark: an outlier time never moves it past later bills).
            bill = FundingBill(rec["id"], rec["sym"], Decimal(rec["amt"]), int(rec.get("vt", rec["t"])))
            self.ledger = book_funding(self.ledger, bill).ledger
            self._ledger_seen(bill_key(bill.bill_id), f"funding:{bill.symbol}", int(rec["t"]), bill.ts_ms)
            self.ledger_key_ms[settlement_key(bill.symbol, bill.ts_ms)] = max(int(rec["t"]), bill.ts_ms)
        elif kind == SNAPSHOT_KIND:
            self._restore(rec)

    def _ledger_seen(self, key: str, stream: str, ts_ms: int, venue_ms: int | None = None) -> None:
        # The key is kept while a read can still meet the record: by its venue time (an outlier stamped 2099
        # is met by every read, so its key stays); the watermark moves by the clamped time only.
        self.ledger_key_ms[key] = max(ts_ms, venue_ms or 0)
        self.ledger_since[stream] = max(self.ledger_since.get(stream, 0), ts_ms)

    def ledger_read_from(self, stream: str, floor_ms: int) -> int:
        """Where the next read of ``stream`` starts: a little before the newest booked, never before the
        position was adopted (``floor_ms``)."""
        since = self.ledger_since.get(stream)
        return floor_ms if since is None else max(floor_ms, since - LEDGER_OVERLAP_MS)

    def _ledger_dict(self) -> dict[str, Any]:
        """The ledger for a snapshot, its booked keys cut to those a later read can still meet."""
        oldest = min(self.ledger_since.values(), default=0) - LEDGER_OVERLAP_MS
        keys = {k: t for k, t in self.ledger_key_ms.items() if t >= oldest}
        return {
            "wallet": str(self.ledger.wallet),
            "positions": {s: {"qty": str(p.qty), "cost": str(p.cost), "realised": str(p.realised_pnl),
                              "fees": str(p.fees), "funding": str(p.funding)}
                          for s, p in self.ledger.positions.items()},
            "keys": keys, "since": dict(self.ledger_since), "floor": dict(self.ledger_floor),
        }

    def _ledger_restore(self, data: Mapping[str, Any]) -> None:
        self.ledger_key_ms = {k: int(t) for k, t in data.get("keys", {}).items()}
        self.ledger_since = {k: int(t) for k, t in data.get("since", {}).items()}
        self.ledger_floor = {k: int(t) for k, t in data.get("floor", {}).items()}
        positions = {s: LedgerPosition(s, Decimal(p["qty"]), Decimal(p["cost"]), realised_pnl=Decimal(p["realised"]),
                                       fees=Decimal(p["fees"]), funding=Decimal(p["funding"]))
                     for s, p in data.get("positions", {}).items()}
        self.ledger = MarginLedger(Decimal(data.get("wallet", "0")), positions, frozenset(self.ledger_key_ms))

    def snapshot_record(self, now_ms: int) -> dict[str, Any]:
        """The state every record so far built, as one ``snapshot`` record (``Journal.compact``): orders
        not yet ended, positions, adopted symbols, last trade times, the id sequence, the halt flag. Ended
        orders are dropped: they change nothing any more."""
        assert self.seq is not None
        return {
            "k": SNAPSHOT_KIND, "t": now_ms, "records": self.records,
            "orders": [order_to_dict(o) for o in self.live()],
            "positions": {s: str(q) for s, q in self.positions.items()}, "adopted": sorted(self.adopted),
            "last_trade": dict(self.last_trade_ms), "seq": [self.seq.counter, self.seq.last_ms],
            "halted": self.halted, "ledger": self._ledger_dict(),
        }

    def _restore(self, rec: Mapping[str, Any]) -> None:
        self.orders = {o.client_order_id: o for o in (order_from_dict(d) for d in rec.get("orders", []))}
        self.by_intent = {o.intent_id: o.client_order_id for o in self.orders.values()}
        self.positions = {s: Decimal(q) for s, q in rec.get("positions", {}).items()}
        self.adopted = set(rec.get("adopted", []))
        self.last_trade_ms = {s: int(t) for s, t in rec.get("last_trade", {}).items()}
        counter, last_ms = rec.get("seq", [0, 0])
        self.seq = IdSequence(self.prefix, int(counter), int(last_ms))
        self.halted = bool(rec.get("halted"))
        self._ledger_restore(rec.get("ledger") or {})
        self.restored_extra = {k: rec[k] for k in ("risk", "audit_pos") if k in rec}

    def apply_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            self.apply(rec)
