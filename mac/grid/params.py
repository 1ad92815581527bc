"""The grid's settings compiled for the hot loop.

``GridParams`` (``settings.grid``) is the typed boundary; the step function never touches the model in its
hot path: ``compile_params`` turns it into a plain frozen dataclass of floats and ints once, so a bar costs
attribute reads, not validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from settings.grid import REFERENCE_ANCHOR, GridParams


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
    anchor_follows_up: bool


def compile_params(p: GridParams) -> CompiledParams:
    if p.anchor_follows_up and p.mode != "realistic":
        # model_copy(update={"mode": ...}) skips GridParams' validator; refuse here too
        raise ValueError(REFERENCE_ANCHOR)
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
        anchor_follows_up=p.anchor_follows_up,
    )
