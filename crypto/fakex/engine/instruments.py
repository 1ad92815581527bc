"""The instrument catalogue and its filters.

Quantities inside the engine are **base units** (BTC, ETH, SOL) for spot and swaps alike; ``contract_size``
tells a dialect how to show a swap size in contracts (OKX ``sz``). ``lot`` and ``min_size`` are in the
venue's own unit (contracts for a swap), as the venue publishes them; ``qty_step``/``min_qty`` give the
base-unit equivalents the engine checks against. Filter values follow OKX's published instruments
(BTC-USDT-SWAP ctVal 0.01, ETH-USDT-SWAP ctVal 0.1, SOL-USDT-SWAP ctVal 1) at the time of writing; fees
are OKX's regular-user tier (spot 0.08%/0.10%, swaps 0.02%/0.05%); maintenance-margin rates and funding
caps are the fake's choices (see docs/crypto.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

D = Decimal
Kind = Literal["spot", "swap"]


@dataclass(frozen=True)
class Instrument:
    inst_id: str  # the engine's key; OKX's own id (BTC-USDT, BTC-USDT-SWAP)
    kind: Kind
    base: str
    quote: str
    settle: str | None  # margin currency of a swap, None for spot
    contract_size: Decimal  # base units per contract; 1 for spot
    tick: Decimal
    lot: Decimal  # venue unit (contracts for a swap, base for spot)
    min_size: Decimal  # venue unit
    min_notional: Decimal  # quote; 0 = the venue states none (OKX)
    max_leverage: Decimal
    maker_fee: Decimal  # fraction, positive = paid
    taker_fee: Decimal
    mmr: Decimal  # maintenance-margin rate (tier 1)
    funding_cap: Decimal  # per-settlement cap on the funding rate (floor = -cap)
    start_price: Decimal  # the scenario's first index price
    level_qty: Decimal  # base units resting at the best level of the synthetic book
    account: str = "trading"  # the account whose balances the instrument trades against

    @property
    def is_swap(self) -> bool:
        return self.kind == "swap"

    @property
    def qty_step(self) -> Decimal:
        return self.lot * self.contract_size

    @property
    def min_qty(self) -> Decimal:
        return self.min_size * self.contract_size

    @property
    def margin_ccy(self) -> str:
        return self.settle or self.quote


def round_down(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return (value / step) == (value / step).to_integral_value()


def _spot(base: str, tick: str, lot: str, min_size: str, start: str, level: str) -> Instrument:
    return Instrument(
        inst_id=f"{base}-USDT", kind="spot", base=base, quote="USDT", settle=None, contract_size=D(1),
        tick=D(tick), lot=D(lot), min_size=D(min_size), min_notional=D(0), max_leverage=D(1),
        maker_fee=D("0.0008"), taker_fee=D("0.001"), mmr=D(0), funding_cap=D(0), start_price=D(start),
        level_qty=D(level),
    )


def _swap(base: str, ct_val: str, tick: str, lot: str, min_size: str, lever: str, mmr: str, cap: str,
          start: str, level: str) -> Instrument:
    return Instrument(
        inst_id=f"{base}-USDT-SWAP", kind="swap", base=base, quote="USDT", settle="USDT", contract_size=D(ct_val),
        tick=D(tick), lot=D(lot), min_size=D(min_size), min_notional=D(0), max_leverage=D(lever),
        maker_fee=D("0.0002"), taker_fee=D("0.0005"), mmr=D(mmr), funding_cap=D(cap), start_price=D(start),
        level_qty=D(level),
    )


def default_instruments() -> dict[str, Instrument]:
    """Spot BTC/ETH/SOL against USDT and their USDT-margined perpetuals."""
    items = [
        _spot("BTC", "0.1", "0.00000001", "0.00001", "60000", "0.5"),
        _spot("ETH", "0.01", "0.000001", "0.0001", "3000", "8"),
        _spot("SOL", "0.01", "0.000001", "0.001", "150", "150"),
        _swap("BTC", "0.01", "0.1", "0.01", "0.01", "100", "0.004", "0.00375", "60000", "0.5"),
        _swap("ETH", "0.1", "0.01", "0.01", "0.01", "100", "0.004", "0.00375", "3000", "8"),
        _swap("SOL", "1", "0.01", "0.01", "0.01", "50", "0.01", "0.0075", "150", "150"),
    ]
    return {i.inst_id: i for i in items}
