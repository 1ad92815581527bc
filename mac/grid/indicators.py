"""Incremental indicators of reference-grid.md: TR/ATR, MA and its slope, ATR_AVG and RSI.

Each bar costs O(window) with windows of 14 and 60 values and no look at the rest of the series. The
reference defines every mean as a *simple* mean evaluated in IEEE doubles, so we do not keep running sums
(adding the newest and subtracting the oldest drifts from ``sum(window) / n`` in the last bits, and a
trigger that lands on a price can flip). Instead each mean re-adds its small window oldest-to-newest,
left to right, exactly like ``sum(last_n) / n`` written in a straightforward loop.

``IndicatorState`` is a frozen value; ``update_indicators`` returns a new one and the bar's
``IndicatorValues`` (``None`` while warming up: the bar is then skipped by the grid).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import reduce
from operator import add
from typing import NamedTuple

if sys.version_info < (3, 12):
    left_sum = sum
    """Plain left-to-right double addition (builtin ``sum`` before Python 3.12)."""
else:  # pragma: no cover - Python 3.12 made builtin sum() compensated (Neumaier); keep plain order.

    def left_sum(values):  # type: ignore[no-untyped-def]
        return reduce(add, values, 0.0)


class IndicatorValues(NamedTuple):
    """What the grid reads on a usable bar. ``usable_index`` counts usable bars from 0."""

    atr: float
    slope: float
    atr_avg: float
    rsi: float
    usable_index: int


@dataclass(frozen=True, slots=True)
class IndicatorPeriods:
    atr: int = 14
    ma: int = 60
    slope_lag: int = 5
    slope_span: int = 3
    atr_avg: int = 60
    rsi: int = 14

    @property
    def alpha(self) -> float:
        return 2.0 / (self.slope_span + 1.0)


@dataclass(frozen=True, slots=True)
class IndicatorState:
    periods: IndicatorPeriods = IndicatorPeriods()
    bars: int = 0
    prev_close: float | None = None
    trs: tuple[float, ...] = ()
    closes: tuple[float, ...] = ()
    mas: tuple[float, ...] = ()  # the last slope_lag + 1 moving averages
    slope: float | None = None
    atrs: tuple[float, ...] = ()  # the ATRs *before* the current bar, at most atr_avg of them
    gains: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()
    usable: int = 0  # usable bars seen so far


def _push(window: tuple[float, ...], value: float, size: int) -> tuple[float, ...]:
    if len(window) >= size:
        return window[len(window) - size + 1 :] + (value,)
    return window + (value,)


def rsi_from_means(gain: float, loss: float) -> float:
    if loss == 0:
        return 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def update_indicators(
    state: IndicatorState, high: float, low: float, close: float
) -> tuple[IndicatorState, IndicatorValues | None]:
    """Feed one bar; return the new state and the bar's values, or ``None`` while any input is undefined."""
    p = state.periods
    prev = state.prev_close
    trs, gains, losses = state.trs, state.gains, state.losses
    if prev is not None:
        tr = max(high - low, abs(high - prev), abs(low - prev))
        trs = _push(trs, tr, p.atr)
        diff = close - prev
        gains = _push(gains, diff if diff > 0 else 0.0, p.rsi)
        losses = _push(losses, -diff if diff < 0 else 0.0, p.rsi)
    closes = _push(state.closes, close, p.ma)

    atr: float | None = left_sum(trs) / p.atr if len(trs) == p.atr else None
    mas = state.mas
    slope = state.slope
    if len(closes) == p.ma:
        ma = left_sum(closes) / p.ma
        mas = _push(mas, ma, p.slope_lag + 1)
        if len(mas) == p.slope_lag + 1:
            base = mas[0]
            raw = (ma - base) / base
            slope = raw if slope is None else p.alpha * raw + (1.0 - p.alpha) * slope
    atrs = state.atrs
    atr_avg = left_sum(atrs) / p.atr_avg if len(atrs) == p.atr_avg else None
    if atr is not None:
        atrs = _push(atrs, atr, p.atr_avg)

    usable = state.usable
    values: IndicatorValues | None = None
    if atr is not None and slope is not None and atr_avg is not None:
        rsi = (
            rsi_from_means(left_sum(gains) / p.rsi, left_sum(losses) / p.rsi)
            if len(gains) == p.rsi
            else 100.0
        )
        values = IndicatorValues(atr, slope, atr_avg, rsi, usable)
        usable += 1
    new_state = IndicatorState(p, state.bars + 1, close, trs, closes, mas, slope, atrs, gains, losses, usable)
    return new_state, values
