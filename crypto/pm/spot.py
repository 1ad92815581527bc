"""Spot positions at weighted average cost, on the kernel's own ledger (``core.oms.account``).

The manager does not keep a second WAC: ``core.oms.account.apply_buy`` puts the buy fee into the cost
basis (WAC' = (Q x WAC + Q_buy x P_buy + fee) / (Q + Q_buy)) and ``apply_sell`` removes the sold share of the
basis at the average cost, so realised = (P_sell - WAC) x Q_sell - sell fee and the WAC of what is left does
not change on a sell. Unrealised = (P_mark - WAC) x Q_remain. All exact Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.oms.account import HeldPosition, OversellError, apply_buy, apply_sell, mark_to

ZERO = Decimal(0)

__all__ = ["SpotBook", "OversellError", "spot_buy", "spot_sell", "unrealised"]


@dataclass(frozen=True)
class SpotBook:
    """A spot holding and the PnL it realised so far."""

    held: HeldPosition

    @property
    def wac(self) -> Decimal:
        return self.held.entry

    @property
    def qty(self) -> Decimal:
        return self.held.qty

    @property
    def realised(self) -> Decimal:
        return self.held.realised_pnl


def spot_buy(book: SpotBook, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> SpotBook:
    """A buy fill (fee in quote) raises the basis by qty x price + fee."""
    return SpotBook(apply_buy(book.held, qty, price, fee))


def spot_sell(book: SpotBook, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> tuple[SpotBook, Decimal]:
    """A sell fill: returns the new book and the PnL it realised; the WAC of the rest is unchanged."""
    result = apply_sell(book.held, qty, price, fee)
    return SpotBook(result.position), result.realised


def unrealised(book: SpotBook, mark: Decimal) -> Decimal:
    """(P_mark - WAC) x Q_remain, from the basis so no rounding of the average creeps in."""
    return mark_to(book.held, mark).unrealised_pnl
