"""Hedge snapshots: the book as JSON (pydantic at the boundary), and the older format read back.

The current format (``version: 2``) holds the order-id lists (``margin_order_ids``, ``hedge_order_ids``)
and every hedge order's state. The older format held only ``legacy_*`` fields: one margin order id, the
hedge order ids and a ``legacy_hedged`` total that the old design moved at creation. Restoring it fills
the new fields; its hedge orders come back ``UNKNOWN`` and ``legacy_hedged`` stays committed until a
venue lookup by client id tells what each order became, so a restart never hedges twice.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crypto.hedge.book import (
    ExecKind,
    ExecMode,
    HedgeBook,
    HedgeOrder,
    HedgeState,
    MarginLeg,
    Mode,
)
from crypto.hedge.rules import HedgeFilters
from crypto.venue.types import Side

ZERO = Decimal(0)


class SnapshotError(ValueError):
    """A snapshot that is neither format; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A quantity in a snapshot: the bounds of an execution report (``crypto.hedge.book.quantity_refusal``): a
# hand-edited or corrupted file with a negative, 1e30 or 35-digit quantity is refused, not restored.
Qty = Annotated[Decimal, Field(ge=0, lt=Decimal("1e15"), max_digits=24, decimal_places=12, allow_inf_nan=False)]
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024


class MarginLegModel(_Model):
    order_id: str
    filled: Qty
    done: bool
    base_fee: Qty = ZERO  # added after version 2 shipped: a snapshot without it had no base fee


class HedgeOrderModel(_Model):
    client_order_id: str
    side: Side
    qty: Qty
    kind: ExecKind
    attempt: int = Field(default=0, ge=0, le=1_000)
    state: HedgeState
    filled: Qty = ZERO
    price: Decimal | None = None
    venue_order_id: str = ""
    reason: str = ""


class HedgeSnapshot(_Model):
    version: Literal[2] = 2
    strategy_id: str
    symbol: str
    mode: Mode
    exec_mode: ExecMode
    hedge_side: Side
    step: Decimal = Field(gt=0)
    min_qty: Decimal = Field(ge=0)
    min_notional: Decimal = Field(ge=0)
    max_reprices: int = Field(ge=0)
    cap: Qty | None = None
    margin_order_ids: list[str]
    hedge_order_ids: list[str]
    margin: list[MarginLegModel]
    orders: list[HedgeOrderModel]
    seq: int = Field(ge=0)
    legacy_committed: Qty = ZERO
    residual_reported: Decimal | None = Field(default=None, allow_inf_nan=False)
    planned: Qty | None = None
    refusals_in_row: int = Field(default=0, ge=0, le=1_000_000)  # added later: absent = no back-off
    hold_until_ms: int = Field(default=0, ge=0, le=10**14)
    run_tag: str = Field(default="", max_length=8, pattern=r"^[a-z0-9]*$")  # added later: absent = no tag


class LegacySnapshot(_Model):
    """The older format: the old design kept one margin order and a hedged total moved at creation."""

    legacy_strategy_id: str
    legacy_symbol: str
    legacy_hedge_side: Side
    legacy_margin_order_id: str
    legacy_hedge_order_ids: list[str] = []
    legacy_filled: Qty = ZERO
    legacy_hedged: Qty = ZERO


def to_snapshot(book: HedgeBook) -> HedgeSnapshot:
    return HedgeSnapshot(
        strategy_id=book.strategy_id, symbol=book.symbol, mode=book.mode, exec_mode=book.exec_mode,
        hedge_side=book.hedge_side, step=book.filters.step, min_qty=book.filters.min_qty,
        min_notional=book.filters.min_notional, max_reprices=book.max_reprices, cap=book.cap,
        margin_order_ids=list(book.margin_order_ids), hedge_order_ids=list(book.hedge_order_ids),
        margin=[MarginLegModel(order_id=leg.order_id, filled=leg.filled, done=leg.done, base_fee=leg.base_fee)
                for leg in book.margin],
        orders=[HedgeOrderModel(client_order_id=o.client_order_id, side=o.side, qty=o.qty, kind=o.kind,
                                attempt=o.attempt, state=o.state, filled=o.filled, price=o.price,
                                venue_order_id=o.venue_order_id, reason=o.reason) for o in book.orders],
        seq=book.seq, legacy_committed=book.legacy_committed, residual_reported=book.residual_reported,
        planned=book.planned, refusals_in_row=book.refusals_in_row, hold_until_ms=book.hold_until_ms,
        run_tag=book.run_tag,
    )


