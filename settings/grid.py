"""Per-symbol grid settings: the ``GridParams`` model and the tuned per-symbol defaults.

Every number of reference-grid.md plus the realistic-mode pool rules. ``GridParams`` is the typed boundary
(pydantic, frozen, unknown keys rejected); the grid core compiles it once (``mac.grid.params.compile_params``)
so its hot loop never touches the model. It lives here, below ``mac.grid``, because the config that holds
its overrides (``settings.grid_section``) is validated here, and every process resolves a symbol's
parameters through ``settings.resolve.grid_params``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["reference", "realistic"]

REFERENCE_ANCHOR = (
    "anchor_follows_up is a realistic-mode rule; reference mode keeps reference-grid.md's anchor"
    " (moved only by a buy or by going flat) exactly"
)


class GridParams(BaseModel):
    """All settings of one symbol's grid. Defaults are the 512890.SH column of the reference table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = "512890.SH"
    mode: Mode = "realistic"

    # sizing
    nominal_cap: float = Field(default=200_000.0, gt=0)
    layers: int = Field(default=9, ge=1, le=64)
    weights: tuple[float, ...] = (1.0,) * 9
    lot: int = Field(default=100, ge=1)
    tick: float = Field(default=0.001, gt=0)

    # indicators
    atr_period: int = Field(default=14, ge=1)
    ma_period: int = Field(default=60, ge=1)
    slope_lag: int = Field(default=5, ge=1)
    slope_span: int = Field(default=3, ge=1)
    atr_avg_period: int = Field(default=60, ge=1)
    rsi_period: int = Field(default=14, ge=1)

    # grid
    atr_grid_factor: float = Field(default=0.32, ge=0)
    grid_step_floor: float = Field(default=0.001, ge=0)
    sell_profit_threshold: float = Field(default=0.004, gt=0)
    sell_threshold_factor: float = Field(default=1.0, gt=0)
    layer_step_bonus: float = Field(default=0.0001, ge=0)
    breaker_mult: float = Field(default=2.0, gt=0)
    up_step_mult: float = 1.2
    up_tp_mult: float = 1.33
    up_size: float = 0.7
    down_step_mult: float = 1.0
    down_tp_mult: float = 0.83
    down_size: float = 1.2

    # cooling-off after the lots went flat
    cooling: bool = False
    cooling_bars: int = Field(default=15, ge=0)
    cooling_bars_oversold: int = Field(default=5, ge=0)
    cooling_rsi: float = 35.0

    # float-loss stop
    float_stop: bool = False
    max_cycle_float_loss: float = Field(default=15_000.0, gt=0)

    # costs
    commission_rate: Decimal = Decimal("0.0001")
    commission_min: Decimal = Field(default=Decimal("0"), description="yuan per order (realistic mode)")

    # realistic mode: the shared pool
    physical_pool: Decimal = Decimal("300000")
    reserve_ratio: Decimal = Decimal("0.15")
    penalty_trigger: float = 0.90
    penalty_release: float = 0.85
    penalty_multiplier: float = 1.5
    base_position_shares: int = Field(default=0, ge=0)
    order_ttl_bars: int = Field(default=5, ge=1, description="backtest: bars a limit order may rest")
    limit_offset_ticks: int = Field(
        default=1, ge=0, description="realistic: buy limit this many ticks above the close, sell below, to cross a one-tick spread"
    )
    no_trade_minutes: tuple[int, ...] = Field(
        default=(690, 900), description="realistic: China-time minutes of day (11:30, 15:00) whose bar closes a session"
    )
    anchor_follows_up: bool = Field(
        default=False,
        description="realistic: while the grid is flat (no lot, no pending order) the anchor rises with the close"
        " and never falls, so the next buy trigger trails a rally instead of waiting at the last buy's price",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GridParams:
        if len(self.weights) != self.layers:
            raise ValueError("weights must have one entry per layer")
        if any(w <= 0 for w in self.weights):
            raise ValueError("weights must be positive")
        if not self.penalty_release <= self.penalty_trigger:
            raise ValueError("penalty_release must not exceed penalty_trigger (hysteresis)")
        if not (Decimal(0) <= self.reserve_ratio < Decimal(1)):
            raise ValueError("reserve_ratio must be in [0, 1)")
        if self.anchor_follows_up and self.mode == "reference":
            raise ValueError(REFERENCE_ANCHOR)
        return self


_TUNED: dict[str, dict[str, object]] = {
    "512890.SH": dict(
        atr_grid_factor=0.32,
        grid_step_floor=0.001,
        sell_profit_threshold=0.004,
        sell_threshold_factor=1.0,
        cooling=False,
    ),
    "159201.SZ": dict(
        atr_grid_factor=0.38,
        grid_step_floor=0.0012,
        sell_profit_threshold=0.005,
        sell_threshold_factor=1.4,
        cooling=True,
    ),
}


def default_params(code: str, mode: Mode = "realistic", **overrides: object) -> GridParams:
    """The tuned per-symbol defaults of the reference table, optionally overridden."""
    if code not in _TUNED:
        raise ValueError(f"no grid defaults for {code}; known: {sorted(_TUNED)}")
    values: dict[str, object] = {"code": code, "mode": mode, **_TUNED[code], **overrides}
    return GridParams(**values)  # type: ignore[arg-type]


TUNED_CODES: tuple[str, ...] = tuple(_TUNED)
"""The symbols with tuned defaults (a per-symbol ``grid`` override may name only these)."""
