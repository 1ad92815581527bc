"""Account state and weighted-average-cost (WAC) accounting, exact in Decimal.

A position stores its total cost basis, not its average price: the average is derived (``wac``), so a
sell removes a share of the basis and a full close leaves exactly zero, however odd the prices were.
Buy fees go into the basis (what the shares really cost); sell fees come out of realised PnL.
Long-only for spot; a crypto position may be short (negative ``qty``) for liquidation-distance purposes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
# Cost basis removed on a partial sell is rounded here; the remainder stays in the basis, so nothing leaks.
BASIS_QUANTUM = Decimal("0.00000001")


class OversellError(ValueError):
    """A spot sell larger than the holding; the position is left unchanged."""


@dataclass(frozen=True)
class HeldPosition:
    """One holding: ``qty`` (negative = short), ``cost`` basis, ``mark`` price, ``liq`` price (crypto)."""

    symbol: str
    qty: Decimal = ZERO
    cost: Decimal = ZERO
    mark: Decimal = ZERO
    liq: Decimal | None = None
    realised_pnl: Decimal = ZERO

    @property
    def entry(self) -> Decimal:
        """Weighted average cost per unit (0 when flat)."""
        return self.cost / self.qty if self.qty else ZERO

    @property
    def notional(self) -> Decimal:
        return abs(self.qty) * self.mark

    @property
    def unrealised_pnl(self) -> Decimal:
        """Value at mark minus cost basis (for a short, basis is the negative proceeds)."""
        return self.qty * self.mark - self.cost

    @property
    def liq_distance(self) -> Decimal | None:
        """Long (mark-liq)/mark, short (liq-mark)/mark; None without a liquidation price or mark."""
        if self.liq is None or not self.mark or not self.qty:
            return None
        if self.qty > 0:
            return (self.mark - self.liq) / self.mark
        return (self.liq - self.mark) / self.mark


@dataclass(frozen=True)
class SellResult:
    position: HeldPosition
    realised: Decimal


def apply_buy(pos: HeldPosition, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> HeldPosition:
    """Add ``qty`` at ``price``; the new WAC is (old basis + qty*price + fee) / new qty."""
    if qty <= 0 or price <= 0 or fee < 0:
        raise ValueError("buy needs qty > 0, price > 0, fee >= 0")
    return replace(pos, qty=pos.qty + qty, cost=pos.cost + qty * price + fee)


def apply_sell(pos: HeldPosition, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> SellResult:
    """Sell ``qty`` at ``price``: realised = proceeds - fee - the sold share of the basis (at WAC)."""
    if qty <= 0 or price <= 0 or fee < 0:
        raise ValueError("sell needs qty > 0, price > 0, fee >= 0")
    if qty > pos.qty:
        raise OversellError(f"{pos.symbol}: sell {qty} > held {pos.qty}")
    if qty == pos.qty:
        removed = pos.cost
    else:
        removed = (pos.cost * qty / pos.qty).quantize(BASIS_QUANTUM, rounding=ROUND_HALF_EVEN)
    realised = qty * price - fee - removed
    new_pos = replace(
        pos, qty=pos.qty - qty, cost=pos.cost - removed, realised_pnl=pos.realised_pnl + realised
    )
    return SellResult(new_pos, realised)


def mark_to(pos: HeldPosition, mark: Decimal, liq: Decimal | None = None) -> HeldPosition:
    """New mark (and liquidation price when the venue reports one)."""
    return replace(pos, mark=mark, liq=liq if liq is not None else pos.liq)


@dataclass(frozen=True)
class AccountState:
    """The account as the risk kernel sees it. Fractions are Decimals (0.08 = 8 %)."""

    equity: Decimal
    peak_equity: Decimal
    cash: Decimal = ZERO
    margin_used_pct: Decimal = ZERO
    positions: Mapping[str, HeldPosition] = field(default_factory=dict)

    @property
    def drawdown_pct(self) -> Decimal:
        """Fall from peak equity as a fraction (0 at or above the peak)."""
        return drawdown(self.equity, self.peak_equity)

    @property
    def liq_distance_pct(self) -> Decimal | None:
        """Notional-weighted low-tail liquidation distance (see ``weighted_liq_distance``)."""
        return weighted_liq_distance(self.positions.values(), Decimal("0.95"))


def drawdown(equity: Decimal, peak: Decimal) -> Decimal:
    """1 - equity/peak, floored at 0; 0 when there is no peak yet."""
    if peak <= 0 or equity >= peak:
        return ZERO
    return (peak - equity) / peak


def build_account(
    cash: Decimal, positions: Iterable[HeldPosition], peak_equity: Decimal, margin_used_pct: Decimal = ZERO
) -> AccountState:
    """Equity = cash + sum of position values at mark; the peak only ever rises."""
    pos_map = {p.symbol: p for p in positions}
    equity = cash + sum((p.qty * p.mark for p in pos_map.values()), ZERO)
    return AccountState(
        equity=equity,
        peak_equity=max(peak_equity, equity),
        cash=cash,
        margin_used_pct=margin_used_pct,
        positions=pos_map,
    )


def weighted_liq_distance(positions: Iterable[HeldPosition], percentile: Decimal) -> Decimal | None:
    """Notional-weighted P<percentile> liquidation distance: the distance that ``percentile`` of the
    notional is at or beyond (a low-tail measure, so one big position near liquidation dominates).

    None when no position has a liquidation price (spot/ETF accounts).
    """
    pairs = sorted(
        ((d, p.notional) for p in positions if (d := p.liq_distance) is not None and p.notional > 0),
        key=lambda x: x[0],
    )
    total = sum((n for _, n in pairs), ZERO)
    if not pairs or total <= 0:
        return None
    tail = (Decimal(1) - percentile) * total
    cumulative = ZERO
    for dist, notional in pairs:
        cumulative += notional
        # First distance where the nearer-to-liquidation tail exceeds (1 - p) of the notional.
        if cumulative > tail:
            return dist
    return pairs[-1][0]
