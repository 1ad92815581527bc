"""Venue filters applied to every order just before it is sent: step, tick, minimums, leverage.

Rounding is always down (toward zero), so a filtered order never asks for more than the strategy meant.
An order that falls under the venue minimum is dropped (EXEC_FILTER_IGNORE), except when it closes a
position that is itself under the minimum: that position can never be sold, which is not a failure but
dust (EXEC_DUST_POSITION_STUCK, and the symbol becomes DUST_LOCKED so nothing is ever added to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.manual import ManualResult, dust_lock
from core.risk.snapshot import RiskSnapshot

ZERO = Decimal(0)


@dataclass(frozen=True)
class VenueFilters:
    """One symbol's venue rules. ``min_notional`` None for ETFs (the lot size is the qty step there)."""

    qty_step: Decimal
    tick: Decimal
    min_qty: Decimal = ZERO
    min_notional: Decimal | None = None
    max_leverage: Decimal | None = None

    def __post_init__(self) -> None:
        # A zero step or tick would divide by zero deep in an order path: refuse the record where it is made.
        if self.qty_step <= 0 or self.tick <= 0 or self.min_qty < 0:
            raise ValueError(f"FILTERS_INVALID: qty_step {self.qty_step} and tick {self.tick} must be > 0, "
                             f"min_qty {self.min_qty} >= 0")
        if (self.min_notional is not None and self.min_notional < 0) or (
            self.max_leverage is not None and self.max_leverage < 1
        ):
            raise ValueError("FILTERS_INVALID: min_notional must be >= 0 and max_leverage >= 1")

    @classmethod
    def crypto(
        cls,
        qty_step: Decimal,
        tick: Decimal,
        min_qty: Decimal = ZERO,
        max_leverage: Decimal | None = None,
        min_notional: Decimal = Decimal("5"),
    ) -> VenueFilters:
        """A USDT-margined perpetual with a 5 USDT minimum notional by default. Real minimums are per symbol
        (Binance UM: 5 or 100 USDT): build the record from the venue's market instead of trusting this."""
        return cls(qty_step, tick, min_qty, min_notional, max_leverage)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value`` in magnitude."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def is_tradable(qty: Decimal, price: Decimal, f: VenueFilters) -> bool:
    """Whether ``qty`` at ``price`` clears the venue minimums after rounding."""
    q = round_down(abs(qty), f.qty_step)
    if q <= 0 or q < f.min_qty:
        return False
    return f.min_notional is None or q * price >= f.min_notional


def target_after_minimum(target_qty: Decimal, price: Decimal, f: VenueFilters) -> Decimal:
    """A target too small to hold as a tradable position becomes 0 (rounded down otherwise)."""
    return round_down(target_qty, f.qty_step) if is_tradable(target_qty, price, f) else ZERO


@dataclass(frozen=True)
class FilteredOrder:
    symbol: str
    qty: Decimal  # positive; the side says the direction
    price: Decimal
    reduce_only: bool


@dataclass(frozen=True)
class FilterOutcome:
    order: FilteredOrder | None
    reason: str | None = None
    dust_lock: bool = False
    events: tuple[AuditEvent, ...] = ()


