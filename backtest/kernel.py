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

Realistic mode goes one step further (``classify_bars``): where the pool is full, a triggered buy is refused
on bar after bar with one event and the state unchanged (NOMINAL_CAP, POOL_EXHAUSTED, the reserve), or
skipped by the breaker or the cooling-off. Those bars are classified column-wise, in ``step``'s order and
with the margins above (anything within a margin of a threshold wakes ``step``), so the engine books their
event without calling ``step`` and jumps over whole stretches where no bar wakes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

import numpy as np

from mac.grid.indicators import IndicatorValues
from mac.grid.params import CompiledParams
from mac.grid.rules import anchor_follows_up, buy_size, penalty_after, take_profit_multiplier
from mac.grid.state import OPEN, PENDING_SELL, EventKind, GridState, PoolView
from marketdata.bar import BarTuple

if TYPE_CHECKING:
    from marketdata.bars import Bars

# Relative slack on every threshold: the filter may wake ``step`` on a bar a hair away from acting, and
# never sleeps through one because numpy rounded a product the other way.
_MARGIN = 1e-9
_MS_PER_DAY = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000
FIRST_WINDOW = 1024  # bars marked after a state change
MAX_WINDOW = 1 << 17  # windows double up to this while nothing happens


def _closing_session(cp: CompiledParams, t: np.ndarray) -> np.ndarray:
    """``closes_session`` column-wise (integer arithmetic, exact): ``step`` returns at once on these bars."""
    minutes = ((t + _CST_OFFSET_MS) % _MS_PER_DAY) // 60_000
    out = np.zeros(t.shape[0], dtype=bool)
    for minute in cp.no_trade_minutes:
        out |= minutes == minute
    return out


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
    closing: np.ndarray | None = None  # realistic: the bars that close a session (``no_trade_minutes``)

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
        closing = _closing_session(cp, bars.t) if cp.no_trade_minutes else None
        return cls(bars, ind["atr"], slope, ind["atr_avg"], ind["rsi"], usable_index, step_, tp_mult, closing)

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


