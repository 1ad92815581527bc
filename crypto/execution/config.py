"""The execution engine's knobs: one validated, frozen model (pydantic at the boundary)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExecConfig(BaseModel):
    """How the engine approaches its targets. Times in milliseconds; fractions as Decimals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: tuple[str, ...] = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    settle_asset: str = "USDT"
    id_prefix: str = Field(default="gbt", min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")

    # Orders: limit by default, ``limit_offset_bps`` from the best price on our own side (positive = more
    # passive, negative = crossing the spread); forced reductions may go as market orders.
    order_type: Literal["limit", "market"] = "limit"
    limit_offset_bps: Decimal = Decimal("0")
    post_only: bool = False
    forced_order_type: Literal["limit", "market"] = "market"
    max_order_age_ms: int = Field(default=30_000, gt=0)
    # Splits: one child at most this notional and this share of the opposite side's visible depth.
    max_order_notional: Decimal = Decimal("100000")
    max_depth_share: Decimal = Decimal("0.5")
    depth_levels: int = Field(default=5, ge=1)

    # Rebalancing toward the target: hysteresis (fraction of the target) and a minimum interval.
    hysteresis: Decimal = Decimal("0.05")
    min_interval_ms: int = Field(default=60_000, ge=0)

    # Leverage and margin: what the engine sets on the venue (capped by the risk whitelist).
    leverage: Decimal = Decimal("2")
    margin_mode: Literal["isolated", "cross"] = "isolated"

    # Rate limit: the engine's own token bucket, the backoff after a venue refusal, and the downgrade (the
    # bucket refills at ``downgrade_factor`` of its rate and only reducing orders and cancels go out) that
    # lasts ``downgrade_ms`` after the last refusal.
    rate_capacity: Decimal = Decimal("20")
    rate_per_second: Decimal = Decimal("10")
    backoff_base_ms: int = Field(default=200, gt=0)
    backoff_cap_ms: int = Field(default=10_000, gt=0)
    downgrade_factor: Decimal = Decimal("0.5")
    downgrade_ms: int = Field(default=5_000, ge=0)

    # Unknown outcomes: looked up by client id; lost after ``lost_after_lookups`` misses ``lookup_gap_ms`` apart.
    lookup_gap_ms: int = Field(default=1_000, gt=0)
    lost_after_lookups: int = Field(default=3, ge=1)
    send_retries: int = Field(default=3, ge=0)

    # Reconciliation with the venue: at start and every ``reconcile_interval_ms``.
    reconcile_interval_ms: int = Field(default=60_000, gt=0)

    # Protective orders (stop first, confirmed within ``attach_timeout_ms``; take-profit second; OCO).
    protective: bool = False
    attach_timeout_ms: int = Field(default=2_000, gt=0)
    stop_distance: Decimal = Decimal("0.05")  # used when the strategy gives no stop price
    take_profit_distance: Decimal | None = Decimal("0.10")
    missing_sl_policy: Literal["REDUCE_ONLY", "FREEZE_SYMBOL"] = "REDUCE_ONLY"

    # Liquidation distance: while the P95 is under the risk line, each cycle cuts this share of the position.
    liq_reduce_share: Decimal = Decimal("0.5")

    @model_validator(mode="after")
    def _sane(self) -> ExecConfig:
        if not (Decimal(0) < self.max_depth_share <= Decimal(1)):
            raise ValueError("max_depth_share must be in (0, 1]")
        if not (Decimal(0) < self.downgrade_factor <= Decimal(1)):
            raise ValueError("downgrade_factor must be in (0, 1]")
        if not (Decimal(0) < self.liq_reduce_share <= Decimal(1)):
            raise ValueError("liq_reduce_share must be in (0, 1]")
        if self.leverage < 1 or self.rate_capacity <= 0 or self.rate_per_second <= 0:
            raise ValueError("leverage >= 1, rate_capacity > 0 and rate_per_second > 0")
        if self.max_order_notional <= 0 or self.stop_distance <= 0:
            raise ValueError("max_order_notional and stop_distance must be positive")
        return self
