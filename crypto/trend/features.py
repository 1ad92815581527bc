"""Pure bar features for the trend loop: EMA, ATR, realised volatility and a Donchian breakout.

Every function takes plain sequences of ``Decimal`` (or ``Bar``) oldest first and returns a value per bar
(``None`` until the window is full), so a backtest and the live loop compute the same numbers from the same
bars. Exact Decimal arithmetic throughout: the square root and logarithm use the Decimal context (28
significant digits), so a feature never depends on the platform's float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
TWO = Decimal(2)


@dataclass(frozen=True)
class Bar:
    """One closed bar (OHLCV); ``ts_ms`` is the bar's open time in epoch milliseconds."""

    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO

    def __post_init__(self) -> None:
        if not (self.low <= min(self.open, self.close) and max(self.open, self.close) <= self.high):
            raise ValueError(f"bar {self.ts_ms}: open/close outside [low, high]")
        if self.low <= 0:
            raise ValueError(f"bar {self.ts_ms}: prices must be positive")


def ema(values: Sequence[Decimal], span: int) -> list[Decimal | None]:
    """Exponential moving average with alpha = 2 / (span + 1), seeded by the simple mean of the first ``span``
    values (so the first value is not over-weighted); ``None`` before ``span`` values."""
    if span < 1:
        raise ValueError("span must be >= 1")
    out: list[Decimal | None] = []
    alpha = TWO / Decimal(span + 1)
    current: Decimal | None = None
    for i, value in enumerate(values):
        if i + 1 < span:
            out.append(None)
            continue
        if current is None:
            current = sum(values[i + 1 - span : i + 1], ZERO) / Decimal(span)
        else:
            current = current + alpha * (value - current)
        out.append(current)
    return out


def true_ranges(bars: Sequence[Bar]) -> list[Decimal]:
    """max(high - low, |high - previous close|, |low - previous close|); the first bar's is high - low."""
    out: list[Decimal] = []
    for i, bar in enumerate(bars):
        if i == 0:
            out.append(bar.high - bar.low)
        else:
            prev = bars[i - 1].close
            out.append(max(bar.high - bar.low, abs(bar.high - prev), abs(bar.low - prev)))
    return out


def atr(bars: Sequence[Bar], period: int) -> list[Decimal | None]:
    """Wilder's average true range: mean of the first ``period`` true ranges, then (prev*(n-1) + tr) / n."""
    if period < 1:
        raise ValueError("period must be >= 1")
    trs = true_ranges(bars)
    out: list[Decimal | None] = []
    current: Decimal | None = None
    n = Decimal(period)
    for i, tr in enumerate(trs):
        if i + 1 < period:
            out.append(None)
            continue
        current = sum(trs[: period], ZERO) / n if current is None else (current * (n - ONE) + tr) / n
        out.append(current)
    return out


def log_returns(closes: Sequence[Decimal]) -> list[Decimal]:
    """ln(close_t / close_{t-1}) for t >= 1 (one fewer value than closes)."""
    return [(closes[i] / closes[i - 1]).ln() for i in range(1, len(closes))]


def realised_vol(closes: Sequence[Decimal], window: int, periods_per_year: int) -> list[Decimal | None]:
    """Annualised realised volatility: the sample standard deviation of the last ``window`` log returns times
    sqrt(periods_per_year); ``None`` until ``window`` returns exist (value i uses closes up to i)."""
    if window < 2:
        raise ValueError("window must be >= 2")
    rets = log_returns(closes)
    scale = Decimal(periods_per_year).sqrt()
    out: list[Decimal | None] = [None]  # the first close has no return
    for i in range(len(rets)):
        if i + 1 < window:
            out.append(None)
            continue
        chunk = rets[i + 1 - window : i + 1]
        mean = sum(chunk, ZERO) / Decimal(window)
        var = sum(((r - mean) ** 2 for r in chunk), ZERO) / Decimal(window - 1)
        out.append(var.sqrt() * scale)
    return out[: len(closes)]


def breakout(bars: Sequence[Bar], window: int) -> list[int | None]:
    """Donchian breakout: +1 when the close exceeds the highest high of the previous ``window`` bars, -1 when
    it is under their lowest low, 0 otherwise; ``None`` until ``window`` previous bars exist."""
    if window < 1:
        raise ValueError("window must be >= 1")
    out: list[int | None] = []
    for i, bar in enumerate(bars):
        if i < window:
            out.append(None)
            continue
        prior = bars[i - window : i]
        if bar.close > max(b.high for b in prior):
            out.append(1)
        elif bar.close < min(b.low for b in prior):
            out.append(-1)
        else:
            out.append(0)
    return out
