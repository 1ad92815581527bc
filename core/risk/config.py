"""Every risk threshold in one validated, frozen model; defaults are the design's numbers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RiskConfig(BaseModel):
    """Thresholds for the risk state machine, the crypto rules and the order checks.

    Fractions are Decimals in [0, 1] (``0.08`` = 8 %). Leverage keys are base assets matched against the
    symbol's prefix (``BTC`` matches ``BTCUSDT`` and ``BTC-USDT-SWAP``); a symbol with no key may only use
    ``default_max_leverage`` (1x: ETFs and anything unlisted are never levered).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Account drawdown from peak equity.
    degraded_drawdown: Decimal = Decimal("0.08")
    cooldown_drawdown: Decimal = Decimal("0.12")
    fuse_drawdown: Decimal = Decimal("0.20")
    # DEGRADED -> NORMAL only once the drawdown is this far back under the DEGRADED line (no flapping).
    recovery_hysteresis: Decimal = Decimal("0.01")
    # COOLDOWN lasts at least this long and ends only once the drawdown is back under cooldown_drawdown.
    cooldown_duration: timedelta = timedelta(hours=6)
    # COOLDOWN is a forced reduction: sell down to this share of the exposure held when it began.
    cooldown_exposure_share: Decimal = Decimal("0.5")
    fuse_cooldown: timedelta = timedelta(hours=24)

    # Risk budget (fraction of the normal budget) and grid threshold multiplier by state.
    degraded_budget: Decimal = Decimal("0.5")
    degraded_threshold_multiplier: Decimal = Decimal("1.5")
    cooldown_budget: Decimal = Decimal("0.5")
    recovery_stages: tuple[Decimal, ...] = (Decimal("0.25"), Decimal("0.5"), Decimal("1"))
    recovery_stage_interval: timedelta = timedelta(hours=24)

    # Crypto: notional-weighted liquidation distance.
    liq_force_reduce_below: Decimal = Decimal("0.08")
    liq_target: Decimal = Decimal("0.10")
    liq_percentile: Decimal = Decimal("0.95")
    max_leverage: dict[str, Decimal] = Field(
        default_factory=lambda: {"BTC": Decimal("3"), "ETH": Decimal("3"), "SOL": Decimal("2")}
    )
    default_max_leverage: Decimal = Decimal("1")
    # In an event window or the EXTREME regime every symbol is capped here.
    stressed_max_leverage: Decimal = Decimal("1")
    event_window_budget: Decimal = Decimal("0.5")
    event_window_freeze_opens: tuple[str, ...] = ("SOL",)
    require_isolated_margin: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> RiskConfig:
        if not (
            Decimal(0) < self.degraded_drawdown < self.cooldown_drawdown < self.fuse_drawdown < Decimal(1)
        ):
            raise ValueError("drawdown thresholds must satisfy 0 < degraded < cooldown < fuse < 1")
        if not (Decimal(0) <= self.recovery_hysteresis < self.degraded_drawdown):
            raise ValueError("recovery_hysteresis must be in [0, degraded_drawdown)")
        if not (Decimal(0) <= self.cooldown_exposure_share < Decimal(1)):
            raise ValueError("cooldown_exposure_share must be in [0, 1)")
        if not self.recovery_stages or self.recovery_stages[-1] != Decimal(1):
            raise ValueError("recovery_stages must end at 1 (full budget)")
        if any(b <= a for a, b in zip(self.recovery_stages, self.recovery_stages[1:], strict=False)):
            raise ValueError("recovery_stages must increase")
        if not (Decimal(0) < self.liq_force_reduce_below <= self.liq_target < Decimal(1)):
            raise ValueError("liquidation thresholds must satisfy 0 < force_reduce_below <= target < 1")
        if not (Decimal(0) < self.liq_percentile <= Decimal(1)):
            raise ValueError("liq_percentile must be in (0, 1]")
        if any(v < 1 for v in self.max_leverage.values()) or self.default_max_leverage < 1:
            raise ValueError("leverage caps must be >= 1")
        if self.stressed_max_leverage < 1:
            raise ValueError("stressed_max_leverage must be >= 1 (1 = unlevered in an event window)")
        keys = [k.upper() for k in self.max_leverage]
        if any(not k or not k.isalnum() for k in keys) or len(set(keys)) != len(keys):
            raise ValueError("max_leverage keys must be distinct base assets (alphanumeric, case-insensitive)")
        return self

    def leverage_cap(self, symbol: str, stressed: bool) -> Decimal:
        """Largest leverage allowed for ``symbol`` now (stressed = event window or EXTREME regime)."""
        if stressed:
            return min(self.stressed_max_leverage, self._listed_cap(symbol))
        return self._listed_cap(symbol)

    def _listed_cap(self, symbol: str) -> Decimal:
        base = base_asset(symbol, tuple(self.max_leverage))
        return self.max_leverage[base] if base is not None else self.default_max_leverage


def base_asset(symbol: str, candidates: tuple[str, ...]) -> str | None:
    """The longest candidate the symbol starts with (case-insensitive), or None."""
    upper = symbol.upper()
    for cand in sorted(candidates, key=len, reverse=True):
        if upper.startswith(cand.upper()):
            return cand
    return None
