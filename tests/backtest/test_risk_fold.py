"""``RiskTracker.fold`` is ``tick`` over a stretch: on random equity paths (gains, falls through the drawdown
lines, several days), folding as far as it goes and ticking the rest leaves the tracker exactly as ticking
every timestamp does: the peak and the state it was reached in, the worst drawdown, the tick count, the
evaluations, the snapshot, the audit and the mode."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.risk import BacktestRisk, RiskTracker
from mac.grid.core import initial_state
from mac.grid.params import compile_params
from mac.grid.state import OPEN, Lot
from settings.grid import default_params

CODES = ["512890.SH", "159201.SZ"]
T0 = 1_609_722_000_000  # a Monday 09:00 CST


def _tracker(held: list[int], cash: list[float]) -> RiskTracker:
    tracker = RiskTracker(BacktestRisk(), CODES, Decimal(300_000))
    for k, code in enumerate(CODES):
        state = initial_state(compile_params(default_params(code)))
        lots = (Lot(f"L{k}", held[k], Decimal(0), 1.0, OPEN, 0, 0, held[k]),) if held[k] else ()
        tracker.sync(k, replace(state, lots=lots, cash=Decimal(repr(cash[k]))))
    return tracker


def _view(tr: RiskTracker):
    return (tr.ticks, tr.first_t, tr.peak_f, tr.peak_parts, tr.max_dd, tr.evaluations, tr.snapshot, tr.audit,
            tr.mode, tr.segments, tr.transitions, tr.next_day_ms)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    minutes=st.integers(5, 900),
    held=st.lists(st.integers(0, 400_000), min_size=2, max_size=2),
    cash=st.lists(st.floats(-300_000, 0), min_size=2, max_size=2),
    vol=st.sampled_from([0.0005, 0.003, 0.01]),
    drift=st.floats(-0.002, 0.001),
)
def test_fold_then_tick_equals_tick_on_every_timestamp(seed, minutes, held, cash, vol, drift):
    every, folded, _ = _both(seed, minutes, held, cash, vol, drift)
    assert _view(folded) == _view(every)


def _both(seed, minutes, held, cash, vol, drift, band_free=False):
    rng = np.random.default_rng(seed)
    ts = T0 + 60_000 * np.arange(minutes, dtype=np.int64) * 2  # two-minute steps: crosses days
    closes = [np.round(np.exp(np.cumsum(rng.normal(drift, vol, minutes))), 3) for _ in CODES]
    every, folded = _tracker(held, cash), _tracker(held, cash)
    for j, t in enumerate(ts.tolist()):
        every.closes[:] = [float(c[j]) for c in closes]
        every.tick(t)
    j, folds = 0, 0
    while j < minutes:
        band = folded.quiet_lo, folded.quiet_hi
        if band_free and band[0] < band[1]:
            folded.quiet_lo, folded.quiet_hi = -np.inf, np.inf  # a fold that ignores the drawdown lines
        f = folded.fold(ts[j:], [c[j:] for c in closes])
        folded.quiet_lo, folded.quiet_hi = band
        if f:
            folds += 1
            j += f
            continue
        folded.closes[:] = [float(c[j]) for c in closes]
        folded.tick(int(ts[j]))
        j += 1
    return every, folded, folds


def test_a_steady_fall_through_every_state_folds_and_a_band_free_fold_breaks_it():
    """Not vacuous: a fall through DEGRADED, COOLDOWN and FUSE is folded in part and still equal; a fold that
    ignores the drawdown lines differs."""
    args = (3, 900, [300_000, 200_000], [-300_000.0, -200_000.0], 0.003, -0.0008)
    every, folded, folds = _both(*args)
    assert [b for _, _, b in every.transitions] == ["DEGRADED", "COOLDOWN", "FUSE"]
    assert folds > 0 and _view(folded) == _view(every)
    _, weak, _ = _both(*args, band_free=True)
    assert _view(weak) != _view(every)
