"""The slope EMA of ``backtest.fastind``: the column-wise recursion and the gap-skipping loop agree with the
plain loop bit for bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.fastind import _ema


def _plain(raw, alpha):
    s, out = None, []
    for r in raw:
        if math.isnan(r):
            out.append(float("nan"))
            continue
        s = r if s is None else alpha * r + (1.0 - alpha) * s
        out.append(s)
    return out


def test_ema_without_gaps_is_the_recursion_bit_for_bit():
    rng = np.random.default_rng(1)
    raw = np.concatenate([[np.nan] * 64, rng.normal(0, 1e-3, 5000)])
    assert _ema(raw, 0.5).tolist()[64:] == _plain(raw.tolist(), 0.5)[64:]
    assert np.isnan(_ema(raw, 0.5)[:64]).all()


def test_ema_skips_a_gap_and_keeps_its_value_across_it():
    raw = np.array([np.nan, 0.1, 0.2, np.nan, 0.4])
    out = _ema(raw, 0.5)
    assert math.isnan(out[0]) and math.isnan(out[3])
    assert out[1] == 0.1 and out[2] == 0.5 * 0.2 + 0.5 * 0.1
    assert out[4] == 0.5 * 0.4 + 0.5 * out[2]


def test_ema_of_nothing_defined_is_all_nan():
    assert np.isnan(_ema(np.full(3, np.nan), 0.5)).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 4000),
    scale=st.sampled_from([1e-9, 1e-5, 1e-3, 1.0, 1e3]),
    span=st.integers(1, 30),
    zeros=st.floats(0.0, 0.5),
)
def test_the_columnwise_recursion_is_the_loop_bit_for_bit(seed, n, scale, span, zeros):
    """``_recursion`` (a guess, whole-array passes, the loop where an element disagrees with its predecessor)
    against the plain loop, on series that cross zero, sit at zero and span magnitudes, for every span
    (fast EMAs take the passes, slow ones the loop)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, scale, n) * np.where(rng.random(n) < 0.01, 1e6, 1.0)
    raw[rng.random(n) < zeros] = 0.0
    alpha = 2.0 / (span + 1.0)
    assert _ema(raw, alpha).tolist() == _plain(raw.tolist(), alpha)


def test_the_recursion_fixes_what_the_passes_leave():
    """The walk runs (a smooth series leaves a few elements inconsistent after the passes) and still agrees."""
    x = np.linspace(0, 60, 200_000)
    raw = np.sin(x) * 1e-4 + np.cos(7 * x) * 1e-9
    assert _ema(raw, 0.5).tolist() == _plain(raw.tolist(), 0.5)
