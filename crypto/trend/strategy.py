"""Trend plus volatility target, per symbol, and the fixed-weight portfolio that turns it into target
positions (base units) clipped by the risk budget.

Pure: bars, equity, prices and the risk budget in, ``TargetPosition``s out. The direction is the EMA
cross (fast over slow: long, under: short); a new direction is only entered on a Donchian breakout the
same way (so a cross in a range does not open), and held until the cross turns. The size is the
volatility target: weight x equity x (target_vol / realised_vol), the scalar capped at ``max_vol_scalar``.
The portfolio's gross notional is then capped at ``max_gross_leverage`` x equity x risk budget (every leg
scaled by the same factor, so the weights keep their ratio).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crypto.trend.features import Bar, atr, breakout, ema, realised_vol

ZERO = Decimal(0)
ONE = Decimal(1)


class TrendConfig(BaseModel):
    """The strategy's knobs; defaults suit hourly bars."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast_span: int = Field(default=12, ge=1)
    slow_span: int = Field(default=48, ge=2)
    breakout_window: int = Field(default=24, ge=1)
    atr_period: int = Field(default=14, ge=1)
    vol_window: int = Field(default=48, ge=2)
    periods_per_year: int = Field(default=24 * 365, ge=1)
    target_vol: Decimal = Decimal("0.40")  # annualised, per leg
    max_vol_scalar: Decimal = Decimal("2")
    stop_atr_multiple: Decimal = Decimal("3")  # protective stop distance
    weights: dict[str, Decimal] = Field(
        default_factory=lambda: {"BTC/USDT:USDT": Decimal("0.5"), "ETH/USDT:USDT": Decimal("0.5")}
    )
    max_gross_leverage: Decimal = Decimal("2")

    @model_validator(mode="after")
    def _sane(self) -> TrendConfig:
        if self.fast_span >= self.slow_span:
            raise ValueError("fast_span must be shorter than slow_span")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values(), ZERO) > ONE:
            raise ValueError("weights must be >= 0 and sum to at most 1")
        if self.target_vol <= 0 or self.max_vol_scalar <= 0 or self.max_gross_leverage <= 0:
            raise ValueError("target_vol, max_vol_scalar and max_gross_leverage must be positive")
        return self

    @property
    def warmup_bars(self) -> int:
        """Bars needed before the strategy says anything."""
        return max(self.slow_span, self.breakout_window + 1, self.atr_period, self.vol_window + 1)


@dataclass(frozen=True)
class TrendSignal:
    """One symbol's view on its last bar: direction (-1, 0, +1), the vol scalar and a stop distance."""

    symbol: str
    direction: int
    vol_scalar: Decimal
    close: Decimal
    atr: Decimal | None
    realised_vol: Decimal | None

    def stop_price(self, multiple: Decimal) -> Decimal | None:
        """The protective stop: ``multiple`` ATRs on the losing side of the close (None when flat)."""
        if self.direction == 0 or self.atr is None:
            return None
        return self.close - Decimal(self.direction) * multiple * self.atr


@dataclass(frozen=True)
class TargetPosition:
    """What the execution engine should hold: signed base units (negative = short)."""

    symbol: str
    qty: Decimal
    stop_price: Decimal | None = None
    reason: str = ""


def trend_signal(symbol: str, bars: Sequence[Bar], cfg: TrendConfig) -> TrendSignal:
    """The direction and size scalar on the last of ``bars`` (flat before the warm-up)."""
    if not bars:
        raise ValueError(f"{symbol}: no bars")
    closes = [b.close for b in bars]
    last = bars[-1]
    if len(bars) < cfg.warmup_bars:
        return TrendSignal(symbol, 0, ZERO, last.close, None, None)
    fast, slow = ema(closes, cfg.fast_span), ema(closes, cfg.slow_span)
    brk = breakout(bars, cfg.breakout_window)
    direction = 0
    for f, s, b in zip(fast, slow, brk, strict=True):
        if f is None or s is None:
            continue
        cross = 1 if f > s else -1 if f < s else 0
        if cross != direction:
            # A direction ends as soon as the cross leaves it; a new one starts only on a breakout its way.
            direction = cross if b == cross else 0
    vols = realised_vol(closes, cfg.vol_window, cfg.periods_per_year)
    vol = vols[-1]
    atrs = atr(bars, cfg.atr_period)
    scalar = ZERO if not vol else min(cfg.target_vol / vol, cfg.max_vol_scalar)
    return TrendSignal(symbol, direction, scalar, last.close, atrs[-1], vol)


def portfolio_targets(
    signals: Mapping[str, TrendSignal],
    equity: Decimal,
    risk_budget: Decimal,
    cfg: TrendConfig,
    prices: Mapping[str, Decimal] | None = None,
) -> list[TargetPosition]:
    """Fixed-weight legs sized by their vol scalar, the whole clipped to the gross cap times the risk budget.

    ``prices`` (mark prices) convert notionals to base units; a symbol's own close is used when absent.
    Symbols without a weight get no target. A zero budget or equity gives flat targets.
    """
    budget = max(ZERO, min(risk_budget, ONE))
    legs: dict[str, Decimal] = {}
    for symbol, weight in sorted(cfg.weights.items()):
        sig = signals.get(symbol)
        if sig is None or equity <= 0:
            legs[symbol] = ZERO
            continue
        legs[symbol] = equity * weight * sig.vol_scalar * Decimal(sig.direction) * budget
    gross = sum((abs(n) for n in legs.values()), ZERO)
    cap = cfg.max_gross_leverage * max(equity, ZERO) * budget
    factor = cap / gross if gross > cap and gross > 0 else ONE
    out: list[TargetPosition] = []
    for symbol, notional in legs.items():
        sig = signals.get(symbol)
        price = (prices or {}).get(symbol) or (sig.close if sig is not None else None)
        if sig is None or not price:
            out.append(TargetPosition(symbol, ZERO, None, "NO_SIGNAL"))
            continue
        qty = notional * factor / price
        reason = "FLAT" if qty == 0 else ("CLIPPED" if factor < ONE else "TREND")
        out.append(TargetPosition(symbol, qty, sig.stop_price(cfg.stop_atr_multiple), reason))
    return out
