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
from crypto.venue.types import Fill

ZERO = Decimal(0)

__all__ = ["SpotBook", "OversellError", "spot_buy", "spot_sell", "unrealised", "wac_from_fills"]


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


def wac_from_fills(fills: list[Fill], base: str) -> SpotBook:
    """The holding the venue's fills of one spot symbol explain, oldest first. A buy's fee in the coin
    arrives as fewer coins (the cost stays, the unit cost rises); a fee in the quote goes into the basis (buy)
    or out of the proceeds (sell); a fee in a third asset is not in this basis. ``OversellError`` when the
    fills sell more than they bought (the history is incomplete)."""
    book = SpotBook(HeldPosition(fills[0].symbol if fills else ""))
    for f in sorted(fills, key=lambda x: (x.ts_ms, x.trade_id)):
        quote = f.symbol.split("/")[-1].split(":")[0]
        coin_fee = f.fee if f.fee_asset == base and f.fee > 0 else ZERO
        quote_fee = f.fee if f.fee_asset == quote and f.fee > 0 else ZERO
        if f.side == "buy":
            got = f.qty - coin_fee
            if got <= 0:
                continue
            book = spot_buy(book, got, f.qty * f.price / got, quote_fee)
        else:
            book, _ = spot_sell(book, f.qty + coin_fee, f.price, quote_fee)
    return book
