"""Base units <-> contracts: the one place the conversion happens.

ccxt's ``amount`` for a swap or future is a number of **contracts**; one contract is ``contractSize`` base
units (OKX BTC-USDT-SWAP: 0.01 BTC, ETH-USDT-SWAP: 0.1 ETH). For spot the amount is base units already
(contract size 1). The engine speaks base units only, so every amount that crosses the ccxt boundary
goes through this module, in exact ``Decimal``:

- ``to_contracts`` (base -> venue amount) rounds **down** to a whole lot: an order never asks for more than
  was meant. What is left over (less than one lot) is returned by ``split_to_lot`` for the caller to
  report or drop; it is never rounded up.
- ``to_base`` (venue amount -> base) is an exact product: every amount the venue reports is a whole number
  of lots, so nothing is lost.

A quantity already on the lot (a multiple of ``qty_step``) makes the round trip unchanged:
``to_base(m, to_contracts(m, q)) == q``.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from crypto.venue.types import Market

ZERO = Decimal(0)


def lot_contracts(market: Market) -> Decimal:
    """The venue's lot in venue amount units (contracts for a swap, base for spot)."""
    return market.qty_step / market.contract_size


def round_down_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` not above ``qty`` (for ``qty >= 0``); exact."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if qty < 0:
        raise ValueError(f"qty must not be negative, got {qty}")
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when ``value`` sits exactly on the grid of ``step`` (a tick or a lot)."""
    return value % step == 0


def to_contracts(market: Market, qty_base: Decimal) -> Decimal:
    """Base units -> the venue amount ccxt expects, rounded down to a whole lot (never more than meant)."""
    lots = round_down_to_step(qty_base, market.qty_step)
    return _normal(lots / market.contract_size)


def to_base(market: Market, amount: Decimal) -> Decimal:
    """A venue amount (contracts for a swap, base for spot) -> base units, exactly."""
    return _normal(amount * market.contract_size)


def split_to_lot(market: Market, qty_base: Decimal) -> tuple[Decimal, Decimal]:
    """``(on_lot, residual)`` in base units: ``on_lot`` is what an order can carry, ``residual`` the rest."""
    on_lot = round_down_to_step(qty_base, market.qty_step)
    return _normal(on_lot), _normal(qty_base - on_lot)


def _normal(value: Decimal) -> Decimal:
    # Drop exponent noise (0.0100 -> 0.01, 1E+1 -> 10) so strings sent to ccxt and equality in tests are
    # plain; the numeric value is unchanged.
    if value == 0:
        return ZERO
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal
