"""The optional second layer: a trend-filtered neutral grid on the perp (off by default; backtest only).

- **Filter**: ADX(14) on hourly bars of the mark (Wilder's smoothing); a grid starts at an hour's close only
  when ADX < 25 (no trend), centred on that close, ``levels`` levels spread over +-``range_pct``.
- **Neutral**: the position is a function of the level the price is in: long below the centre, short
  above, one equal ``qty`` per level crossed (no martingale, no averaging down: a level never trades more
  than another); fills at the level prices as resting limit orders (maker fee).
- **Stop**: every grid position has one, the range exit: the first minute the mark leaves the range the grid
  is flattened at that minute's price (taker fee) and stopped; a new grid needs ADX < 25 again.
- **Cap**: the largest position the grid can hold (levels / 2 x qty) needs at most ``capital_fraction``
  (<= 30 %) of the capital as margin at the strategy's leverage (<= 3x).

Live operation needs the grid on a separate (sub-)account: in OKX's net mode a grid on the same perp would
net against the carry short. The live engine refuses ``grid.enabled`` (``GRID_LAYER_BACKTEST_ONLY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

HOUR_MIN = 60


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's ADX; NaN until 2 x ``period`` bars have been seen."""
    n = close.size
    out = np.full(n, np.nan)
    if n < 2 * period + 1:
        return out
    up = high[1:] - high[:-1]
    down = low[:-1] - low[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = np.maximum.reduce([high[1:] - low[1:], np.abs(high[1:] - close[:-1]), np.abs(low[1:] - close[:-1])])

    def wilder(x: np.ndarray) -> np.ndarray:
        s = np.empty_like(x)
        s[: period - 1] = np.nan
        s[period - 1] = x[:period].sum()
        for i in range(period, x.size):
            s[i] = s[i - 1] - s[i - 1] / period + x[i]
        return s

    atr, pdm, mdm = wilder(tr), wilder(plus_dm), wilder(minus_dm)
    with np.errstate(invalid="ignore", divide="ignore"):
        pdi = 100 * pdm / atr
        mdi = 100 * mdm / atr
        dx = 100 * np.abs(pdi - mdi) / (pdi + mdi)
    adx_ = np.full(dx.size, np.nan)
    first = 2 * period - 2
    if first < dx.size:
        adx_[first] = np.nanmean(dx[period - 1: first + 1])
        for i in range(first + 1, dx.size):
            adx_[i] = (adx_[i - 1] * (period - 1) + dx[i]) / period
    out[1:] = adx_
    return out


def hourly_bars(mark: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hours = mark.size // HOUR_MIN
    m = mark[: hours * HOUR_MIN].reshape(hours, HOUR_MIN)
    return m.max(axis=1), m.min(axis=1), m[:, -1]


@dataclass(frozen=True)
class GridPlan:
    center: float
    lower: float
    upper: float
    spacing: float
    levels: int
    qty: float  # base units per level

    @property
    def half(self) -> int:
        return max(1, self.levels // 2)

    def level(self, k: int) -> float:
        """The price of level ``k`` (k > 0 below the centre, k < 0 above)."""
        return self.center - k * self.spacing


def plan_grid(center: float, capital: float, fraction: float, leverage: float, levels: int,
              range_pct: float) -> GridPlan:
    """Levels over +-``range_pct``; ``qty`` so that the fullest position (levels / 2 levels) needs at most
    ``fraction`` of ``capital`` as margin at ``leverage``."""
    half = max(1, levels // 2)
    max_notional = capital * fraction * leverage
    qty = max_notional / (half * center * (1 + range_pct))
    spacing = center * range_pct / half
    return GridPlan(center, center * (1 - range_pct), center * (1 + range_pct), spacing, levels, qty)


@dataclass(frozen=True)
class GridResult:
    equity: np.ndarray  # the grid allocation's equity over the minutes
    trades: int
    grids: int
    stops: int
    fees: float
    max_margin: float  # the most margin the grid's position needed (stays within its cap)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def simulate_grid(mark: np.ndarray, capital: float, fraction: float, leverage: float, levels: int,
                  range_pct: float, adx_max: float, maker_fee: float, taker_fee: float,
                  adx_period: int = 14, chunk: int = 1440) -> GridResult:
    """The grid layer over a minute mark path (floats: a research figure, not the engine's money).

    A grid holding ``k`` levels (signed: long below the centre) rests a buy at level k + 1 and a sell at level
    k - 1; a fill moves ``k`` by one at that level's price (maker fee). That is the grid's hysteresis: every
    round trip buys one spacing below where it sells."""
    n = mark.size
    high, low, close = hourly_bars(mark)
    trend = adx(high, low, close, adx_period)
    cash, k_pos = 0.0, 0
    eq = np.zeros(n)
    trades = grids = stops = 0
    fees = max_margin = 0.0
    i, filled = 0, 0
    while i < n:
        hour = i // HOUR_MIN
        if hour >= trend.size:
            break
        if not trend[hour] < adx_max:
            i = (hour + 1) * HOUR_MIN
            continue
        t = (hour + 1) * HOUR_MIN  # decided at the hour's close
        if t >= n:
            break
        plan = plan_grid(float(close[hour]), capital, fraction, leverage, levels, range_pct)
        grids += 1
        eq[filled:t] = cash
        k_pos = 0
        stopped = False
        while t < n and not stopped:
            buy_px = plan.level(k_pos + 1) if k_pos + 1 <= plan.half else -np.inf
            sell_px = plan.level(k_pos - 1) if k_pos - 1 >= -plan.half else np.inf
            win = mark[t:t + chunk]
            j = _first((win <= buy_px) | (win >= sell_px) | (win < plan.lower) | (win > plan.upper))
            end = t + (j if j is not None else win.size)
            eq[t:end] = cash + k_pos * plan.qty * win[: end - t]
            if j is None:
                t = end
                continue
            px = float(mark[end])
            if px < plan.lower or px > plan.upper:
                fee = abs(k_pos) * plan.qty * px * taker_fee
                cash += k_pos * plan.qty * px - fee
                fees += fee
                trades += 1 if k_pos else 0
                k_pos, stopped = 0, True
                stops += 1
                eq[end] = cash
                t = end + 1
                break
            step = 1 if px <= buy_px else -1
            level_px = buy_px if step == 1 else sell_px
            fee = plan.qty * level_px * maker_fee
            cash += -step * plan.qty * level_px - fee
            fees += fee
            trades += 1
            k_pos += step
            max_margin = max(max_margin, abs(k_pos) * plan.qty * px / leverage)
            eq[end] = cash + k_pos * plan.qty * px
            t = end + 1
        filled = t
        i = (t // HOUR_MIN + 1) * HOUR_MIN if stopped else n
    if filled < n:
        eq[filled:] = cash + k_pos * plan.qty * mark[filled:] if grids and k_pos else cash
    return GridResult(equity=capital * fraction + eq, trades=trades, grids=grids, stops=stops, fees=fees,
                      max_margin=max_margin)


def grid_capital(capital: Decimal, fraction: Decimal) -> Decimal:
    return capital * fraction
