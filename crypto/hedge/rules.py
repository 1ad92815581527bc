"""The hedge's sizing rules: how much of a fill can go to the USD-M perpetual now, and why not when it cannot.

Pure: Decimal in, a decision out. The same function serves the live strategy, ``hedge simulate`` and the
tests, so the worked case in the docs is the code's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from enum import Enum

from core.execution.filters import round_down
from crypto.venue.types import Side

ZERO = Decimal(0)


class DeferReason(str, Enum):
    """Why a positive delta is not hedged yet (audited ``HEDGE_DEFERRED``); it waits for the next fill."""

    MIN_QTY = "MIN_QTY"  # rounded down to the step, under the UM minQty (or nothing left after rounding)
    NO_MARK = "NO_MARK"  # no mark price: the notional cannot be checked
    MIN_NOTIONAL = "MIN_NOTIONAL"  # mark x qty under the UM minNotional
    BACKOFF = "BACKOFF"  # the venue refused the last hedge with a retryable reason (429, 5xx): wait, then retry


@dataclass(frozen=True)
class HedgeFilters:
    """The UM symbol's filters, from the futures exchange info (minNotional is per symbol on Binance)."""

    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError("step must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError("minimums must not be negative")

    def residual_bound(self, mark: Decimal) -> Decimal:
        """What stays unhedged when the fills stop is strictly below this: the smallest hedgeable quantity,
        max(step, minQty, minNotional / mark) rounded *up* to the step. The issue's max(step, minQty,
        minNotional / mark) is the same number when minQty and minNotional / mark are step multiples (the
        worked case); otherwise a residual can exceed it by less than a step, and this is the true bound."""
        floor = max(self.step, self.min_qty, self.min_notional / mark if mark.is_finite() and mark > 0 else ZERO)
        return round_up(floor, self.step)


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` not below ``value`` (value >= 0)."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


@dataclass(frozen=True)
class NoDelta:
    """Nothing to do: the fill is already covered (a duplicate or reordered report lands here)."""

    delta: Decimal


@dataclass(frozen=True)
class Defer:
    reason: DeferReason
    delta: Decimal  # filled - committed, before rounding
    qty: Decimal  # after rounding down to the step
    notional: Decimal | None  # mark x qty, None without a mark


@dataclass(frozen=True)
class Hedge:
    qty: Decimal  # a multiple of the step, >= minQty, notional >= minNotional
    delta: Decimal


Decision = NoDelta | Defer | Hedge


def decide_hedge(filled: Decimal, committed: Decimal, mark: Decimal | None, filters: HedgeFilters,
                 cap: Decimal | None = None, notional_exempt: bool = False) -> Decision:
    """The hedge for ``filled`` (cumulative, base units) given ``committed`` (hedged + in flight).

    ``cap`` bounds the total (close mode: the UM position to close), so a close never flips the position.
    ``notional_exempt``: a reduce-only order is not held to minNotional on Binance USD-M (-4164 "... unless
    you choose reduce only"); close mode uses it for the last leg once the margin close is done, so the UM
    position does not stay open for want of 100 USDT.
    """
    delta = filled - committed
    if cap is not None:
        delta = min(delta, cap - committed)
    if delta <= 0:
        return NoDelta(delta)
    qty = round_down(delta, filters.step)
    if qty <= 0 or qty < filters.min_qty:
        return Defer(DeferReason.MIN_QTY, delta, qty, None if mark is None or not mark.is_finite() else qty * mark)
    if notional_exempt:
        return Hedge(qty, delta)
    if mark is None or not mark.is_finite() or mark <= 0:  # a NaN mark is no mark
        return Defer(DeferReason.NO_MARK, delta, qty, None)
    notional = qty * mark
    if notional < filters.min_notional:
        return Defer(DeferReason.MIN_NOTIONAL, delta, qty, notional)
    return Hedge(qty, delta)


def opposite(side: Side) -> Side:
    """A margin BUY is hedged by a UM SELL, and the reverse."""
    return "sell" if side == "buy" else "buy"
