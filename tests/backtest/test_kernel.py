"""The quiet-bar filter (``backtest.kernel``) changes no result: ``run_reference``, which calls ``step`` only
on candidate bars, ends with the same trades, events, signals and state as ``step`` called on every bar."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import kernel
from backtest.engine import _periods, run_realistic, run_reference
from backtest.fastind import compute_indicators, indicator_rows
from backtest.kernel import BarColumns, candidate_bars
from backtest.synth import generate
from mac.grid.core import initial_state, step
from mac.grid.params import compile_params
from marketdata.bars import Bars
from settings.grid import default_params


def _every_bar(bars: Bars, params):
    """The plain loop: ``step`` on every bar, the way the engine ran before the filter."""
    cp = compile_params(params)
    rows = bars.rows()
    ivs = indicator_rows(compute_indicators(bars.h, bars.l, bars.c, _periods(params)))
    state = initial_state(cp)
    signals, events = [], Counter()
    for bar, iv in zip(rows, ivs, strict=True):
        if iv is None:
            continue
        state, sigs, evs = step(state, bar, None, cp, iv)
        signals.extend(sigs)
        for e in evs:
            events[e.kind.value] += 1
    return state, signals, events


def _random_path(seed: int, n: int, vol: float, drift: float, jump: float) -> Bars:
    rng = np.random.default_rng(seed)
    steps = rng.normal(drift, vol, n)
    jumps = rng.random(n) < 0.002
    steps[jumps] += rng.normal(0, jump, int(jumps.sum()))
    c = np.round(np.maximum(1.0 * np.exp(np.cumsum(steps)), 0.05), 3)
    o = np.concatenate([[c[0]], c[:-1]])
    spread = np.round(np.abs(rng.normal(0, vol, n)) * c, 3)
    h = np.maximum(o, c) + spread
    lo = np.maximum(np.minimum(o, c) - spread, 0.001)
    t = 1_609_722_000_000 + 60_000 * np.arange(n, dtype=np.int64)
    return Bars(t=t, o=o, h=h, l=lo, c=c, v=np.zeros(n))


params_st = st.fixed_dictionaries(
    {
        "atr_grid_factor": st.floats(0.0, 1.0),
        "grid_step_floor": st.floats(0.0, 0.01),
        "sell_profit_threshold": st.floats(0.0005, 0.02),
        "breaker_mult": st.floats(0.5, 4.0),
        "cooling": st.booleans(),
        "float_stop": st.booleans(),
        "max_cycle_float_loss": st.floats(10.0, 20_000.0),
        "layers": st.integers(1, 12),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(["512890.SH", "159201.SZ"]),
    seed=st.integers(0, 2**31),
    n=st.integers(50, 3000),
    vol=st.floats(0.0002, 0.01),
    drift=st.floats(-0.0005, 0.0005),
    over=params_st,
)
def test_filtered_run_equals_step_on_every_bar(code, seed, n, vol, drift, over):
    over = {**over, "weights": [1.0] * over["layers"]}
    params = default_params(code, "reference", **over)
    bars = _random_path(seed, n, vol, drift, 0.05)
    state, signals, events = _every_bar(bars, params)
    res = run_reference(bars, params).symbols[code]
    assert res.signals == signals
    assert res.events == events
    assert res.state == state
    assert res.state.cash == state.cash


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), days=st.integers(1, 6), float_stop=st.booleans())
def test_filtered_run_equals_step_on_generated_minutes(seed, days, float_stop):
    code = "159201.SZ"
    params = default_params(code, "reference", float_stop=float_stop, max_cycle_float_loss=800.0)
    bars = generate(code, days, seed=seed)
    state, signals, _ = _every_bar(bars, params)
    res = run_reference(bars, params).symbols[code]
    assert res.signals == signals and res.state == state


def test_no_bar_outside_the_candidates_acts():
    """Bar by bar: wherever the filter says quiet, ``step`` returns the very state and nothing."""
    code = "512890.SH"
    params = default_params(code, "reference", float_stop=True, max_cycle_float_loss=3000.0)
    cp = compile_params(params)
    bars = generate(code, 8, seed=3)
    ind = compute_indicators(bars.h, bars.l, bars.c, _periods(params))
    cols = BarColumns.of(bars, ind, cp)
    state = initial_state(cp)
    quiet_checked = 0
    for i, (bar, iv) in enumerate(zip(bars.rows(), indicator_rows(ind), strict=True)):
        if iv is None:
            continue
        is_candidate = candidate_bars(state, cp, cols, i, i + 1).size == 1
        new_state, sigs, evs = step(state, bar, None, cp, iv)
        if not is_candidate:
            assert new_state is state and not sigs and not evs
            quiet_checked += 1
        state = new_state
    assert quiet_checked > 1000


def _wake_on_every_bar(state, cp, cols, start, stop, risk_multiplier=1.0):
    """A filter that marks every usable bar: the engine then calls ``step`` on each, as it did before."""
    return np.flatnonzero(cols.usable_index[start:stop] >= 0) + start


def _realistic_outcome(res):
    out = []
    for code, r in res.symbols.items():
        out.append((code, r.state, r.trades, r.signals, r.events, r.refusals, r.expired, r.penalty.tolist()))
    risk = res.risk
    summary = None if risk is None else (risk.summary(), risk.audit, risk.transitions, dict(risk.blocked))
    return out, res.util.tolist(), summary, dict(res.vault.acc_alpha)


def _crashed(bars: Bars, start: int, depth: float) -> Bars:
    x = np.arange(len(bars))
    f = np.where(x < start, 1.0, np.maximum(1 - depth * (x - start) / 720, 1 - depth))
    o, c = np.round(bars.o * f, 3), np.round(bars.c * f, 3)
    return Bars(bars.t, o, np.maximum(np.round(bars.h * f, 3), np.maximum(o, c)),
                np.minimum(np.round(bars.l * f, 3), np.minimum(o, c)), c, bars.v)  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(2, 12),
    nominal_cap=st.sampled_from([200_000, 260_000, 400_000]),
    float_stop=st.booleans(),
    crash=st.sampled_from([0.0, 0.15, 0.3]),
    base=st.sampled_from([0, 20_000]),
)
def test_realistic_run_with_the_filter_equals_step_on_every_bar(
    seed, days, nominal_cap, float_stop, crash, base
):
    codes = ("512890.SH", "159201.SZ")
    data = {c: generate(c, days, seed=seed + k) for k, c in enumerate(codes)}
    if crash:
        data = {c: _crashed(b, len(b) // 3, crash) for c, b in data.items()}
    over = {"nominal_cap": nominal_cap, "float_stop": float_stop, "max_cycle_float_loss": 2000.0,
            "base_position_shares": base}  # fmt: skip
    params = {c: default_params(c, **over) for c in codes}
    filtered = _realistic_outcome(run_realistic(data, params))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kernel, "candidate_bars", _wake_on_every_bar)  # QuietScan marks every usable bar
        every = _realistic_outcome(run_realistic(data, params))
    assert filtered == every
