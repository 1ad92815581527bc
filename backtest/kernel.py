"""The backtest's accelerator: find the bars on which ``step`` might act, vectorised, and call ``step``
(the live node's decision code) on those bars only, in both modes.

On most bars nothing happens: the close sits between the next buy trigger and the lowest take-profit. For
a given ``GridState`` in reference mode, ``step`` returns that state unchanged with no signal and no event
unless one of these holds on the bar (``mac.grid.decide._step_reference``):

* the anchor is not set yet (the first usable bar sets it);
* some lot is at its take-profit: ``close >= buy_price * take_profit_multiplier(slope)``; the lowest
  ``buy_price`` decides, since multiplying by a positive constant keeps the order;
* the float stop is on and the held lots' loss is beyond ``max_cycle_float_loss``;
* fewer than ``layers`` lots are held and the buy trigger fires: ``close <= anchor * (1 - buy_step)``
  (the breaker and the cooling-off only ever *skip* a triggered buy, with an event, so a bar that does
  not trigger emits neither).

``candidate_bars`` marks every usable bar where one of those may hold, with a small relative margin so a
last-bit difference between the vectorised and the scalar arithmetic can only add a candidate, never drop
one. Calling ``step`` on a candidate that turns out quiet is harmless: ``step`` decides. The marks stay
valid while the state does, so ``backtest.engine`` recomputes them only after a bar that changed it, over
windows that grow while nothing happens. Realistic mode adds the lot statuses (lots being sold do not
count, only OPEN lots make the float stop's loss), the risk mode's buy-step multiplier, and one check
the engine makes per bar: the pool view would flip the penalty (an event); with the opt-in
``anchor_follows_up`` and a flat grid (no lot, no order), every close above the anchor (it moves the anchor).
``tests/backtest/test_kernel.py`` holds the result equal to ``step`` on every bar, on random paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mac.grid.indicators import IndicatorValues
from mac.grid.params import CompiledParams
from mac.grid.rules import anchor_follows_up, penalty_after, take_profit_multiplier
from mac.grid.state import OPEN, PENDING_SELL, GridState, PoolView
from marketdata.bar import BarTuple

if TYPE_CHECKING:
    from marketdata.bars import Bars

# Relative slack on every threshold: the filter may wake ``step`` on a bar a hair away from acting, and
# never sleeps through one because numpy rounded a product the other way.
_MARGIN = 1e-9
FIRST_WINDOW = 1024  # bars marked after a state change
MAX_WINDOW = 1 << 17  # windows double up to this while nothing happens


@dataclass(frozen=True)
class BarColumns:
    """One symbol's bars and precomputed indicators as columns, plus the parts of the buy step and the
    take-profit that depend on the bar alone (computed once, so marking a window is a few array passes).

    ``base_step`` is ``buy_step`` before the layer bonus, the penalty and the risk multiplier; ``tp_mult``
    is ``take_profit_multiplier``. On warm-up bars they are ``inf``, which no close can reach."""

    bars: Bars
    atr: np.ndarray
    slope: np.ndarray
    atr_avg: np.ndarray
    rsi: np.ndarray
    usable_index: np.ndarray
    base_step: np.ndarray
    tp_mult: np.ndarray

    @classmethod
    def of(cls, bars: Bars, ind: dict[str, np.ndarray], cp: CompiledParams) -> BarColumns:
        slope, close = ind["slope"], bars.c
        warm_up = ind["usable_index"] < 0
        with np.errstate(invalid="ignore", divide="ignore"):
            # buy_step (mac.grid.rules) column-wise, in the same order of operations
            step_ = ind["atr"] / close * cp.atr_grid_factor
            step_ = np.where(cp.grid_step_floor > step_, cp.grid_step_floor, step_)
            step_ = np.where(
                slope > 0, step_ * cp.up_step_mult, np.where(slope < 0, step_ * cp.down_step_mult, step_)
            )
            tp_up, tp_down, tp_flat = (take_profit_multiplier(x, cp) for x in (1.0, -1.0, 0.0))
            tp_mult = np.where(slope > 0, tp_up, np.where(slope < 0, tp_down, tp_flat))
        step_[warm_up] = np.inf
        tp_mult[warm_up] = np.inf
        usable_index = ind["usable_index"]
        return cls(bars, ind["atr"], slope, ind["atr_avg"], ind["rsi"], usable_index, step_, tp_mult)

    def __len__(self) -> int:
        return int(self.usable_index.shape[0])

    def bar(self, i: int) -> BarTuple:
        b = self.bars
        return BarTuple(int(b.t[i]), float(b.o[i]), float(b.h[i]), float(b.l[i]), float(b.c[i]))

    def indicators(self, i: int) -> IndicatorValues:
        return IndicatorValues(
            float(self.atr[i]),
            float(self.slope[i]),
            float(self.atr_avg[i]),
            float(self.rsi[i]),
            int(self.usable_index[i]),
        )


def candidate_bars(
    state: GridState,
    cp: CompiledParams,
    cols: BarColumns,
    start: int,
    stop: int,
    risk_multiplier: float = 1.0,
) -> np.ndarray:
    """Indices in ``[start, stop)`` of the usable bars where ``step`` might change ``state`` or emit anything
    with precomputed indicators and this buy-step ``risk_multiplier``; on every other bar it returns
    ``state`` and nothing. Realistic mode: only while the pool leaves the penalty as it is (the caller
    checks ``penalty_after`` per bar; a flip is an event)."""
    if state.anchor is None:
        return np.flatnonzero(cols.usable_index[start:stop] >= 0) + start
    close = cols.bars.c[start:stop]
    lots = state.lots
    act = None
    if lots:
        # any lot at its take-profit wakes step (it then picks the OPEN, sellable ones)
        lowest = min(lot.buy_price for lot in lots)
        act = close >= (lowest * (1 - _MARGIN)) * cols.tp_mult[start:stop]
        held = [lot for lot in lots if lot.status == OPEN]
        if cp.float_stop and held:
            shares = sum(lot.shares for lot in held)
            cost = 0.0
            for lot in held:
                cost += float(lot.cost)
            loss_limit = cp.max_cycle_float_loss
            breach = shares * close - cost < -loss_limit + _MARGIN * (abs(cost) + loss_limit)
            act |= breach & (cols.usable_index[start:stop] >= 0)
    n = sum(1 for lot in lots if lot.status != PENDING_SELL)  # lots being sold do not count
    if n < cp.layers:
        scale = 1.0
        if state.penalty_on:
            scale = cp.penalty_multiplier
        if risk_multiplier != 1.0:
            scale *= risk_multiplier
        anchor = state.anchor
        # close <= anchor * (1 - step), widened by the margin; step as buy_step builds it from base_step
        step_ = cols.base_step[start:stop] + cp.layer_step_bonus * n
        if scale != 1.0:
            step_ *= scale
        step_ *= anchor
        trigger = close <= anchor * (1 + _MARGIN) - step_
        act = trigger if act is None else act | trigger
    if anchor_follows_up(cp, state):
        # the flat grid's anchor rises to any higher close (realistic mode's opt-in rule)
        rise = (close > state.anchor * (1 - _MARGIN)) & (cols.usable_index[start:stop] >= 0)
        act = rise if act is None else act | rise
    if act is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(act) + start


class QuietScan:
    """One symbol's quiet-bar marks in a realistic run, for one grid state, buy-step multiplier and pool view.

    ``next`` is the first bar from which ``step`` must run again: the next candidate of the state and
    multiplier (``candidate_bars``, marked up to ``stop``), or at once when the pool view would flip the
    penalty. ``backtest.engine``'s loop reads ``state``, ``pool``, ``mult`` and ``next`` inline and calls
    ``is_quiet`` only when one of them no longer fits."""

    __slots__ = ("candidates", "flips", "mult", "next", "pool", "pos", "state", "stop", "window")

    def __init__(self) -> None:
        self.state: GridState | None = None
        self.pool: PoolView | None = None
        self.mult = 1.0
        self.stop = -1
        self.next = -1
        self.flips = False
        self.candidates: list[int] = []
        self.pos = 0
        self.window = FIRST_WINDOW

    def is_quiet(
        self, state: GridState, cp: CompiledParams, cols: BarColumns, i: int, mult: float, pv: PoolView
    ) -> bool:
        """Whether ``step`` on bar ``i`` would return ``state`` and nothing."""
        if state is not self.state or pv is not self.pool:
            on = state.penalty_on
            self.flips = penalty_after(on, pv.utilization, cp.penalty_trigger, cp.penalty_release) != on
            self.pool = pv
        if state is not self.state or mult != self.mult or i >= self.stop:
            same = state is self.state and mult == self.mult
            self.window = min(self.window * 2, MAX_WINDOW) if same else FIRST_WINDOW
            self.state, self.mult = state, mult
            self.stop = min(len(cols), i + self.window)
            self.candidates = candidate_bars(state, cp, cols, i, self.stop, mult).tolist()
            self.pos = 0
        candidates, pos = self.candidates, self.pos
        while pos < len(candidates) and candidates[pos] < i:
            pos += 1
        self.pos = pos
        upcoming = candidates[pos] if pos < len(candidates) else self.stop
        self.next = -1 if self.flips else upcoming
        return not self.flips and upcoming != i


__all__ = ["FIRST_WINDOW", "MAX_WINDOW", "BarColumns", "QuietScan", "candidate_bars"]
