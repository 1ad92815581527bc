"""The quiet-bar filter (``backtest.kernel``) changes no result: ``run_reference``, which calls ``step`` only
on candidate bars, ends with the same trades, events, signals and state as ``step`` called on every bar; and
``run_realistic``'s verdicts and jumps (event-only bars booked without ``step``, the risk tick folded over
quiet stretches) end exactly as its per-bar path (``every_bar=True``)."""

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
from backtest.risk import BacktestRisk, RiskTracker
from backtest.synth import generate
from mac.grid.core import initial_state, step
from mac.grid.params import compile_params
from mac.grid.risk_policy import GridRiskPolicy
from mac.grid.state import PoolView
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


def _realistic_outcome(res):
    """Everything a realistic run reports: per symbol the state (cash included), trades, signals, events,
    refusals, expiries and penalty bars; the utilisation per bar; the risk tracker's summary, audit trail,
    transitions, blocked buys, tick count, peak and snapshot; the vault's realised alpha."""
    out = []
    for code, r in res.symbols.items():
        out.append((code, r.state, r.state.cash, r.trades, r.signals, r.events, r.refusals, r.expired,
                    r.all_layers, r.penalty.tolist(), r.penalty_bars))  # fmt: skip
    risk = res.risk
    summary = None
    if risk is not None:
        summary = (risk.summary(), risk.audit, risk.transitions, dict(risk.blocked), risk.ticks, risk.peak_f,
                   risk.max_dd, risk.snapshot, risk.mode)  # fmt: skip
    return out, res.util.tolist(), summary, dict(res.vault.acc_alpha)


def _crashed(bars: Bars, start: int, depth: float, over: int = 720) -> Bars:
    """The bars with a linear fall of ``depth`` over ``over`` bars from bar ``start`` on (then flat)."""
    x = np.arange(len(bars))
    f = np.where(x < start, 1.0, np.maximum(1 - depth * (x - start) / over, 1 - depth))
    o, c = np.round(bars.o * f, 3), np.round(bars.c * f, 3)
    return Bars(bars.t, o, np.maximum(np.round(bars.h * f, 3), np.maximum(o, c)),
                np.minimum(np.round(bars.l * f, 3), np.minimum(o, c)), c, bars.v)  # fmt: skip


CODES = ("512890.SH", "159201.SZ")


def _pair(seed: int, days: int, crash: float, crash_day: int = 0, over: int = 720) -> dict[str, Bars]:
    data = {c: generate(c, days, seed=seed + k) for k, c in enumerate(CODES)}
    if crash:
        data = {c: _crashed(b, crash_day * 240 if crash_day else len(b) // 3, crash, over) for c, b in data.items()}
    return data


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(2, 12),
    nominal_cap=st.sampled_from([200_000, 260_000, 400_000]),
    float_stop=st.booleans(),
    crash=st.sampled_from([0.0, 0.15, 0.3]),
    base=st.sampled_from([0, 20_000]),
    use_risk=st.booleans(),
)
def test_realistic_run_with_the_filter_equals_step_on_every_bar(
    seed, days, nominal_cap, float_stop, crash, base, use_risk
):
    data = _pair(seed, days, crash)
    over = {"nominal_cap": nominal_cap, "float_stop": float_stop, "max_cycle_float_loss": 2000.0,
            "base_position_shares": base}  # fmt: skip
    params = {c: default_params(c, **over) for c in CODES}
    risk = BacktestRisk() if use_risk else None  # without the risk machine nothing folds: the jumps alone
    filtered = _realistic_outcome(run_realistic(data, params, risk=risk))
    every = _realistic_outcome(run_realistic(data, params, risk=risk, every_bar=True))  # step on every bar
    assert filtered == every


# Paths through the risk machine's states: a fall of 10-30 % over one to three days after a few normal days
# takes the grid's risk equity through DEGRADED (8 %), COOLDOWN (12 %, a timer) and FUSE (20 %).
risk_paths = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 10_000),
        "days": st.integers(10, 16),
        "crash": st.sampled_from([0.1, 0.14, 0.2, 0.3]),
        "crash_day": st.integers(3, 7),
        "over": st.sampled_from([240, 480, 720]),
    }
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=risk_paths,
    nominal_cap=st.sampled_from([260_000, 400_000, 500_000]),
    float_stop=st.booleans(),
    cooling=st.booleans(),
    degraded_action=st.sampled_from(["widen", "block_layer0"]),
)
def test_realistic_jumps_equal_the_per_bar_path_through_the_risk_states(
    path, nominal_cap, float_stop, cooling, degraded_action
):
    """The jumps over quiet stretches (the risk tick folded, the event-only bars booked at once) against
    ``step`` on every bar and ``tick`` on every timestamp, on two-symbol crashes through the risk states."""
    data = _pair(**path)
    over = {"nominal_cap": nominal_cap, "float_stop": float_stop, "max_cycle_float_loss": 3000.0,
            "cooling": cooling}  # fmt: skip
    params = {c: default_params(c, **over) for c in CODES}
    risk = BacktestRisk(policy=GridRiskPolicy(degraded_action=degraded_action))
    filtered = _realistic_outcome(run_realistic(data, params, risk=risk))
    every = _realistic_outcome(run_realistic(data, params, risk=risk, every_bar=True))
    assert filtered == every