def _act_masks(
    state: GridState, cp: CompiledParams, cols: BarColumns, start: int, stop: int, risk_multiplier: float
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Over ``[start, stop)`` for a state with an anchor: (bars where a sell or the trailing anchor might act,
    bars where the buy trigger might fire), each widened by the margin; ``None`` for a rule that cannot act."""
    close = cols.bars.c[start:stop]
    lots = state.lots
    other = None
    if lots:
        # any lot at its take-profit wakes step (it then picks the OPEN, sellable ones)
        lowest = min(lot.buy_price for lot in lots)
        other = close >= (lowest * (1 - _MARGIN)) * cols.tp_mult[start:stop]
        held = [lot for lot in lots if lot.status == OPEN]
        if cp.float_stop and held:
            shares = sum(lot.shares for lot in held)
            cost = 0.0
            for lot in held:
                cost += float(lot.cost)
            loss_limit = cp.max_cycle_float_loss
            breach = shares * close - cost < -loss_limit + _MARGIN * (abs(cost) + loss_limit)
            other |= breach & (cols.usable_index[start:stop] >= 0)
    trigger = None
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
    if anchor_follows_up(cp, state):
        # the flat grid's anchor rises to any higher close (realistic mode's opt-in rule)
        rise = (close > state.anchor * (1 - _MARGIN)) & (cols.usable_index[start:stop] >= 0)
        other = rise if other is None else other | rise
    return other, trigger


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
    other, trigger = _act_masks(state, cp, cols, start, stop, risk_multiplier)
    act = trigger if other is None else other if trigger is None else other | trigger
    if act is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(act) + start


# What ``step`` does on a bar where a triggered buy is surely blocked or refused and nothing else can act
# (``classify_bars``): it returns the state as it was and exactly one event of one of these kinds.
EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind.BREAKER_PAUSE,
    EventKind.COOLING,
    EventKind.NOMINAL_CAP,
    EventKind.POOL_EXHAUSTED,
    EventKind.LAYER0_REFUSED_RESERVE,
)
EVENT_NAMES: tuple[str, ...] = tuple(k.value for k in EVENT_KINDS)
_WAKE, _QUIET = -1, -2
_EMPTY_I = np.empty(0, dtype=np.int64)


def classify_bars(
    state: GridState,
    cp: CompiledParams,
    cols: BarColumns,
    start: int,
    stop: int,
    risk_multiplier: float,
    pv: PoolView,
    flips: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realistic mode, one state, buy-step multiplier and pool view over ``[start, stop)``: (the bars on which
    ``step`` must run, the bars on which it surely returns ``state`` with one event and nothing else, that
    event's index in ``EVENT_KINDS``). Every other bar is quiet: ``step`` returns ``state`` and nothing.

    An event-only bar is a bar where only the buy trigger can act (no lot near its take-profit, no float
    stop loss, no trailing anchor: the margins of ``candidate_bars``), the trigger fires by more than the
    margin, and then, in ``step``'s order (``mac.grid.decide._step_realistic``): the ATR breaker is on
    (BREAKER_PAUSE), or the cooling-off holds (COOLING), or the buy's amount ``(price_milli * shares + 5)
    // 10`` breaks the pool rule (``shared_schema.ledger_math.pool_refusal``: NOMINAL_CAP, POOL_EXHAUSTED,
    LAYER0_REFUSED_RESERVE). A product within the margin of a threshold, a share count within it of a
    whole lot, a price within it of half a tick: ``step`` decides. A buy that would pass the pool wakes
    ``step``. ``flips``: the pool view flips the penalty (an event), so every usable bar wakes. Bars that
    close a session (``no_trade_minutes``) are quiet whatever else holds: ``step`` returns before looking."""
    usable = cols.usable_index[start:stop] >= 0
    closing = None if cols.closing is None else cols.closing[start:stop]
    if flips or state.anchor is None:
        wake = usable if closing is None else usable & ~closing
        return np.flatnonzero(wake) + start, _EMPTY_I, _EMPTY_I
    other, trigger = _act_masks(state, cp, cols, start, stop, risk_multiplier)
    if trigger is None:
        wake = other
        if wake is None:
            return _EMPTY_I, _EMPTY_I, _EMPTY_I
        if closing is not None:
            wake = wake & ~closing
        return np.flatnonzero(wake) + start, _EMPTY_I, _EMPTY_I
    cand = trigger if other is None else trigger | other
    if closing is not None:
        cand &= ~closing
    # surely triggered, and nothing but the trigger can act: step's own order for the buy step
    n = sum(1 for lot in state.lots if lot.status != PENDING_SELL)
    anchor = state.anchor
    only = trigger if other is None else trigger & ~other
    if closing is not None:
        only &= ~closing
    idx = np.flatnonzero(only)
    if not idx.size:
        return np.flatnonzero(cand) + start, _EMPTY_I, _EMPTY_I
    at = idx + start
    close = cols.bars.c[at]
    step_ = cols.base_step[at] + cp.layer_step_bonus * n
    if state.penalty_on:
        step_ = step_ * cp.penalty_multiplier
    if risk_multiplier != 1.0:
        step_ = step_ * risk_multiplier
    sure = close <= anchor * (1 - step_) - _MARGIN * anchor
    kind = np.full(idx.size, _WAKE, dtype=np.int64)
    # the ATR breaker first, then the cooling-off (_buy_blocked)
    atr, limit = cols.atr[at], cols.atr_avg[at] * cp.breaker_mult
    breaker_on = atr > limit * (1 + _MARGIN)
    breaker_off = atr <= limit * (1 - _MARGIN)  # NaN: neither, step decides
    kind[breaker_on] = 0
    open_ = breaker_off
    if cp.cooling and n == 0:
        needed = np.where(cols.rsi[at] < cp.cooling_rsi, cp.cooling_bars_oversold, cp.cooling_bars)
        cooling = open_ & ((cols.usable_index[at] - state.last_flat_index) < needed)
        kind[cooling] = 1
        open_ = open_ & ~cooling
    # the buy's size and amount (_buy_shares, price_milli) and the pool rule
    slope = cols.slope[at]
    money = [cp.nominal_cap * cp.weights[n] / cp.sum_weights * buy_size(x, cp) for x in (1.0, -1.0, 0.0)]
    q = np.where(slope > 0, money[0], np.where(slope < 0, money[1], money[2])) / close / cp.lot
    whole = np.floor(q)
    exact_q = (q - whole > _MARGIN * q) & (whole + 1 - q > _MARGIN * q)
    shares = whole.astype(np.int64) * cp.lot
    milli = close * 1000
    tick = np.rint(milli)
    exact_p = np.abs(np.abs(milli - tick) - 0.5) > 1e-6
    kind[open_ & exact_q & (shares <= 0)] = _QUIET  # no whole lot: step buys nothing and says nothing
    amount = ((tick.astype(np.int64) + cp.limit_offset_ticks) * shares + 5) // 10
    decided = open_ & exact_q & exact_p & (shares > 0)
    refused = np.full(idx.size, _WAKE, dtype=np.int64)
    after = pv.committed_fen + amount
    if n == 0:
        reserve = Decimal(pv.physical_pool_fen) * (1 - Decimal(cp.reserve_ratio))
        refused[after > int(reserve.to_integral_value(rounding=ROUND_FLOOR))] = 4
    refused[after > pv.physical_pool_fen] = 3
    if pv.symbol_cap_fen is not None and pv.symbol_committed_fen is not None:
        refused[pv.symbol_committed_fen + amount > pv.symbol_cap_fen] = 2
    kind[decided] = refused[decided]
    kind[~sure] = _WAKE
    quiet = kind == _QUIET
    if quiet.any():
        cand[idx[quiet]] = False
    ev = kind >= 0
    cand[idx[ev]] = False
    return np.flatnonzero(cand) + start, at[ev], kind[ev]


class QuietScan:
    """One symbol's bar verdicts in a realistic run, for one grid state, buy-step multiplier and pool view
    (``classify_bars`` over a window of bars, recomputed when one of them changes or the window runs out).

    ``next`` is the first bar from which the loop must look again: the next bar that wakes ``step`` or
    carries an event-only verdict. ``backtest.engine``'s loop reads ``state``, ``pool``, ``mult`` and
    ``next`` inline and calls ``verdict`` only when one of them no longer fits; ``first_wake`` and
    ``events_between`` serve the loop's jumps over whole stretches."""

    __slots__ = ("ev_at", "ev_kind", "flips", "mult", "next", "pool", "state", "stop", "wake", "window")

    QUIET, WAKE = _QUIET, _WAKE

    def __init__(self) -> None:
        self.state: GridState | None = None
        self.pool: PoolView | None = None
        self.mult = 1.0
        self.stop = -1
        self.next = -1
        self.flips = False
        self.wake: np.ndarray = _EMPTY_I
        self.ev_at: np.ndarray = _EMPTY_I
        self.ev_kind: np.ndarray = _EMPTY_I
        self.window = FIRST_WINDOW

    def _refresh(
        self, state: GridState, cp: CompiledParams, cols: BarColumns, i: int, mult: float, pv: PoolView
    ) -> None:
        if state is not self.state or pv is not self.pool:
            on = state.penalty_on
            flips = penalty_after(on, pv.utilization, cp.penalty_trigger, cp.penalty_release) != on
        else:
            flips = self.flips
        if state is not self.state or pv is not self.pool or mult != self.mult or i >= self.stop:
            same = state is self.state and pv is self.pool and mult == self.mult
            self.window = min(self.window * 2, MAX_WINDOW) if same else FIRST_WINDOW
            self.state, self.pool, self.mult, self.flips = state, pv, mult, flips
            self.stop = min(len(cols), i + self.window)
            self.wake, self.ev_at, self.ev_kind = classify_bars(state, cp, cols, i, self.stop, mult, pv, flips)
            self.next = i  # the loop's inline check must not trust a mark of the old window

    def verdict(
        self, state: GridState, cp: CompiledParams, cols: BarColumns, i: int, mult: float, pv: PoolView
    ) -> int:
        """On bar ``i``: ``WAKE`` (run ``step``), ``QUIET`` (it would return ``state`` and nothing), or the
        index in ``EVENT_KINDS`` of the one event it would emit with ``state`` unchanged."""
        self._refresh(state, cp, cols, i, mult, pv)
        wake, ev, stop = self.wake, self.ev_at, self.stop
        pos = int(wake.searchsorted(i))
        w = int(wake[pos]) if pos < wake.shape[0] else stop
        if w == i:
            self.next = i
            return _WAKE
        epos = int(ev.searchsorted(i))
        e = int(ev[epos]) if epos < ev.shape[0] else stop
        if e == i:
            self.next = min(w, int(ev[epos + 1]) if epos + 1 < ev.shape[0] else stop)
            return int(self.ev_kind[epos])
        self.next = min(w, e)
        return _QUIET

    def first_wake(
        self, state: GridState, cp: CompiledParams, cols: BarColumns, i: int, mult: float, pv: PoolView
    ) -> int:
        """The first bar from ``i`` on that wakes ``step``, or the end of the marked window if none does."""
        self._refresh(state, cp, cols, i, mult, pv)
        pos = int(self.wake.searchsorted(i))
        return int(self.wake[pos]) if pos < self.wake.shape[0] else self.stop

    def events_between(self, lo: int, hi: int) -> np.ndarray:
        """How many event-only bars of each kind of ``EVENT_KINDS`` lie in ``[lo, hi)`` (within the window)."""
        a, b = np.searchsorted(self.ev_at, (lo, hi))
        return np.bincount(self.ev_kind[a:b], minlength=len(EVENT_KINDS))


__all__ = [
    "EVENT_KINDS",
    "EVENT_NAMES",
    "FIRST_WINDOW",
    "MAX_WINDOW",
    "BarColumns",
    "QuietScan",
    "candidate_bars",
    "classify_bars",
]
