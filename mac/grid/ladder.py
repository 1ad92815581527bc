"""Where the grid will trade next: the buy trigger and take-profit prices, computed the way ``core.step`` does.

Pure helpers for the dashboard (and anyone who wants to explain the grid): no IO, no clock. The buy step,
the take-profit, the breaker and the cooling-off are ``mac.grid.rules``' functions, the very ones ``step``
decides with, so a price this module calls a trigger is a price on which ``step`` decides a buy (a test
drives ``step`` at and one tick above it).

The step depends on the deciding bar's own close (``ATR / P * factor``), so "the trigger price" is the
highest price ``P`` on the tick grid with ``P <= anchor * (1 - step(P))``; ``buy_trigger_price`` finds it
by starting from the estimate at the last close and walking tick by tick (a handful of ticks at most).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mac.grid.params import CompiledParams, compile_params
from mac.grid.rules import buy_step, cooling_bars_needed
from mac.grid.rules import is_breaker_on as rules_is_breaker_on
from mac.grid.rules import take_profit_multiplier as rules_take_profit_multiplier
from mac.grid.state import PENDING_SELL
from settings.grid import GridParams

_MAX_WALK = 10_000  # ticks; the estimate is off by a tick or two in practice


def _compiled(params: CompiledParams | GridParams) -> CompiledParams:
    return params if isinstance(params, CompiledParams) else compile_params(params)


def trend_of(slope: float | None) -> str:
    """``UP`` / ``DOWN`` / ``FLAT`` by the sign of the MA slope, as the step's multipliers read it."""
    if slope is None:
        return "FLAT"
    return "UP" if slope > 0 else "DOWN" if slope < 0 else "FLAT"


def is_buy_triggered(
    price: float,
    anchor: float,
    atr: float,
    slope: float,
    n_lots: int,
    params: CompiledParams | GridParams,
    penalty_on: bool,
) -> bool:
    """``price <= anchor * (1 - step)`` exactly as ``core.step`` evaluates it (before breaker and cooling)."""
    return price <= anchor * (1 - buy_step(price, atr, slope, n_lots, _compiled(params), penalty_on))


def buy_trigger_price(
    anchor: float,
    atr: float,
    slope: float,
    n_lots: int,
    params: CompiledParams | GridParams,
    penalty_on: bool,
    close: float | None = None,
    tick: float | None = None,
) -> float | None:
    """The highest tick price at which the next bar's close triggers a buy, or ``None`` if none does.

    ``close`` (default: the anchor) seeds the estimate ``anchor * (1 - step(close))``.
    """
    cp = _compiled(params)
    tick = tick if tick is not None else float(cp.source.tick)
    if anchor <= 0 or tick <= 0 or not math.isfinite(anchor) or not math.isfinite(atr):
        return None
    seed = close if close and close > 0 else anchor
    estimate = anchor * (1 - buy_step(seed, atr, slope, n_lots, cp, penalty_on))
    k = math.floor(estimate / tick + 1e-9)

    def price_at(i: int) -> float:
        return round(i * tick, 10)

    def fires(i: int) -> bool:
        return i > 0 and is_buy_triggered(price_at(i), anchor, atr, slope, n_lots, cp, penalty_on)

    for _ in range(_MAX_WALK):
        if fires(k):
            break
        k -= 1
        if k <= 0:
            return None
    else:
        return None
    for _ in range(_MAX_WALK):
        if not fires(k + 1):
            return price_at(k)
        k += 1
    return price_at(k)


def take_profit_multiplier(slope: float | None, params: CompiledParams | GridParams) -> float:
    """``1 + tp * sell_factor`` with the trend's take-profit multiplier (the penalty never applies)."""
    return rules_take_profit_multiplier(0.0 if slope is None else slope, _compiled(params))


def take_profit_price(buy_price: float, slope: float | None, params: CompiledParams | GridParams) -> float:
    """The lowest price at which a lot bought at ``buy_price`` is sold on the next bar (before T+1 rules)."""
    return buy_price * take_profit_multiplier(slope, params)


def is_breaker_on(atr: float | None, atr_avg: float | None, params: CompiledParams | GridParams) -> bool:
    """The ATR breaker: buying pauses while ``ATR > ATR_AVG * breaker_mult``."""
    if atr is None or atr_avg is None:
        return False
    return rules_is_breaker_on(atr, atr_avg, _compiled(params))


def cooling_bars_left(
    n_lots: int,
    usable_index: int,
    last_flat_index: int,
    rsi: float,
    params: CompiledParams | GridParams,
) -> int:
    """Usable bars until the cooling-off after going flat lets a first lot be bought (0: not cooling)."""
    cp = _compiled(params)
    if not cp.cooling or n_lots:
        return 0
    return max(0, cooling_bars_needed(rsi, cp) - (usable_index - last_flat_index))


def counted_lots(lots: list[dict[str, Any]] | tuple[Any, ...]) -> int:
    """Lots that count for the layer bonus in realistic mode: every lot not being sold."""
    n = 0
    for lot in lots:
        status = lot.get("status") if isinstance(lot, dict) else getattr(lot, "status", None)
        if status != PENDING_SELL:
            n += 1
    return n


@dataclass(frozen=True)
class NextBuy:
    """The next buy trigger of one symbol with and without the step penalty."""

    anchor: float | None
    trigger: float | None  # with the current penalty state
    trigger_without_penalty: float | None
    trigger_with_penalty: float | None
    step: float | None  # at the last close, current penalty state
    trend: str
    breaker_on: bool
    n_lots: int


def next_buy(
    anchor: float | None,
    indicators: dict[str, float],
    lots: list[dict[str, Any]] | tuple[Any, ...],
    params: CompiledParams | GridParams,
    penalty_on: bool,
) -> NextBuy:
    """The next buy trigger from a node's persisted view (anchor, indicators atr/slope/atr_avg/close, lots)."""
    cp = _compiled(params)
    atr = indicators.get("atr")
    slope = indicators.get("slope")
    close = indicators.get("close")
    n = counted_lots(lots)
    trend = trend_of(slope)
    breaker = is_breaker_on(atr, indicators.get("atr_avg"), cp)
    if anchor is None:
        anchor = close  # step() anchors on the first usable bar's close
    if anchor is None or atr is None or slope is None:
        return NextBuy(anchor, None, None, None, None, trend, breaker, n)
    off = buy_trigger_price(anchor, atr, slope, n, cp, False, close)
    on = buy_trigger_price(anchor, atr, slope, n, cp, True, close)
    step_ = buy_step(close or anchor, atr, slope, n, cp, penalty_on)
    return NextBuy(anchor, on if penalty_on else off, off, on, step_, trend, breaker, n)
