"""Liquidation price and the forced-reduction plan that brings the liquidation distance back to target.

The risk kernel measures a notional-weighted low-tail distance (P95 by default,
``core.oms.account.weighted_liq_distance``). Under ``liq_force_reduce_below`` (8 %) the account must cut
exposure, and keeps cutting until the measure is back at ``liq_target`` (10 %): the hysteresis lives in
``core.risk.evaluate`` (``liq_blocked``), the *what to cut* lives here.

Reducing an isolated position leaves its liquidation price where it is (the margin goes with the closed
part), so a cut changes a position's *weight*, not its distance. The percentile is at or above the target
exactly when the notional of positions nearer than the target is at most ``(1 - p)`` of the total, which
gives the plan in closed form: cut the positions nearest to liquidation first, just enough. Quantities
are rounded *up* to the symbol's step (a reduction that falls short by a lot would leave the account
under target), never beyond the position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from core.events import AuditCode, AuditEvent, Severity
from core.oms.account import HeldPosition, weighted_liq_distance
from core.risk.config import RiskConfig

ZERO = Decimal(0)
ONE = Decimal(1)
# Without a step, cuts are rounded up here so an inexact division leaves no crumb of excess behind.
EXACT_QUANTUM = Decimal("1e-12")


def isolated_liq_price(
    entry: Decimal, qty: Decimal, margin: Decimal, mmr: Decimal, taker_fee: Decimal
) -> Decimal:
    """Liquidation price of an isolated position, the common simplified form (freqtrade's dry run):

    long  = (entry - margin / |qty|) / (1 - mmr - taker_fee)
    short = (entry + margin / |qty|) / (1 + mmr + taker_fee)

    ``qty`` signed (base units), ``margin`` the isolated margin posted, ``mmr`` the maintenance margin
    rate. A long whose margin covers its whole entry can never be liquidated: 0.
    """
    if qty == 0 or entry <= 0 or margin < 0 or mmr < 0 or taker_fee < 0:
        raise ValueError("liquidation price needs qty != 0, entry > 0 and non-negative margin, mmr, fee")
    per_unit = margin / abs(qty)
    if qty > 0:
        return max((entry - per_unit) / (ONE - mmr - taker_fee), ZERO)
    return (entry + per_unit) / (ONE + mmr + taker_fee)


@dataclass(frozen=True)
class Reduction:
    symbol: str
    qty: Decimal  # unsigned base units to close (reduce-only)
    distance: Decimal  # this position's liquidation distance


@dataclass(frozen=True)
class LiqReductionPlan:
    """The cuts, nearest-to-liquidation first, and the measure before and after them."""

    reductions: tuple[Reduction, ...]
    distance_before: Decimal | None
    distance_after: Decimal | None

    @property
    def needed(self) -> bool:
        return bool(self.reductions)


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def plan_liq_reduction(
    positions: Iterable[HeldPosition],
    cfg: RiskConfig,
    qty_steps: Mapping[str, Decimal] | None = None,
    target: Decimal | None = None,
) -> LiqReductionPlan:
    """The smallest nearest-first cuts that lift the P``liq_percentile`` distance to ``target``
    (``cfg.liq_target`` by default); no cuts when it is already there or no position has a liquidation
    price. Run it while ``RiskSnapshot.liq_blocked`` is set; a position with no step given is cut exactly.
    """
    goal = cfg.liq_target if target is None else target
    held = [p for p in positions if p.liq_distance is not None and p.notional > 0]
    before = weighted_liq_distance(held, cfg.liq_percentile)
    if before is None or before >= goal:
        return LiqReductionPlan((), before, before)
    steps = qty_steps or {}
    near = sorted((p for p in held if (p.liq_distance or ZERO) < goal), key=lambda p: p.liq_distance or ZERO)
    far_notional = sum((p.notional for p in held if (p.liq_distance or ZERO) >= goal), ZERO)
    tail = ONE - cfg.liq_percentile
    # Near notional allowed to stay: B <= tail x (A + B)  <=>  B <= tail / p x A.
    allowed = tail * far_notional / cfg.liq_percentile if cfg.liq_percentile < ONE else ZERO
    near_notional = sum((p.notional for p in near), ZERO)
    excess = near_notional - allowed
    cuts: list[Reduction] = []
    remaining: dict[str, HeldPosition] = {p.symbol: p for p in held}
    for p in near:
        if excess <= 0:
            break
        qty = min(abs(p.qty), excess / p.mark)
        step = steps.get(p.symbol)
        # Round up (a cut that falls short leaves the account under target); never past the position.
        qty = min(_ceil_to(qty, step if step is not None and step > 0 else EXACT_QUANTUM), abs(p.qty))
        if qty <= 0:
            continue
        distance = p.liq_distance or ZERO
        cuts.append(Reduction(p.symbol, qty, distance))
        excess -= qty * p.mark
        left = abs(p.qty) - qty
        remaining[p.symbol] = HeldPosition(
            p.symbol, left if p.qty > 0 else -left, p.cost * left / abs(p.qty), p.mark, p.liq
        )
    after = weighted_liq_distance(remaining.values(), cfg.liq_percentile)
    return LiqReductionPlan(tuple(cuts), before, after)


def liq_reduction_event(plan: LiqReductionPlan, now: datetime) -> AuditEvent | None:
    """RISK_LIQ_REDUCTION_PLANNED for a plan with cuts (None without): what will be cut and why."""
    if not plan.needed:
        return None
    return AuditEvent(
        now,
        AuditCode.RISK_LIQ_REDUCTION_PLANNED,
        Severity.ERROR,
        f"liquidation distance {plan.distance_before}: reduce {len(plan.reductions)} position(s)",
        None,
        {
            "distance_before": None if plan.distance_before is None else str(plan.distance_before),
            "distance_after": None if plan.distance_after is None else str(plan.distance_after),
            "reductions": [
                {"symbol": r.symbol, "qty": str(r.qty), "distance": str(r.distance)} for r in plan.reductions
            ],
        },
    )


@dataclass(frozen=True)
class LeverageExcess:
    """A position levered above its cap now (an event window lowers every cap to 1x): either post
    ``add_margin`` more, or close ``reduce_qty`` (rounded up to the step) keeping the margin it has."""

    symbol: str
    leverage: Decimal  # notional / isolated margin
    cap: Decimal
    add_margin: Decimal
    reduce_qty: Decimal


def leverage_excess(
    positions: Iterable[HeldPosition],
    margins: Mapping[str, Decimal],
    cfg: RiskConfig,
    stressed: bool,
    qty_steps: Mapping[str, Decimal] | None = None,
) -> tuple[LeverageExcess, ...]:
    """Positions whose effective leverage (notional / posted margin) is over ``cfg.leverage_cap`` now;
    a position with no margin known is skipped (the venue's figure is needed). New opens are refused by
    ``check_leverage``; this says what brings the ones already open back under the cap."""
    steps = qty_steps or {}
    out: list[LeverageExcess] = []
    for p in positions:
        margin = margins.get(p.symbol)
        if margin is None or margin <= 0 or p.notional <= 0:
            continue
        cap = cfg.leverage_cap(p.symbol, stressed)
        lev = p.notional / margin
        if lev <= cap:
            continue
        keep = margin * cap / p.mark  # the size this margin carries at the cap
        step = steps.get(p.symbol)
        reduce = min(_ceil_to(abs(p.qty) - keep, step if step is not None and step > 0 else EXACT_QUANTUM), abs(p.qty))
        out.append(LeverageExcess(p.symbol, lev, cap, p.notional / cap - margin, reduce))
    return tuple(out)
