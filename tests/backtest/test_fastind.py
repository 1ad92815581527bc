"""The slope EMA of ``backtest.fastind``: the ``accumulate`` path and the gap-skipping loop agree."""

from __future__ import annotations

import math

import numpy as np

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