def dump_snapshot(book: HedgeBook) -> str:
    return to_snapshot(book).model_dump_json()


def _from_v2(snap: HedgeSnapshot) -> HedgeBook:
    if snap.margin_order_ids != [leg.order_id for leg in snap.margin]:
        raise SnapshotError("SNAPSHOT_INCONSISTENT", "margin_order_ids do not match the margin legs")
    if snap.hedge_order_ids != [o.client_order_id for o in snap.orders]:
        raise SnapshotError("SNAPSHOT_INCONSISTENT", "hedge_order_ids do not match the hedge orders")
    return HedgeBook(
        snap.strategy_id, snap.symbol, snap.mode, snap.exec_mode, snap.hedge_side,
        HedgeFilters(snap.step, snap.min_qty, snap.min_notional), snap.max_reprices, snap.cap,
        tuple(MarginLeg(m.order_id, m.filled, m.done, m.base_fee) for m in snap.margin),
        tuple(HedgeOrder(o.client_order_id, o.side, o.qty, o.kind, o.attempt, o.state, o.filled, o.price,
                         o.venue_order_id, o.reason) for o in snap.orders),
        snap.seq, snap.legacy_committed, snap.residual_reported, snap.planned, snap.refusals_in_row,
        snap.hold_until_ms, snap.run_tag,
    )


def _from_legacy(snap: LegacySnapshot, filters: HedgeFilters, exec_mode: ExecMode, max_reprices: int) -> HedgeBook:
    # The legacy orders' sizes and states are unknown here: they count through ``legacy_committed``
    # until looked up (crypto.hedge.book.on_hedge_order / on_hedge_lost resolve them).
    orders = tuple(HedgeOrder(cid, snap.legacy_hedge_side, ZERO, "market", state=HedgeState.UNKNOWN)
                   for cid in snap.legacy_hedge_order_ids)
    return HedgeBook(
        snap.legacy_strategy_id, snap.legacy_symbol, "open", exec_mode, snap.legacy_hedge_side, filters,
        max_reprices, None, (MarginLeg(snap.legacy_margin_order_id, snap.legacy_filled, False),), orders,
        len(orders), snap.legacy_hedged if orders else ZERO,
    )


def restore_snapshot(text: str | bytes, filters: HedgeFilters, exec_mode: ExecMode = "MT",
                     max_reprices: int = 3) -> tuple[HedgeBook, bool]:
    """The book in ``text`` and whether it was the older format. ``filters``/``exec_mode`` fill what the
    older format did not hold (the current exchange info and configuration)."""
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError("SNAPSHOT_TOO_LARGE", f"{len(text)} bytes, at most {MAX_SNAPSHOT_BYTES}")
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:  # 200,000 nested brackets end in RecursionError
        raise SnapshotError("SNAPSHOT_NOT_JSON", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise SnapshotError("SNAPSHOT_NOT_OBJECT", "a snapshot is a JSON object")
    is_legacy = bool(data) and all(str(k).startswith("legacy_") for k in data)
    try:
        if is_legacy:
            return _from_legacy(LegacySnapshot.model_validate(data), filters, exec_mode, max_reprices), True
        return _from_v2(HedgeSnapshot.model_validate(data)), False
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SnapshotError("SNAPSHOT_INVALID", f"{where}: {first['msg']}") from exc
