"""Forced reduction: which grid lots the executor sells in COOLDOWN and under Force Reduce (pure).

The risk design makes two states *reduce*, not only refrain from buying:

- **COOLDOWN** sells grid lots, oldest first, until the grid exposure (the cost basis of the open lots,
  vault ``used``) is at most ``cooldown_exposure_share`` (default 50 %) of the exposure held when the
  cooldown began (``RiskSnapshot.cooldown_exposure``, latched by ``core.risk.evaluate``).
- **Force Reduce** (the kill switch; latched until a manual Resume) sells every grid lot that can be sold.

Both sell whole lots (each lot's remaining shares, naming the lot it releases) at a marketable limit: the
best bid, or the lower daily limit when there is no bid, floored to the tick and inside the daily limits.
Both stay within T+1 and never sell the base position: a code's sells are bounded by the venue's
``can_use_volume`` less the sells it has not seen yet, *and* by its volume above the base less every open
sell's unfilled shares, so the position never drops below the base even when resting sells fill too. This
is the grid core's rule, one function for both: ``shared_schema.ledger_math.sell_budget``.
Lots already in a sell (the node's or ours) count as leaving and are not touched; a lot whose last
reduction attempt ended without selling waits ``retry`` before it is tried again (``cooling``).

``plan_reduction`` decides; the executor shell only turns the plan into signals that go through the same
pipeline, vault and journal as a node's sells (``reduction_signal``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from typing import Any

from core.risk.snapshot import RiskSnapshot
from core.risk.state import RiskState
from settings.config import MarketConfig
from shared_schema.ledger_math import sell_budget as ledger_sell_budget
from shared_schema.order_ids import base36
from windows.market_rules import is_in_session, price_limits

MAX_BACKOFF_DOUBLINGS = 5
REDUCTION_ID_PREFIX = "RDX"
"""Signal and client order ids of executor-originated reduction sells start with this (nodes use ``G``)."""


class ReductionMode(str, Enum):
    COOLDOWN = "COOLDOWN"  # down to a share of the exposure at the cooldown's start
    FORCE_REDUCE = "FORCE_REDUCE"  # every sellable grid lot


def reduction_mode(snapshot: RiskSnapshot) -> ReductionMode | None:
    """The forced reduction the risk snapshot asks for now, or None. A halt stops everything; stale data
    or a broken terminal (``data_ok``/``trade_ok`` false) never sells on prices nobody can see."""
    if snapshot.halted or not snapshot.data_ok or not snapshot.trade_ok:
        return None
    if snapshot.force_reduce_all:
        return ReductionMode.FORCE_REDUCE
    if snapshot.state is RiskState.COOLDOWN:
        return ReductionMode.COOLDOWN
    return None


@dataclass(frozen=True)
class GridLot:
    """One open grid lot as the vault holds it (the shell passes them oldest first)."""

    client_order_id: str
    code: str
    shares: int  # shares the lot still holds
    cost_fen: int  # its cost basis still in the pool (vault ``used``)
    layer_index: int = 0


@dataclass(frozen=True)
class Book:
    """What the planner needs of a code's quote."""

    bid: Decimal | None  # best bid; None or 0 when nobody bids
    prev_close: Decimal


@dataclass(frozen=True)
class Holding:
    """The venue's position in a code, the part of it that is the long-term base, and our pending sells."""

    volume: int
    can_use_volume: int  # sellable today (T+1), resting sells already excluded
    base: int
    unfilled_sells: int = 0  # unfilled shares of every open sell of the code (resting at the venue or not)
    unplaced_sells: int = 0  # of those, shares of sells the venue has not seen (unsent, unknown outcome)

    @property
    def sell_budget(self) -> int:
        """Shares that may be sold: within T+1 and never below the base position once every open sell has
        filled; the grid core's rule (``shared_schema.ledger_math.sell_budget``)."""
        return ledger_sell_budget(self.can_use_volume, self.unplaced_sells, self.volume, self.base,
                                  self.unfilled_sells)


@dataclass(frozen=True)
class ReductionSell:
    lot: GridLot
    price: Decimal


@dataclass(frozen=True)
class ReductionPlan:
    mode: ReductionMode
    sells: tuple[ReductionSell, ...] = ()
    held_back: tuple[tuple[str, str], ...] = ()  # (lot client_order_id, reason code)
    exposure_fen: int = 0  # exposure once the lots already in a sell are gone
    target_fen: int | None = None  # COOLDOWN only
    after_fen: int = 0  # exposure once this plan's sells are done too

    @property
    def is_done(self) -> bool:
        """Nothing left to reduce (COOLDOWN at its target, or no lot left outside a sell)."""
        return not self.sells and not self.held_back


def marketable_sell_price(book: Book, market: MarketConfig) -> Decimal:
    """A limit that sells now: the best bid (or the lower limit with no bid), floored to the tick and kept
    inside the daily limits."""
    low, high = price_limits(book.prev_close, market)
    price = book.bid if book.bid is not None and book.bid > 0 else low
    price = (price / market.tick).to_integral_value(rounding=ROUND_FLOOR) * market.tick
    return min(max(price, low), high)


