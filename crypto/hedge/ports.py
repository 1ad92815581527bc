"""The hedge's ports implemented on a ``Venue`` (``crypto.venue``): order route, marks, prices, exposure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crypto.hedge.close import Exposure
from crypto.venue.protocol import Venue
from crypto.venue.types import OrderRequest, Side, VenueError, VenueOrder


@dataclass
class VenueRoute:
    """Sends an order straight to the venue (the strategy's direct path, and the executor behind a channel)."""

    venue: Venue

    def submit(self, request: OrderRequest) -> VenueOrder:
        return self.venue.place_order(request)


@dataclass
class VenueMarks:
    venue: Venue

    def mark(self, symbol: str) -> Decimal | None:
        try:
            return self.venue.mark_price(symbol)
        except VenueError:
            return None  # no mark: the rules defer (NO_MARK) rather than size blind


@dataclass
class BookPricing:
    """Passive prices from the order book: a sell joins the best ask, a buy the best bid, one tick further away
    per re-price. ``cross_first`` prices the first attempts on the other side of the book (a stale quote, or a
    deliberately aggressive first try) so that the GTX re-price path can be exercised against a venue."""

    venue: Venue
    cross_first: int = 0

    def hedge_price(self, symbol: str, side: Side, attempt: int) -> Decimal | None:
        try:
            book = self.venue.order_book(symbol, 5)
            tick = self.venue.market(symbol).tick
        except VenueError:
            return None
        if not book.bids or not book.asks:
            return None
        bid, ask = book.bids[0][0], book.asks[0][0]
        if attempt < self.cross_first:
            return bid if side == "sell" else ask
        away = tick * max(0, attempt - self.cross_first)
        return ask + away if side == "sell" else bid - away

    def taker_price(self, symbol: str, side: Side) -> Decimal | None:
        """The opposite best: a marketable limit (fills now as far as the top level goes)."""
        try:
            book = self.venue.order_book(symbol, 5)
        except VenueError:
            return None
        if not book.bids or not book.asks:
            return None
        return book.asks[0][0] if side == "buy" else book.bids[0][0]


@dataclass
class VenueExposure:
    """Spot and UM net positions as the venue shows them: the spot leg is the free base balance of the
    margin account (what a close can sell), the UM leg the signed perpetual position."""

    venue: Venue

    def exposure(self, spot_symbol: str, um_symbol: str) -> Exposure:
        base = self.venue.market(spot_symbol).base
        balance = self.venue.balances("margin").get(base)
        spot = balance.free if balance is not None else Decimal(0)
        um = sum((p.qty for p in self.venue.positions([um_symbol]) if p.symbol == um_symbol), Decimal(0))
        return Exposure(spot=spot, um=um)
