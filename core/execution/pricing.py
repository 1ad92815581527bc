"""Execution policy for limit orders: the price (an offset from the touch, tick-rounded the safe way), when a
resting order is cancelled and re-posted, and how one intent is split by max notional and book depth.

All pure: the book, the clock and the venue filters are passed in. "Safe" rounding means the order never
asks for a worse price than the policy meant: a buy rounds down, a sell rounds up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from pydantic import BaseModel, ConfigDict, Field

from core.events import AuditCode, AuditEvent, Severity
from core.execution.filters import VenueFilters, is_tradable, round_down
from core.risk.checks import Side

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)


class LimitPolicy(BaseModel):
    """How an order is priced and how long it may rest.

    ``offset_bps`` is the distance from our own side's touch (the bid for a buy): positive rests deeper in
    the book, negative reaches across toward the other side (a post-only order is still kept passive).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_bps: Decimal = Decimal(0)
    post_only: bool = True
    max_order_age: timedelta = timedelta(seconds=30)
    # Also re-post early when the fresh price is this far (bps) from the resting one; None = age only.
    max_drift_bps: Decimal | None = Field(default=None, gt=0)
    max_notional: Decimal | None = Field(default=None, gt=0)  # per child order (quote currency)
    depth_bps: Decimal = Field(default=Decimal(50), ge=0)  # book levels within this of the touch count
    depth_share: Decimal = Field(default=Decimal("0.2"), gt=0, le=1)  # share of that depth one cycle may take


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` not below ``value``."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def limit_price(side: Side, bid: Decimal, ask: Decimal, tick: Decimal, policy: LimitPolicy) -> Decimal:
    """The limit price for ``side`` at the current touch: offset applied, then rounded the safe way (buy
    down, sell up); a post-only order is kept at least one tick off the other side so it cannot take."""
    if bid <= 0 or ask <= 0 or bid > ask:
        raise ValueError(f"bad touch: bid {bid}, ask {ask}")
    off = policy.offset_bps / BPS
    if side is Side.BUY:
        price = round_down(bid * (ONE - off), tick)
        if policy.post_only:
            price = min(price, round_down(ask - tick, tick))
    else:
        price = round_up(ask * (ONE + off), tick)
        if policy.post_only:
            price = max(price, round_up(bid + tick, tick))
    if price <= 0:
        raise ValueError(f"offset {policy.offset_bps} bps leaves no positive price")
    return price


@dataclass(frozen=True)
class RestingOrder:
    client_order_id: str
    symbol: str
    side: Side
    price: Decimal
    placed_at: datetime


@dataclass(frozen=True)
class RepostDecision:
    repost: bool
    reason: str | None = None  # AGE or DRIFT
    new_price: Decimal | None = None
    event: AuditEvent | None = None


def repost_decision(order: RestingOrder, fresh_price: Decimal, now: datetime, policy: LimitPolicy) -> RepostDecision:
    """Cancel and re-post (under a new client order id) once the order is ``max_order_age`` old, or earlier
    when the fresh price has drifted ``max_drift_bps`` from it; otherwise keep its queue place."""
    reason: str | None = None
    if now - order.placed_at >= policy.max_order_age:
        reason = "AGE"
    elif policy.max_drift_bps is not None and abs(fresh_price - order.price) * BPS >= policy.max_drift_bps * order.price:
        reason = "DRIFT"
    if reason is None:
        return RepostDecision(False)
    ev = AuditEvent(
        now, AuditCode.EXEC_ORDER_REPOSTED, Severity.INFO, f"resting order re-posted ({reason})", order.symbol,
        {"client_order_id": order.client_order_id, "old_price": str(order.price), "new_price": str(fresh_price),
         "age_ms": (now - order.placed_at) // timedelta(milliseconds=1), "reason": reason},
    )
    return RepostDecision(True, reason, fresh_price, ev)


def depth_capacity(levels: Sequence[tuple[Decimal, Decimal]], policy: LimitPolicy) -> Decimal:
    """What one cycle may take: ``depth_share`` of the quantity within ``depth_bps`` of the best level
    (``levels`` best first: the asks for a buy, the bids for a sell)."""
    if not levels:
        return ZERO
    best = levels[0][0]
    band = best * policy.depth_bps / BPS
    return policy.depth_share * sum((q for p, q in levels if abs(p - best) <= band), ZERO)


@dataclass(frozen=True)
class SplitPlan:
    children: tuple[Decimal, ...]  # child quantities, each tradable and within the notional cap
    leftover: Decimal  # not sent this cycle (depth or minimums); the next cycle sees it again
    capped_by_depth: bool = False

    @property
    def total(self) -> Decimal:
        return sum(self.children, ZERO)


def split_order(
    qty: Decimal,
    price: Decimal,
    f: VenueFilters,
    policy: LimitPolicy,
    opposite_levels: Sequence[tuple[Decimal, Decimal]] | None = None,
) -> SplitPlan:
    """Split an already-filtered quantity into near-equal children no larger than ``max_notional`` and, in
    total, no larger than what the book can take (``depth_capacity``). Every child clears the venue
    minimums; what cannot go now is ``leftover``. Raises when the cap itself is under the venue minimum."""
    if qty <= 0 or price <= 0:
        raise ValueError("split needs qty > 0 and price > 0")
    total = round_down(qty, f.qty_step)
    capped = False
    if opposite_levels is not None:
        room = round_down(depth_capacity(opposite_levels, policy), f.qty_step)
        if room < total:
            total, capped = room, True
    cap = total
    if policy.max_notional is not None:
        cap = round_down(policy.max_notional / price, f.qty_step)
        if not is_tradable(cap, price, f):
            raise ValueError(f"max_notional {policy.max_notional} is under the venue minimum at {price}")
    if total <= 0 or not is_tradable(total, price, f):
        return SplitPlan((), qty, capped)
    steps_total = int(total / f.qty_step)
    steps_cap = int(cap / f.qty_step)
    # The fewest children within the cap, sized as equally as the step allows: that maximises the smallest.
    n = -(-steps_total // steps_cap)
    base, extra = divmod(steps_total, n)
    children = tuple(f.qty_step * (base + (1 if i < extra else 0)) for i in range(n))
    if not all(is_tradable(c, price, f) for c in children):
        # Even the most even split leaves a child under the minimum: send full caps (and the remainder
        # when it clears the minimum); the rest waits as leftover.
        rest = total - cap * (steps_total // steps_cap)
        children = (cap,) * (steps_total // steps_cap) + ((rest,) if rest > 0 and is_tradable(rest, price, f) else ())
    sent = sum(children, ZERO)
    return SplitPlan(children, qty - sent, capped)
