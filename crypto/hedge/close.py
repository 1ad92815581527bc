"""Close mode: a "reverse open" derived from the exposure view (spot and UM net positions).

The margin leg is closed first with a limit order; as it fills, the UM leg is closed by the same
incremental rules as an open (step, minQty, minNotional), reduce-only and capped at the UM position, so a
close never flips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from core.execution.filters import round_down
from crypto.hedge.book import ExecMode, HedgeBook, quantity_refusal
from crypto.hedge.rules import HedgeFilters, opposite
from crypto.venue.types import Side

ZERO = Decimal(0)


@dataclass(frozen=True)
class Exposure:
    """Net positions in base units, signed: ``spot`` in the margin account, ``um`` in the perpetual."""

    spot: Decimal
    um: Decimal


class CloseRefusal(str, Enum):
    NOTHING_TO_CLOSE = "NOTHING_TO_CLOSE"  # no spot position in the margin account
    NOT_A_HEDGE = "NOT_A_HEDGE"  # spot and UM on the same side: closing both would not reduce risk
    SPOT_MIN_QTY = "SPOT_MIN_QTY"  # the spot position rounds under the spot minQty
    SPOT_MIN_NOTIONAL = "SPOT_MIN_NOTIONAL"
    NO_PRICE = "NO_PRICE"
    EXPOSURE_INVALID = "EXPOSURE_INVALID"  # a leg that is not a finite number within the report bounds


@dataclass(frozen=True)
class ClosePlan:
    margin_side: Side  # the margin limit close
    margin_qty: Decimal  # rounded down to the spot step
    um_side: Side  # the UM close, reduce-only
    um_cap: Decimal  # |UM position|: the UM close never exceeds it


def plan_close(exposure: Exposure, spot_filters: HedgeFilters, price: Decimal | None,
               allowance: Decimal | None = None) -> ClosePlan | CloseRefusal:
    """The reverse open for ``exposure``; ``price`` (the margin close's limit) checks the spot minNotional.

    ``allowance``: the spot leg closed is at most the UM leg plus this (the UM residual bound: what an open
    may have left unhedged), so spot held for other reasons is not sold by a hedge close. None = all of it.
    """
    if any(quantity_refusal(abs(v)) is not None for v in (exposure.spot, exposure.um)):
        return CloseRefusal.EXPOSURE_INVALID  # NaN or 1e30 from the exposure view: never sized into an order
    if price is not None and (not price.is_finite() or price <= 0):
        price = None  # a NaN or non-positive price is no price
    if exposure.spot == 0:
        return CloseRefusal.NOTHING_TO_CLOSE
    if exposure.um != 0 and (exposure.um > 0) == (exposure.spot > 0):
        return CloseRefusal.NOT_A_HEDGE
    margin_side: Side = "sell" if exposure.spot > 0 else "buy"
    spot = abs(exposure.spot) if allowance is None else min(abs(exposure.spot), abs(exposure.um) + allowance)
    qty = round_down(spot, spot_filters.step)
    if qty <= 0 or qty < spot_filters.min_qty:
        return CloseRefusal.SPOT_MIN_QTY
    if price is None or price <= 0:
        return CloseRefusal.NO_PRICE
    if qty * price < spot_filters.min_notional:
        return CloseRefusal.SPOT_MIN_NOTIONAL
    return ClosePlan(margin_side, qty, opposite(margin_side), abs(exposure.um))


def close_book(strategy_id: str, symbol: str, plan: ClosePlan, exec_mode: ExecMode, um_filters: HedgeFilters,
               max_reprices: int = 3) -> HedgeBook:
    """The book that closes the UM leg as the margin close fills."""
    return HedgeBook(strategy_id, symbol, "close", exec_mode, plan.um_side, um_filters, max_reprices,
                     cap=plan.um_cap, planned=plan.margin_qty)
