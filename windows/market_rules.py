"""A-share ETF trading rules as pure functions: lots, ticks, sessions per exchange, the daily price limit."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from settings.config import MarketConfig, SessionWindow
from shared_schema.types import CST

OUTSIDE_SESSION = "OUTSIDE_SESSION"
"""``new_order_window_problem``: no continuous trading now (night, lunch, weekend, a cancellable auction)."""
_NO_CANCEL_DETAIL = {"opening_auction": "OPENING_CALL_AUCTION", "closing_auction": "CLOSING_CALL_AUCTION",
                     "continuous": "NO_CANCEL_WINDOW"}


def exchange_of(code: str) -> str:
    """``159201.SZ`` -> ``SZ``: the key of the code's session table."""
    return code.rsplit(".", 1)[-1]


def session_window(ts: datetime, code: str, market: MarketConfig) -> SessionWindow | None:
    """The configured window of ``code``'s exchange that holds ``ts`` (China time), if any; none at weekends."""
    local = ts.astimezone(CST)
    if local.weekday() >= 5:
        return None
    clock = local.time()
    for window in market.sessions.get(exchange_of(code), ()):
        if window.start <= clock < window.end:
            return window
    return None


def new_order_window_problem(ts: datetime, code: str, market: MarketConfig) -> str | None:
    """``None`` when a new order for ``code`` may be placed at ``ts``; otherwise a detail code.

    ``CLOSING_CALL_AUCTION`` / ``OPENING_CALL_AUCTION``: a window where the exchange refuses cancels (an order
    placed there could not be taken back), checked first; ``OUTSIDE_SESSION``: not continuous trading.
    """
    window = session_window(ts, code, market)
    if window is None:
        return OUTSIDE_SESSION
    if not window.cancel_allowed:
        return _NO_CANCEL_DETAIL[window.phase]
    if window.phase != "continuous":
        return OUTSIDE_SESSION
    return None


def is_cancel_allowed(ts: datetime, code: str, market: MarketConfig) -> bool:
    """False inside a window where the exchange refuses cancels (e.g. Shenzhen 14:57-15:00)."""
    window = session_window(ts, code, market)
    return window is None or window.cancel_allowed


def is_in_session(ts: datetime, market: MarketConfig, code: str | None = None) -> bool:
    """True when a new order may be placed: continuous trading with cancels allowed, China time.

    With ``code`` the code's exchange decides; without, any configured exchange being open is enough.
    """
    codes = [code] if code is not None else [f".{exchange}" for exchange in market.sessions]
    return any(new_order_window_problem(ts, c, market) is None for c in codes)


def is_on_tick(price: Decimal, market: MarketConfig) -> bool:
    return (price / market.tick) == (price / market.tick).to_integral_value()


def is_whole_lots(shares: int, market: MarketConfig) -> bool:
    return shares > 0 and shares % market.lot_size == 0


def price_limits(prev_close: Decimal, market: MarketConfig) -> tuple[Decimal, Decimal]:
    """(lowest, highest) legal price today: prev close -/+ the limit ratio, rounded half up to the tick.

    This is the exchanges' own rule (prev close 1.006 allows [0.905, 1.107]); rounding inward would refuse
    prices the exchange accepts.
    """
    low = round_to_tick(prev_close * (1 - market.price_limit_ratio), market)
    high = round_to_tick(prev_close * (1 + market.price_limit_ratio), market)
    return low, high


def round_to_tick(price: float | Decimal, market: MarketConfig) -> Decimal:
    """Nearest tick, a half rounded up (away from zero), for turning a market price into an order price.

    A float goes through its shortest repr first, so ``1.0005`` rounds to ``1.001`` as its text says.
    """
    value = Decimal(repr(price)) if isinstance(price, float) else price
    tick = market.tick
    return (value / tick).to_integral_value(rounding=ROUND_HALF_UP) * tick
