"""Funding (pure): the rate formula, the settlement schedule and the payment.

Formula (OKX, revision published 2026-05-29, interval factor 8/N):
    rate = clamp[(P + clamp(I - P, -0.05%, +0.05%)) / (8 / N), -cap, +cap]
with P the average premium over the last N hours, I = 0.01% and N the settlement interval in hours.

Schedule: every 8 h at 00:00, 08:00 and 16:00 UTC. When the undivided rate of a settlement sits at the cap
(|P + clamp(I - P)| >= cap) the next interval is halved (8 -> 4 -> 2 -> 1 h, aligned on UTC multiples of
the new interval); the first settlement off the cap returns to 8 h at the next 00/08/16 UTC.

Payment of a position: -size (base, signed) x mark x rate: a long pays a positive rate.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

INTEREST = Decimal("0.0001")
PREMIUM_CLAMP = Decimal("0.0005")
HOUR_MS = 3_600_000
BASE_INTERVAL_H = 8
RATE_QUANTUM = Decimal("0.00000001")


def clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return max(low, min(high, value))


def undivided_rate(avg_premium: Decimal) -> Decimal:
    return avg_premium + clamp(INTEREST - avg_premium, -PREMIUM_CLAMP, PREMIUM_CLAMP)


def funding_rate(avg_premium: Decimal, interval_h: int, cap: Decimal) -> Decimal:
    raw = undivided_rate(avg_premium) / (Decimal(8) / Decimal(interval_h))
    return clamp(raw, -cap, cap).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


def is_at_cap(avg_premium: Decimal, cap: Decimal) -> bool:
    return abs(undivided_rate(avg_premium)) >= cap


def next_interval_h(current_h: int, at_cap: bool) -> int:
    return max(1, current_h // 2) if at_cap else BASE_INTERVAL_H


def next_settlement_ms(after_ms: int, interval_h: int) -> int:
    """The first UTC multiple of ``interval_h`` hours strictly after ``after_ms``."""
    step = interval_h * HOUR_MS
    return (after_ms // step + 1) * step


def funding_payment(qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Signed amount received by the position holder (negative = paid)."""
    return -qty * mark * rate
