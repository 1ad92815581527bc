"""Per-symbol grid settings: every number of reference-grid.md plus the realistic-mode pool rules.

``GridParams`` is the typed boundary (pydantic, frozen, unknown keys rejected). The step function never
touches the model in its hot path: ``compile_params`` turns it into a plain frozen dataclass of floats and
ints once, so a bar costs attribute reads, not validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["reference", "realistic"]


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
        return self

    def compiled(self) -> CompiledParams:
        return compile_params(self)


_DEFAULTS: dict[str, dict[str, object]] = {
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
    if code not in _DEFAULTS:
        raise ValueError(f"no grid defaults for {code}; known: {sorted(_DEFAULTS)}")
    values: dict[str, object] = {"code": code, "mode": mode, **_DEFAULTS[code], **overrides}
    return GridParams(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CompiledParams:
    """``GridParams`` flattened for the hot loop (plain floats/ints, derived constants precomputed)."""

    source: GridParams
    code: str
    code_tag: str
    realistic: bool
    nominal_cap: float
    layers: int
    weights: tuple[float, ...]
    sum_weights: float
    lot: int
    atr_grid_factor: float
    grid_step_floor: float
    sell_profit_threshold: float
    sell_threshold_factor: float
    layer_step_bonus: float
    breaker_mult: float
    up_step_mult: float
    up_tp_mult: float
    up_size: float
    down_step_mult: float
    down_tp_mult: float
    down_size: float
    cooling: bool
    cooling_bars: int
    cooling_bars_oversold: int
    cooling_rsi: float
    float_stop: bool
    max_cycle_float_loss: float
    commission_rate: Decimal
    commission_min: Decimal
    reserve_ratio: Decimal
    penalty_trigger: float
    penalty_release: float
    penalty_multiplier: float
    base_position_shares: int
    limit_offset_ticks: int
    no_trade_minutes: frozenset[int]


def compile_params(p: GridParams) -> CompiledParams:
    digits = "".join(ch for ch in p.code.split(".", 1)[0] if ch.isalnum())
    return CompiledParams(
        source=p,
        code=p.code,
        code_tag=digits[-4:] if len(digits) >= 4 else digits.rjust(4, "0"),
        realistic=p.mode == "realistic",
        nominal_cap=float(p.nominal_cap),
        layers=p.layers,
        weights=tuple(float(w) for w in p.weights),
        sum_weights=float(sum(p.weights)),
        lot=p.lot,
        atr_grid_factor=p.atr_grid_factor,
        grid_step_floor=p.grid_step_floor,
        sell_profit_threshold=p.sell_profit_threshold,
        sell_threshold_factor=p.sell_threshold_factor,
        layer_step_bonus=p.layer_step_bonus,
        breaker_mult=p.breaker_mult,
        up_step_mult=p.up_step_mult,
        up_tp_mult=p.up_tp_mult,
        up_size=p.up_size,
        down_step_mult=p.down_step_mult,
        down_tp_mult=p.down_tp_mult,
        down_size=p.down_size,
        cooling=p.cooling,
        cooling_bars=p.cooling_bars,
        cooling_bars_oversold=p.cooling_bars_oversold,
        cooling_rsi=p.cooling_rsi,
        float_stop=p.float_stop,
        max_cycle_float_loss=p.max_cycle_float_loss,
        commission_rate=Decimal(p.commission_rate),
        commission_min=Decimal(p.commission_min),
        reserve_ratio=Decimal(p.reserve_ratio),
        penalty_trigger=p.penalty_trigger,
        penalty_release=p.penalty_release,
        penalty_multiplier=p.penalty_multiplier,
        base_position_shares=p.base_position_shares,
        limit_offset_ticks=p.limit_offset_ticks if p.mode == "realistic" else 0,
        no_trade_minutes=frozenset(p.no_trade_minutes) if p.mode == "realistic" else frozenset(),
    )