@pytest.fixture(scope="module")
def through_fuse():
    """A fixed crash whose run passes NORMAL -> DEGRADED -> COOLDOWN -> FUSE (asserted), and its per-bar run."""
    data = _pair(7, 20, 0.25, crash_day=12, over=720)
    params = {c: default_params(c) for c in CODES}
    every = run_realistic(data, params, every_bar=True)
    reached = {b for _, _, b in every.risk.transitions}
    assert {"DEGRADED", "COOLDOWN", "FUSE"} <= reached
    return data, params, _realistic_outcome(every)


def test_the_fixed_crash_through_fuse_runs_the_same_both_ways(through_fuse):
    data, params, every = through_fuse
    assert _realistic_outcome(run_realistic(data, params)) == every


def _classify_without_the_pool(state, cp, cols, start, stop, risk_multiplier, pv, flips):
    full = PoolView(pv.physical_pool_fen, pv.physical_pool_fen, pv.utilization, pv.symbol_cap_fen,
                    pv.symbol_cap_fen)  # fmt: skip
    return _classify(state, cp, cols, start, stop, risk_multiplier, full, flips)  # every buy counts as refused


def _classify_without_flips(state, cp, cols, start, stop, risk_multiplier, pv, flips):
    return _classify(state, cp, cols, start, stop, risk_multiplier, pv, False)  # the penalty never flips


def _wake_only_at_the_window_end(self, state, cp, cols, i, mult, pv):
    _first_wake(self, state, cp, cols, i, mult, pv)
    return self.stop  # jump over every wake bar in the window


_classify = kernel.classify_bars
_first_wake = kernel.QuietScan.first_wake


@pytest.mark.parametrize(
    "target, name, weakened",
    [
        (kernel, "classify_bars", _classify_without_the_pool),
        (kernel, "classify_bars", _classify_without_flips),
        (kernel.QuietScan, "first_wake", _wake_only_at_the_window_end),
        (RiskTracker, "fold", None),
    ],
    ids=["refusal-ignores-the-pool", "penalty-never-flips", "jump-over-wakes", "fold-ignores-drawdown"],
)
def test_weakening_the_skip_conditions_breaks_the_equality(through_fuse, target, name, weakened):
    """Not vacuous: each shortcut, weakened, changes the run, and the comparison above sees it."""
    data, params, every = through_fuse
    with pytest.MonkeyPatch.context() as m:
        if weakened is None:
            m.setattr(RiskTracker, "fold", _band_free_fold())
        else:
            m.setattr(target, name, weakened)
        weak = _realistic_outcome(run_realistic(data, params))
    assert weak != every


def _band_free_fold():
    original = RiskTracker.fold

    def fold(self, ts, closes):
        lo, hi = self.quiet_lo, self.quiet_hi
        if lo < hi:  # keep FUSE/every_bar semantics of "nothing to fold" out of it; widen the band otherwise
            self.quiet_lo, self.quiet_hi = -np.inf, np.inf
        try:
            return original(self, ts, closes)
        finally:
            self.quiet_lo, self.quiet_hi = lo, hi

    return fold
