"""A synthetic depth book around the path price, and matching against it (pure functions).

The best bid and ask sit half a basis point either side of the fair price (at least one tick); further
levels are one basis point apart (at least one tick) and hold more the deeper they are
(``level_qty x (1 + i/2)``). These functions are pure: the exchange subtracts what its taker orders
consumed during the current 10-second path step before matching (``Exchange._book_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crypto.fakex.engine.instruments import Instrument, round_down, round_up

Level = tuple[Decimal, Decimal]  # (price, base qty)
HALF_SPREAD = Decimal("0.00005")
LEVEL_GAP = Decimal("0.0001")
MAX_DEPTH = 400


@dataclass(frozen=True)
class Book:
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]

    @property
    def best_bid(self) -> Decimal:
        return self.bids[0][0]

    @property
    def best_ask(self) -> Decimal:
        return self.asks[0][0]


def level_qty(inst: Instrument, i: int) -> Decimal:
    qty = round_down(inst.level_qty * (1 + Decimal(i) / 2), inst.qty_step)
    return max(qty, inst.qty_step)


def build_book(inst: Instrument, fair: Decimal, depth: int = 20) -> Book:
    depth = max(1, min(depth, MAX_DEPTH))
    half = max(inst.tick, fair * HALF_SPREAD)
    gap = max(inst.tick, round_up(fair * LEVEL_GAP, inst.tick))
    best_bid = round_down(fair - half, inst.tick)
    best_ask = round_up(fair + half, inst.tick)
    bids = tuple((best_bid - gap * i, level_qty(inst, i)) for i in range(depth) if best_bid - gap * i > 0)
    asks = tuple((best_ask + gap * i, level_qty(inst, i)) for i in range(depth))
    return Book(bids=bids, asks=asks)


def would_cross(side: str, price: Decimal, book: Book) -> bool:
    """A limit order at ``price`` would take liquidity now."""
    return price >= book.best_ask if side == "buy" else price <= book.best_bid


def match_taker(side: str, qty: Decimal, limit: Decimal | None, book: Book) -> list[Level]:
    """Walk the opposite side up to ``limit`` (None = market, the whole modelled depth): (price, qty) fills."""
    levels = book.asks if side == "buy" else book.bids
    fills: list[Level] = []
    left = qty
    for price, available in levels:
        if left <= 0:
            break
        if limit is not None and (price > limit if side == "buy" else price < limit):
            break
        take = min(left, available)
        fills.append((price, take))
        left -= take
    return fills


def resting_fill_qty(inst: Instrument, side: str, price: Decimal, remaining: Decimal, book: Book) -> Decimal:
    """How much of a resting limit order the path fills as maker in one step: the best level's size once
    the opposite best price has reached the order's price, nothing otherwise."""
    crossed = book.best_ask <= price if side == "buy" else book.best_bid >= price
    if not crossed:
        return Decimal(0)
    return min(remaining, level_qty(inst, 0))
