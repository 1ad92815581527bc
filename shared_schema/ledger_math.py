"""Ledger arithmetic that both machines must compute the same way: pool utilisation and share splits.

Pure standard-library functions (no IO, no pydantic), so the grid core (mypy strict), the vault, the node
and the dashboard import the one definition instead of each keeping a copy that can round differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction


def utilization(committed: int | Decimal, physical_pool: int | Decimal) -> float:
    """``committed / physical_pool`` from exact amounts (integer fen, or exact ``Decimal`` yuan).

    The result is the double nearest the exact ratio (integer true division is correctly rounded), never a
    rounded published figure. Compared with the double nearest a short decimal threshold (0.90, 0.85) it
    gives the exact decimal comparison: two distinct ratios of integers below 10**12 differ by far more
    than one unit in the last place, and an exact tie rounds to the same double as the threshold.
    """
    if physical_pool <= 0:
        raise ValueError("physical_pool must be positive")
    if isinstance(committed, int) and isinstance(physical_pool, int):
        return committed / physical_pool
    ratio = Fraction(committed) / Fraction(physical_pool)
    return ratio.numerator / ratio.denominator


def split_shares(n: int, holdings: Sequence[int], unit: int = 100) -> tuple[int, ...]:
    """Split ``n`` sold shares over lots holding ``holdings``: pro rata, largest remainder, in board lots.

    Each lot first gets its quota ``n * h / total`` rounded down to a whole ``unit`` (board lot). What is
    left goes out in chunks of at most one ``unit``, lots with the largest remainder of their quota first
    (ties: the earlier lot), never above what a lot holds, pass after pass until nothing is left. So the
    parts always add up to ``n`` (no share lost or invented), no lot gives more than it holds, and shares
    move in whole board lots wherever the holdings allow, which keeps odd remainders few. The result
    depends only on ``n`` and ``holdings``: the vault (for every cumulative fill) and the grid (at the
    final fill) get the same split from the same inputs.
    """
    if n < 0 or unit <= 0 or any(h < 0 for h in holdings):
        raise ValueError("split_shares needs n >= 0, unit > 0 and holdings >= 0")
    total = sum(holdings)
    if n >= total:
        return tuple(holdings)
    if n == 0:
        return tuple(0 for _ in holdings)
    parts = [(n * h // total) // unit * unit for h in holdings]
    left = n - sum(parts)
    # Remainder of each quota, scaled by ``total`` to stay in integers.
    order = sorted(range(len(holdings)), key=lambda i: (-(n * holdings[i] - parts[i] * total), i))
    while left > 0:
        for i in order:
            give = min(unit, left, holdings[i] - parts[i])
            if give > 0:
                parts[i] += give
                left -= give
                if left == 0:
                    break
    return tuple(parts)


def odd_part(shares: int, unit: int = 100) -> int:
    """Shares below a whole board lot (``shares mod unit``)."""
    return shares % unit


def sell_budget(
    sellable_volume: int, unplaced_sells: int, position_volume: int | None, base: int, unfilled_sells: int
) -> int:
    """Shares that may still go into new sells of one code: the one rule of the grid core and the executor's
    forced reduction.

    ``sellable_volume`` is the venue's ``can_use_volume`` (T+1; the sells resting at the venue are already
    out of it), less ``unplaced_sells``: sells the venue has not seen yet (journaled, unsent, or of unknown
    outcome), which it still counts as sellable. Never more than ``position_volume - base - unfilled_sells``
    (``unfilled_sells``: the unfilled shares of *every* pending sell, resting or not), so the position never
    ends below the configured base once every pending sell has filled; ``position_volume=None`` skips that
    cap. Never negative.
    """
    budget = sellable_volume - unplaced_sells
    if position_volume is not None:
        budget = min(budget, position_volume - base - unfilled_sells)
    return max(budget, 0)
