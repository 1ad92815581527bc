"""Execution health per symbol: an abnormal reject rate or slippage shrinks size, slows down, or freezes.

Pure: ``record`` returns a new tracker, ``assess`` reads it with the time passed in. Only the recent
``window`` counts, so a symbol recovers by itself once the venue behaves again (a FREEZE is latched by
the risk snapshot instead and needs Force Unlock Symbol).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

ONE = Decimal(1)


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: timedelta = timedelta(minutes=30)
    min_samples: int = 5
    reject_rate_slow: Decimal = Decimal("0.2")
    reject_rate_freeze: Decimal = Decimal("0.5")
    slippage_budget_bps: Decimal = Decimal("20")
    slippage_freeze_bps: Decimal = Decimal("60")
    shrink_factor: Decimal = Decimal("0.5")
    slow_factor: Decimal = Decimal("2")


@dataclass(frozen=True)
class Sample:
    ts: datetime
    rejected: bool
    slippage_bps: Decimal | None = None  # None for rejects and unfilled orders


@dataclass(frozen=True)
class ExecutionHealth:
    samples: dict[str, tuple[Sample, ...]] = field(default_factory=dict)

    def record(self, symbol: str, sample: Sample, cfg: HealthConfig) -> ExecutionHealth:
        """Add one outcome and drop samples older than the window."""
        kept = tuple(s for s in self.samples.get(symbol, ()) if s.ts > sample.ts - cfg.window) + (sample,)
        return replace(self, samples={**self.samples, symbol: kept})


@dataclass(frozen=True)
class HealthVerdict:
    size_factor: Decimal = ONE  # multiply order size
    interval_factor: Decimal = ONE  # multiply the minimum interval between orders
    freeze: bool = False
    reasons: tuple[str, ...] = ()


def assess(health: ExecutionHealth, symbol: str, now: datetime, cfg: HealthConfig) -> HealthVerdict:
    """Verdict for one symbol over the recent window (no judgement below ``min_samples``)."""
    recent = [s for s in health.samples.get(symbol, ()) if s.ts > now - cfg.window]
    if len(recent) < cfg.min_samples:
        return HealthVerdict()
    reject_rate = Decimal(sum(s.rejected for s in recent)) / Decimal(len(recent))
    slips = [s.slippage_bps for s in recent if s.slippage_bps is not None]
    avg_slip = sum(slips, Decimal(0)) / len(slips) if slips else Decimal(0)
    reasons: list[str] = []
    if reject_rate >= cfg.reject_rate_freeze:
        reasons.append("REJECT_RATE_FREEZE")
    if avg_slip >= cfg.slippage_freeze_bps:
        reasons.append("SLIPPAGE_FREEZE")
    if reasons:
        return HealthVerdict(Decimal(0), cfg.slow_factor, True, tuple(reasons))
    size, interval = ONE, ONE
    if reject_rate >= cfg.reject_rate_slow:
        interval = cfg.slow_factor
        reasons.append("REJECT_RATE_SLOW")
    if avg_slip > cfg.slippage_budget_bps:
        size = cfg.shrink_factor
        reasons.append("SLIPPAGE_OVER_BUDGET")
    return HealthVerdict(size, interval, False, tuple(reasons))
