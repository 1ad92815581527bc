"""Position money (pure): unrealised PnL, initial and maintenance margin, the isolated liquidation price.

Liquidation price (isolated, net mode), the simplified form of crypto-notes.md, which is OKX's own
trigger ``margin ratio = 100%`` when the maintenance margin includes the closing taker fee:

    equity at mark P           = margin + (P - entry) x qty            (qty signed, base units)
    maintenance at mark P      = |qty| x P x (mmr + taker_fee)
    long  liquidation price    = (entry - margin / |qty|) / (1 - mmr - taker_fee)
    short liquidation price    = (entry + margin / |qty|) / (1 + mmr + taker_fee)

The position is liquidated when the mark price reaches that price (at or below for a long, at or above
for a short).
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)


def unrealized_pnl(qty: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """(mark - entry) x signed size; never size x mark as if it were spot."""
    return (mark - entry) * qty


def initial_margin(qty: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    return abs(qty) * price / leverage


def maintenance_margin(qty: Decimal, mark: Decimal, mmr: Decimal, taker_fee: Decimal) -> Decimal:
    return abs(qty) * mark * (mmr + taker_fee)


def liquidation_price(qty: Decimal, entry: Decimal, margin: Decimal, mmr: Decimal,
                      taker_fee: Decimal) -> Decimal | None:
    """The documented formula above; None for a flat position, 0 floor for a long that cannot be liquidated."""
    if qty == 0:
        return None
    size = abs(qty)
    if qty > 0:
        price = (entry - margin / size) / (1 - mmr - taker_fee)
        return max(price, ZERO)
    return (entry + margin / size) / (1 + mmr + taker_fee)


def is_liquidated(qty: Decimal, mark: Decimal, liq_price: Decimal | None) -> bool:
    if liq_price is None or qty == 0:
        return False
    return mark <= liq_price if qty > 0 else mark >= liq_price