def plan_reduction(
    mode: ReductionMode,
    lots: Sequence[GridLot],
    *,
    now: datetime,
    market: MarketConfig,
    books: Mapping[str, Book],
    holdings: Mapping[str, Holding],
    in_sell: frozenset[str] = frozenset(),
    cooling: frozenset[str] = frozenset(),
    target_fen: int | None = None,
) -> ReductionPlan:
    """The sells that carry out ``mode`` now.

    ``lots`` oldest first; ``in_sell`` lots some active sell already releases (they count as gone);
    ``cooling`` lots whose last reduction attempt failed recently (held back, still counted). COOLDOWN stops
    as soon as the exposure is at or under ``target_fen`` and sells nothing while the target is unknown.
    A code without a holding (positions unknown) or a quote sells nothing: the base cannot be proven safe.
    """
    exposure = sum(lot.cost_fen for lot in lots if lot.client_order_id not in in_sell)
    if mode is ReductionMode.COOLDOWN and target_fen is None:
        return ReductionPlan(mode, exposure_fen=exposure, after_fen=exposure)
    budget = {code: holding.sell_budget for code, holding in holdings.items()}
    remaining = exposure
    sells: list[ReductionSell] = []
    held: list[tuple[str, str]] = []
    for lot in lots:
        if lot.client_order_id in in_sell or lot.shares <= 0:
            continue
        if mode is ReductionMode.COOLDOWN and target_fen is not None and remaining <= target_fen:
            break
        reason = _hold_reason(lot, now, market, books, budget, cooling)
        if reason is not None:
            held.append((lot.client_order_id, reason))
            continue
        budget[lot.code] -= lot.shares
        remaining -= lot.cost_fen
        sells.append(ReductionSell(lot, marketable_sell_price(books[lot.code], market)))
    return ReductionPlan(mode, tuple(sells), tuple(held), exposure, target_fen, remaining)


def _hold_reason(
    lot: GridLot,
    now: datetime,
    market: MarketConfig,
    books: Mapping[str, Book],
    budget: Mapping[str, int],
    cooling: frozenset[str],
) -> str | None:
    if lot.client_order_id in cooling:
        return "RETRY_WAIT"
    if not is_in_session(now, market, lot.code):
        return "OUTSIDE_SESSION"
    if lot.code not in books:
        return "NO_QUOTE"
    if lot.code not in budget:
        return "POSITIONS_UNKNOWN"
    if lot.shares > budget[lot.code]:
        return "NOT_SELLABLE_T1"
    return None


# --- ids and signals ------------------------------------------------------------------------------------


def reduction_id(lot_client_order_id: str, attempt: int) -> str:
    """Deterministic id of the ``attempt``-th reduction sell of a lot: ``RDX`` + 8 base-36 chars of the
    lot id's hash + the attempt in base 36. The same lot and attempt always give the same id, so a
    restart that replays the journal finds the sell it already decided and never sends it twice."""
    digest = int.from_bytes(hashlib.sha256(lot_client_order_id.encode()).digest()[:8], "big")
    return f"{REDUCTION_ID_PREFIX}{base36(digest)[:8].rjust(8, '0')}{base36(attempt)}"


def is_reduction_id(signal_id: str) -> bool:
    return signal_id.startswith(REDUCTION_ID_PREFIX)


@dataclass(frozen=True)
class Attempt:
    """The latest reduction attempt of a lot, as the executor's state records it."""

    number: int
    final: bool
    ended_at: datetime | None


def next_attempt(
    lot_client_order_id: str, latest: Attempt | None, now: datetime, retry: timedelta
) -> tuple[int | None, bool]:
    """(attempt number to use now or None, whether the lot is cooling). An attempt still open keeps the lot
    busy; a finished one lets the lot go again once ``retry`` x 2^attempt (at most x 32) has passed since it
    ended, so a lot the venue keeps refusing is retried ever more rarely instead of every minute."""
    if latest is None:
        return 0, False
    if not latest.final:
        return None, False
    wait = retry * 2 ** min(latest.number, MAX_BACKOFF_DOUBLINGS)
    if latest.ended_at is not None and now - latest.ended_at < wait:
        return None, True
    return latest.number + 1, False


def reduction_signal(
    sell: ReductionSell, mode: ReductionMode, attempt: int, now: datetime, expiry: timedelta
) -> dict[str, Any]:
    """The SELL, as the payload a node would write: it goes through the pipeline, vault and journal."""
    signal_id = reduction_id(sell.lot.client_order_id, attempt)
    return {
        "signal_id": signal_id,
        "client_order_id": signal_id,
        "code": sell.lot.code,
        "direction": "SELL",
        "price": float(sell.price),
        "shares": sell.lot.shares,
        "layer_index": sell.lot.layer_index,
        "release_client_order_ids": [sell.lot.client_order_id],
        "created_at": now.isoformat(),
        "expires_at": (now + expiry).isoformat(),
        "source": f"executor:{mode.value}",
    }


