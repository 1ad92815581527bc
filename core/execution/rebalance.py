"""Rebalance toward a risk-adjusted target, with hysteresis and a minimum interval.

The strategy's target is scaled by the risk budget; tiny differences and too-frequent trades are skipped
(fees and noise). In the reducing states (COOLDOWN, FUSE, REDUCE_ONLY) only trades that shrink |exposure|
pass; a forced reduction (FUSE, Force Reduce) ignores hysteresis and the interval, because waiting is the
risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from core.execution.filters import VenueFilters, round_down, target_after_minimum
from core.risk.state import REDUCING_STATES, RiskState

ZERO = Decimal(0)


class RebalanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Skip when |target - current| is under this fraction of |target| (or of |current| when target is 0).
    hysteresis: Decimal = Decimal("0.05")
    min_interval: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class RebalanceDecision:
    delta_qty: Decimal  # signed: + buy, - sell; 0 = no trade
    target_qty: Decimal
    reason: str
    reduces: bool = False


def plan_rebalance(
    current_qty: Decimal,
    strategy_target: Decimal,
    risk_budget: Decimal,
    price: Decimal,
    filters: VenueFilters,
    state: RiskState,
    last_trade_at: datetime | None,
    now: datetime,
    cfg: RebalanceConfig,
    forced: bool = False,
    interval_factor: Decimal = Decimal(1),
) -> RebalanceDecision:
    """The trade (if any) that moves ``current_qty`` toward ``strategy_target * risk_budget``.

    ``interval_factor`` stretches the minimum interval while execution is unhealthy (a degraded rate-limit
    guard, a slow HealthVerdict)."""
    target = target_after_minimum(strategy_target * risk_budget, price, filters)
    if state is RiskState.FUSE:
        target = ZERO  # economic full close
    if state in REDUCING_STATES:
        # Only toward zero, never past it and never growing.
        if current_qty == 0 or (target != 0 and (target > 0) != (current_qty > 0)):
            target = ZERO
        elif abs(target) > abs(current_qty):
            target = current_qty
    delta = round_down(target - current_qty, filters.qty_step)
    if delta == 0:
        return RebalanceDecision(ZERO, target, "AT_TARGET")
    reduces = abs(current_qty + delta) < abs(current_qty) and (current_qty + delta) * current_qty >= 0
    if not forced:
        if last_trade_at is not None and now - last_trade_at < cfg.min_interval * float(interval_factor):
            return RebalanceDecision(ZERO, target, "MIN_INTERVAL", reduces)
        scale = abs(target) if target != 0 else abs(current_qty)
        if target != 0 and abs(delta) < cfg.hysteresis * scale:
            return RebalanceDecision(ZERO, target, "HYSTERESIS", reduces)
    return RebalanceDecision(delta, target, "TRADE", reduces)
