"""Pure guards around the carry decisions: circuit breaker, liquidity (book depth, slippage, spike filter),
exchange health (API error rate, disconnect -> the core's REDUCE_ONLY), and the scheduler's due tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from core.risk.state import RiskState, RiskTrigger, apply_trigger, is_allowed
from crypto.carry.config import RiskConfig

ZERO = Decimal(0)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Breaker:
    """Losing closes in a row and the realised loss of the current UTC day."""

    consecutive_losses: int = 0
    day: int = 0  # UTC day number of ``day_loss``
    day_loss: Decimal = ZERO  # positive = lost
    tripped: bool = False
    reason: str = ""


def breaker_record_close(b: Breaker, pnl: Decimal, ts_ms: int, risk: RiskConfig) -> Breaker:
    """Count one closed pair's net PnL; trips on ``max_consecutive_losses`` losses in a row or a daily loss
    above ``max_daily_loss_usdt``. A trip stays until ``breaker_reset`` (manual)."""
    day = ts_ms // DAY_MS
    day_loss = (b.day_loss if day == b.day else ZERO) + (-pnl if pnl < 0 else ZERO)
    losses = b.consecutive_losses + 1 if pnl < 0 else 0
    tripped, reason = b.tripped, b.reason
    if not tripped and losses >= risk.max_consecutive_losses:
        tripped, reason = True, "BREAKER_CONSECUTIVE_LOSSES"
    elif not tripped and day_loss > risk.max_daily_loss_usdt:
        tripped, reason = True, "BREAKER_DAILY_LOSS"
    return Breaker(consecutive_losses=losses, day=day, day_loss=day_loss, tripped=tripped, reason=reason)


def breaker_reset(b: Breaker) -> Breaker:
    return replace(b, consecutive_losses=0, day_loss=ZERO, tripped=False, reason="")


def check_liquidity(levels: Sequence[tuple[Decimal, Decimal]], qty: Decimal, max_slippage: Decimal) -> str | None:
    """Walk the book side ``levels`` (best first) for ``qty``: None when it fills within ``max_slippage``
    of the best price, else ``LIQ_DEPTH`` (not enough size) or ``LIQ_SLIPPAGE``."""
    if qty <= 0:
        return None
    if not levels:
        return "LIQ_DEPTH"
    best = levels[0][0]
    left, cost = qty, ZERO
    for price, size in levels:
        take = min(left, size)
        cost += take * price
        left -= take
        if left <= 0:
            break
    if left > 0:
        return "LIQ_DEPTH"
    avg = cost / qty
    return "LIQ_SLIPPAGE" if abs(avg / best - 1) > max_slippage else None


def is_spike(prices: Sequence[Decimal], risk: RiskConfig) -> bool:
    """The spike filter: prices over the spike window (oldest first) moved more than ``spike_move``."""
    if len(prices) < 2:
        return False
    lo, hi = min(prices), max(prices)
    return lo > 0 and (hi / lo - 1) > risk.spike_move


@dataclass(frozen=True)
class ExchangeHealth:
    """The last ``error_window`` API call outcomes (True = error) and whether the venue is reachable."""

    outcomes: tuple[bool, ...] = ()
    disconnected: bool = False


def record_call(h: ExchangeHealth, error: bool, risk: RiskConfig) -> ExchangeHealth:
    return replace(h, outcomes=(*h.outcomes, error)[-risk.error_window:])


def error_rate(h: ExchangeHealth) -> Decimal:
    return Decimal(sum(h.outcomes)) / Decimal(len(h.outcomes)) if h.outcomes else ZERO


def exchange_trigger(h: ExchangeHealth, state: RiskState, risk: RiskConfig) -> RiskTrigger | None:
    """The core risk trigger the exchange guard fires now: TRADE_NOT_OK on a disconnect or an error rate
    over ``max_error_rate`` (once enough calls were seen); REDUCE_ONLY_CLEARED only after a full window of
    calls at no more than half that rate (hysteresis: one good answer after an outage proves nothing)."""
    bad = h.disconnected or (len(h.outcomes) >= min(10, risk.error_window) and error_rate(h) > risk.max_error_rate)
    if bad and is_allowed(state, RiskTrigger.TRADE_NOT_OK):
        return RiskTrigger.TRADE_NOT_OK
    healthy = (not h.disconnected and len(h.outcomes) >= risk.error_window
               and error_rate(h) <= risk.max_error_rate / 2)
    if healthy and state == RiskState.REDUCE_ONLY:
        return RiskTrigger.REDUCE_ONLY_CLEARED
    return None


def apply_exchange(h: ExchangeHealth, state: RiskState, risk: RiskConfig) -> RiskState:
    trig = exchange_trigger(h, state, risk)
    return apply_trigger(state, trig) if trig is not None else state


# --- Scheduler ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    last_scan_ms: int | None = None
    last_risk_ms: int | None = None
    last_funding_ms: int = 0  # the last settlement time bookkept


def due_tasks(s: Schedule, now_ms: int, funding_time_ms: int | None, scan_ms: int, risk_ms: int) -> list[str]:
    """Which tasks run at ``now_ms``: ``funding`` when a settlement time has passed that is not booked yet
    (the time comes from the venue, so a shortened interval is followed), ``risk`` every ``risk_ms``,
    ``scan`` every ``scan_ms``. Funding first: a close decision must see the settlement."""
    tasks = []
    if funding_time_ms is not None and s.last_funding_ms < funding_time_ms <= now_ms:
        tasks.append("funding")
    if s.last_risk_ms is None or now_ms - s.last_risk_ms >= risk_ms:
        tasks.append("risk")
    if s.last_scan_ms is None or now_ms - s.last_scan_ms >= scan_ms:
        tasks.append("scan")
    return tasks


def mark_done(s: Schedule, task: str, now_ms: int, funding_time_ms: int | None = None) -> Schedule:
    if task == "scan":
        return replace(s, last_scan_ms=now_ms)
    if task == "risk":
        return replace(s, last_risk_ms=now_ms)
    if task == "funding" and funding_time_ms is not None:
        return replace(s, last_funding_ms=max(s.last_funding_ms, funding_time_ms))
    return s