def apply_venue_filters(
    symbol: str,
    qty: Decimal,
    price: Decimal,
    f: VenueFilters,
    position_qty: Decimal,
    reduces: bool,
    now: datetime,
    leverage: Decimal = Decimal(1),
) -> FilterOutcome:
    """Round and check one order; ``qty`` is positive, ``reduces`` says it shrinks ``position_qty``."""
    if f.max_leverage is not None and not reduces and leverage > f.max_leverage:
        ev = AuditEvent(
            now,
            AuditCode.RISK_ORDER_REFUSED,
            Severity.WARN,
            f"leverage {leverage} > venue max {f.max_leverage}",
            symbol,
            {"reason": "RISK_LEVERAGE", "leverage": str(leverage)},
        )
        return FilterOutcome(None, "RISK_LEVERAGE", events=(ev,))
    p = round_down(price, f.tick)
    q = round_down(qty, f.qty_step)
    if reduces:
        q = min(q, round_down(abs(position_qty), f.qty_step))  # a reduction never flips the position
    if p > 0 and is_tradable(q, p, f):
        return FilterOutcome(FilteredOrder(symbol, q, p, reduces))
    data = {
        "qty": str(qty),
        "price": str(price),
        "rounded_qty": str(q),
        "rounded_price": str(p),
        "min_notional": None if f.min_notional is None else str(f.min_notional),
        "min_qty": str(f.min_qty),
    }
    if reduces and position_qty != 0 and not is_tradable(position_qty, p, f):
        ev = AuditEvent(
            now,
            AuditCode.EXEC_DUST_POSITION_STUCK,
            Severity.INFO,
            "position below venue minimum cannot be closed: dust",
            symbol,
            {**data, "position_qty": str(position_qty)},
        )
        return FilterOutcome(None, AuditCode.EXEC_DUST_POSITION_STUCK.value, dust_lock=True, events=(ev,))
    ev = AuditEvent(
        now, AuditCode.EXEC_FILTER_IGNORE, Severity.INFO, "order under venue minimum dropped", symbol, data
    )
    return FilterOutcome(None, AuditCode.EXEC_FILTER_IGNORE.value, events=(ev,))


@dataclass(frozen=True)
class TargetOutcome:
    """A strategy target after the venue minimums: rounded down, or 0 (audited) when untradable."""

    target: Decimal
    events: tuple[AuditEvent, ...] = ()


def filter_target(symbol: str, target_qty: Decimal, price: Decimal, f: VenueFilters, now: datetime) -> TargetOutcome:
    """``target_after_minimum`` with its audit: a non-zero target too small to hold becomes 0 and is
    recorded as EXEC_FILTER_IGNORE (the strategy asked for something the venue cannot hold)."""
    target = target_after_minimum(target_qty, price, f)
    if target != 0 or target_qty == 0:
        return TargetOutcome(target)
    ev = AuditEvent(
        now, AuditCode.EXEC_FILTER_IGNORE, Severity.INFO, "target under venue minimum set to 0", symbol,
        {"target_qty": str(target_qty), "price": str(price), "min_qty": str(f.min_qty),
         "min_notional": None if f.min_notional is None else str(f.min_notional)},
    )
    return TargetOutcome(ZERO, (ev,))


def split_signed_delta(position_qty: Decimal, delta: Decimal) -> tuple[Decimal, Decimal]:
    """A signed trade as (closing leg, opening leg), both signed: the closing leg shrinks |position| toward
    zero (send it reduce-only), the opening leg adds or flips exposure (it needs the risk checks).

    ``(+3 long, -5)`` -> ``(-3, -2)``: close the long, then open a 2 short.
    """
    if delta == 0 or position_qty == 0 or (delta > 0) == (position_qty > 0):
        return ZERO, delta
    close = -position_qty if abs(delta) >= abs(position_qty) else delta
    return close, delta - close


def filter_signed(
    symbol: str,
    position_qty: Decimal,
    delta: Decimal,
    price: Decimal,
    f: VenueFilters,
    now: datetime,
    leverage: Decimal = Decimal(1),
) -> tuple[FilterOutcome, FilterOutcome]:
    """``apply_venue_filters`` on both legs of a signed delta (closing leg first; either may be empty with
    no order and no event). The closing leg's dust verdict is the one that locks the symbol."""
    close, open_ = split_signed_delta(position_qty, delta)
    empty = FilterOutcome(None)
    c = apply_venue_filters(symbol, abs(close), price, f, position_qty, True, now, leverage) if close else empty
    o = apply_venue_filters(symbol, abs(open_), price, f, position_qty + close, False, now, leverage) if open_ else empty
    return c, o


def fold_filter_outcome(
    snapshot: RiskSnapshot, symbol: str, outcome: FilterOutcome, now: datetime, cfg: RiskConfig
) -> ManualResult:
    """A closing order refused as dust marks the symbol DUST_LOCKED in the risk snapshot (RISK_DUST_LOCKED,
    once): nothing is ever added to it, and the FUSE's full close treats it as closed, not as failed."""
    if not outcome.dust_lock:
        return ManualResult(snapshot)
    return dust_lock(snapshot, symbol, now, cfg, "position under the venue minimum: dust")
