"""Ledger arithmetic that both machines must compute the same way: pool utilisation, the pool rule, the
commission, share splits and the sell budget.

Pure standard-library functions (no IO, no pydantic), so the grid core (mypy strict), the vault, the node
and the dashboard import the one definition instead of each keeping a copy that can round differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from fractions import Fraction

_FEN = Decimal("0.01")


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


class PoolRefusal(str, Enum):
    """Why the pool rule refuses a buy (checked in this order)."""

    NOMINAL_CAP = "NOMINAL_CAP"  # the symbol's committed amount would pass its nominal cap
    POOL_EXHAUSTED = "POOL_EXHAUSTED"  # used + frozen would pass the physical pool
    RESERVE = "RESERVE"  # a first layer would leave less than the reserve free


def pool_refusal(
    committed_fen: int,
    physical_pool_fen: int,
    need_fen: int,
    first_layer: bool,
    reserve_ratio: Decimal,
    symbol_committed_fen: int | None = None,
    symbol_cap_fen: int | None = None,
) -> PoolRefusal | None:
    """The pool rule: may ``need_fen`` more be committed (frozen) now? ``None`` if yes, else the first
    rule it breaks: the symbol's nominal cap (skipped when either symbol figure is ``None``), the physical
    pool, then the reserve, which binds a first layer only: after it, used + frozen may be at most
    ``physical_pool * (1 - reserve_ratio)``.

    The one definition: the vault approves by it and the grid checks it before sending, so a full pool
    does not turn into a storm of refusals. Integer fen and an exact ``Decimal`` ratio: no float on the way.
    """
    if symbol_cap_fen is not None and symbol_committed_fen is not None:
        if symbol_committed_fen + need_fen > symbol_cap_fen:
            return PoolRefusal.NOMINAL_CAP
    after = committed_fen + need_fen
    if after > physical_pool_fen:
        return PoolRefusal.POOL_EXHAUSTED
    if first_layer and Decimal(after) > Decimal(physical_pool_fen) * (1 - Decimal(reserve_ratio)):
        return PoolRefusal.RESERVE
    return None


def commission(value: Decimal, rate: Decimal, minimum: Decimal = Decimal(0)) -> Decimal:
    """The broker's commission on a trade of ``value`` yuan: ``rate * value``, at least ``minimum``, rounded
    half up to the fen; nothing on a zero value.

    The one commission formula: the grid's realistic booking, the vault's fee reserve and estimates, the
    paper venue's charge, the backtest and the dashboard all call it, each with its own configured rate
    and minimum. (The grid's reference mode books the exact ``rate * value``, unrounded: that is the
    reference rule, kept for parity with the original script.)
    """
    if value <= 0:
        return Decimal(0)
    return max(Decimal(rate) * value, Decimal(minimum)).quantize(_FEN, rounding=ROUND_HALF_UP)


def commission_fen(value_fen: int, rate: Decimal, min_fen: int = 0) -> int:
    """``commission`` on integer fen, for the ledger: same formula, same rounding."""
    fee = commission(Decimal(value_fen) * _FEN, rate, Decimal(min_fen) * _FEN)
    return int(fee / _FEN)
