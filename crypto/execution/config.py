"""The execution engine's knobs: one validated, frozen model (pydantic at the boundary)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.execution.pricing import LimitPolicy
from core.execution.rate_limit import RateLimitConfig

MAX_OFFSET_BPS = Decimal(1000)  # a limit 10 % off the touch is already no limit at all
MAX_LEVERAGE = Decimal(125)  # the highest any venue offers; the risk whitelist caps far lower


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
    depth_bps: Decimal = Decimal("50")  # book levels within this of the best count as depth
    depth_levels: int = Field(default=20, ge=1)  # levels read from the venue

    # Rebalancing toward the target: hysteresis (fraction of the target) and a minimum interval.
    hysteresis: Decimal = Decimal("0.05")
    min_interval_ms: int = Field(default=60_000, ge=0)

    # Leverage and margin: what the engine sets on the venue (capped by the risk whitelist). ``margin_mode``
    # is the account's margin regime: "isolated" (OKX: every position its own margin; a position found in
    # cross blocks opens) or "cross" for an account that is cross-margined *by design* (Binance portfolio
    # margin: UM positions share the portfolio's margin, positionRisk states no isolated mode). "cross" must be
    # paired with RiskConfig.require_isolated_margin=False and "isolated" with True (``check_margin_regime``):
    # the engine refuses to start on a contradiction, so a cross-by-design account is never mistaken for a
    # misconfigured isolated one, and an isolated account never runs with the cross guard off by accident.
    leverage: Decimal = Decimal("2")
    margin_mode: Literal["isolated", "cross"] = "isolated"

    # Rate limit (core.execution.rate_limit.RateLimitGuard): our own token bucket; after
    # ``rate_refusals_to_backoff`` venue refusals inside ``rate_refusal_window_ms`` an exponential backoff and a
    # downgrade (only reducing orders and cancels, risk DEGRADED) until ``rate_quiet_ms`` pass without one.
    rate_capacity: Decimal = Decimal("20")
    rate_per_second: Decimal = Decimal("10")
    rate_refusals_to_backoff: int = Field(default=3, ge=1)
    rate_refusal_window_ms: int = Field(default=60_000, gt=0)
    backoff_base_ms: int = Field(default=200, gt=0)
    backoff_cap_ms: int = Field(default=10_000, gt=0)
    rate_quiet_ms: int = Field(default=5_000, gt=0)
    rate_jitter: float = Field(default=0.0, ge=0, le=1)

    # Unknown outcomes: looked up by client id; lost after ``lost_after_lookups`` misses ``lookup_gap_ms`` apart.
    lookup_gap_ms: int = Field(default=1_000, gt=0)
    lost_after_lookups: int = Field(default=3, ge=1)
    send_retries: int = Field(default=3, ge=0)

    # The journal is compacted into one snapshot record after this many records (between two cycles, and at
    # start): a restart replays at most about this many (5,000 records: ~0.1 s).
    compact_after_records: int = Field(default=5_000, ge=100)
    # The audit log rotates into numbered segments once the active file holds this many bytes.
    audit_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Orders at the venue under ``id_prefix`` that the journal does not know ("orphans"): "refuse" = another
    # engine (another state folder) or a lost journal: refuse to start, halt if found later, cancel nothing;
    # "cancel" = cancel them (close-all; an operator who knows the folder was lost).
    orphan_policy: Literal["refuse", "cancel"] = "refuse"

    # Reconciliation with the venue: at start and every ``reconcile_interval_ms``.
    reconcile_interval_ms: int = Field(default=60_000, gt=0)
    # The ledger reads the venue's funding bills this often per symbol with a position (settlements are hours
    # apart; fills are read whenever a fill report was folded).
    funding_read_interval_ms: int = Field(default=15 * 60_000, gt=0)
    # A fill's or a bill's time further than this past the venue's own clock (or server-time answers this far
    # apart) is an outlier: audited once and clamped, never followed (a watermark at 2099 would skip every
    # later fill). Compared with the venue's clock, never ours: fills are stamped by the venue.
    max_clock_skew_ms: int = Field(default=5 * 60_000, gt=0)

    # Protective orders (stop first, confirmed within ``attach_timeout_ms``; take-profit second; OCO).
    protective: bool = False
    attach_timeout_ms: int = Field(default=2_000, gt=0)
    stop_distance: Decimal = Decimal("0.05")  # used when the strategy gives no stop price
    take_profit_distance: Decimal | None = Decimal("0.10")
    missing_sl_policy: Literal["REDUCE_ONLY", "FREEZE_SYMBOL"] = "REDUCE_ONLY"

    def limit_policy(self) -> LimitPolicy:
        """The core's limit-order policy (price offset, re-post age, splits) from these knobs."""
        return LimitPolicy(offset_bps=self.limit_offset_bps, post_only=self.post_only,
                           max_order_age=timedelta(milliseconds=self.max_order_age_ms),
                           max_notional=self.max_order_notional, depth_bps=self.depth_bps,
                           depth_share=self.max_depth_share)

    def rate_limit(self) -> RateLimitConfig:
        return RateLimitConfig(
            capacity=self.rate_capacity, refill_per_second=self.rate_per_second,
            refusals_to_backoff=self.rate_refusals_to_backoff,
            refusal_window=timedelta(milliseconds=self.rate_refusal_window_ms),
            backoff_base=timedelta(milliseconds=self.backoff_base_ms),
            backoff_cap=timedelta(milliseconds=self.backoff_cap_ms), jitter=self.rate_jitter,
            quiet_period=timedelta(milliseconds=self.rate_quiet_ms),
        )

    @model_validator(mode="after")
    def _sane(self) -> ExecConfig:
        if not (Decimal(0) < self.max_depth_share <= Decimal(1)):
            raise ValueError("max_depth_share must be in (0, 1]")
        if self.backoff_cap_ms < self.backoff_base_ms:
            raise ValueError("backoff_cap_ms must be >= backoff_base_ms")
        if self.leverage < 1 or self.rate_capacity <= 0 or self.rate_per_second <= 0:
            raise ValueError("leverage >= 1, rate_capacity > 0 and rate_per_second > 0")
        if self.max_order_notional <= 0 or self.stop_distance <= 0:
            raise ValueError("max_order_notional and stop_distance must be positive")
        # One knob pushed to an extreme turns prices negative or the hysteresis off: refused here, by name.
        if not (Decimal(0) <= self.hysteresis < Decimal(1)):
            raise ValueError("hysteresis must be in [0, 1)")
        if abs(self.limit_offset_bps) > MAX_OFFSET_BPS or self.depth_bps < 0:
            raise ValueError(f"limit_offset_bps must be within +-{MAX_OFFSET_BPS} and depth_bps >= 0")
        if self.stop_distance >= 1 or (self.take_profit_distance is not None and self.take_profit_distance <= 0):
            raise ValueError("stop_distance must be in (0, 1) and take_profit_distance > 0")
        if self.leverage > MAX_LEVERAGE:
            raise ValueError(f"leverage above {MAX_LEVERAGE}")
        if not self.symbols or len(set(self.symbols)) != len(self.symbols) or not self.settle_asset:
            raise ValueError("symbols must be distinct and at least one; settle_asset must be named")
        return self


def check_margin_regime(cfg: ExecConfig, require_isolated_margin: bool) -> None:
    """The engine's margin regime and the risk kernel's cross-margin guard must say the same thing."""
    if cfg.margin_mode == "isolated" and not require_isolated_margin:
        raise ValueError("margin_mode 'isolated' with RiskConfig.require_isolated_margin=False: a position "
                         "found in cross margin would go unnoticed; set require_isolated_margin=True")
    if cfg.margin_mode == "cross" and require_isolated_margin:
        raise ValueError("margin_mode 'cross' (an account cross-margined by design, e.g. Binance portfolio "
                         "margin) needs RiskConfig.require_isolated_margin=False; on an isolated account use "
                         "margin_mode 'isolated'")
