"""A-share ETF trading rules as pure functions: lots, ticks, sessions, the daily price limit."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from shared_schema.config import MarketConfig
from shared_schema.types import CST


def is_in_session(ts: datetime, market: MarketConfig) -> bool:
    """True inside a continuous-trading session (start inclusive, end exclusive), China time."""
    local = ts.astimezone(CST)
    if local.weekday() >= 5:
        return False
    clock = local.time()
    return any(window.start <= clock < window.end for window in market.sessions)


def is_on_tick(price: Decimal, market: MarketConfig) -> bool:
    return (price / market.tick) == (price / market.tick).to_integral_value()


def is_whole_lots(shares: int, market: MarketConfig) -> bool:
    return shares > 0 and shares % market.lot_size == 0


def price_limits(prev_close: Decimal, market: MarketConfig) -> tuple[Decimal, Decimal]:
    """(lowest, highest) legal price today: prev close -/+ the limit ratio, rounded inward to the tick."""
    tick = market.tick
    low = (prev_close * (1 - market.price_limit_ratio) / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    high = (prev_close * (1 + market.price_limit_ratio) / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    return low, high


def round_to_tick(price: float | Decimal, market: MarketConfig) -> Decimal:
    """Nearest tick (half up), for turning a float market price into an order price."""
    value = Decimal(str(price)) if isinstance(price, float) else price
    return (value / market.tick).to_integral_value() * market.tick
