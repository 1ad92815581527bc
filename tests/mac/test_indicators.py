from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.fastind import compute_indicators
from backtest.synth import generate
from mac.grid.indicators import IndicatorState, update_indicators
from tests.mac.naive_reference import naive_indicators


def _incremental(h, lo, c):
    state = IndicatorState()
    out = []
    for hi, low, close in zip(h, lo, c, strict=True):
        state, values = update_indicators(state, hi, low, close)
        out.append(values)
    return out


def _assert_same(h, lo, c):
    atr, slope, atr_avg, rsi = naive_indicators(h, lo, c)
    inc = _incremental(h, lo, c)
    vec = compute_indicators(np.array(h), np.array(lo), np.array(c))
    usable = 0
    for i, v in enumerate(inc):
        defined = atr[i] is not None and slope[i] is not None and atr_avg[i] is not None
        assert (v is not None) == defined, i
        assert (vec["usable_index"][i] >= 0) == defined
        if v is None:
            continue
        # exact equality, not approx: triggers are decided on the last bit
        assert v.atr == atr[i] and v.slope == slope[i] and v.atr_avg == atr_avg[i] and v.rsi == rsi[i], i
        assert v.usable_index == usable == vec["usable_index"][i]
        assert (vec["atr"][i], vec["slope"][i], vec["atr_avg"][i], vec["rsi"][i]) == (
            v.atr,
            v.slope,
            v.atr_avg,
            v.rsi,
        )
        usable += 1
    return usable


def test_first_usable_bar_is_the_75th():
    b = generate("512890.SH", 1, seed=3)
    inc = _incremental(b.h.tolist(), b.l.tolist(), b.c.tolist())
    assert inc[73] is None and inc[74] is not None and inc[74].usable_index == 0


def test_incremental_and_vectorised_equal_naive_on_synth():
    b = generate("159201.SZ", 3, seed=11)
    assert _assert_same(b.h.tolist(), b.l.tolist(), b.c.tolist()) == 3 * 240 - 74


def test_running_sums_would_drift_but_we_do_not():
    # prices chosen so that add-the-new/subtract-the-old sums differ from sum(window)/n in the last bit
    rng = np.random.default_rng(5)
    c = np.round(1.0 + np.cumsum(rng.normal(0, 0.001, 400)), 3)
    h = c + 0.001 * rng.integers(0, 3, 400)
    lo = c - 0.001 * rng.integers(0, 3, 400)
    h, lo, c = (np.round(a, 3).tolist() for a in (h, lo, c))
    _assert_same(h, lo, c)
    running, drift = 0.0, 0
    for i, x in enumerate(c):
        running += x
        if i >= 60:
            running -= c[i - 60]
        if i >= 59:
            drift += running / 60 != sum(c[i - 59 : i + 1]) / 60
    assert drift > 0  # the trap is real on this data


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=900, max_value=1100), min_size=1, max_size=160),
    st.lists(st.integers(min_value=0, max_value=4), min_size=160, max_size=160),
)
def test_indicators_match_naive_on_random_ticks(closes_milli, wicks):
    c = [m / 1000 for m in closes_milli]
    h = [x + wicks[i] / 1000 for i, x in enumerate(c)]
    lo = [x - wicks[-1 - i] / 1000 for i, x in enumerate(c)]
    _assert_same(h, lo, c)
