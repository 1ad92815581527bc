"""The quiet-bar filter stays exact with realistic mode's ``anchor_follows_up`` on: a flat grid's every close
above the anchor wakes ``step`` (it moves the anchor), on random paths that rise, fall and jump."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine import _periods, run_realistic
from backtest.fastind import compute_indicators, indicator_rows
from backtest.kernel import BarColumns, candidate_bars
from backtest.synth import generate
from mac.grid.core import apply_fill, initial_state, step
from mac.grid.params import compile_params
from mac.grid.state import StepContext
from settings.grid import default_params
from tests.backtest.test_kernel import _random_path, _realistic_outcome

CODES = ("512890.SH", "159201.SZ")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(200, 4000),
    vol=st.floats(0.0005, 0.006),
    drift=st.floats(-0.0002, 0.0006),
    float_stop=st.booleans(),
    floor=st.sampled_from([0.0, 0.001, 0.004]),
)
def test_realistic_filter_equals_step_on_every_bar_with_the_anchor_following(
    seed, n, vol, drift, float_stop, floor
):
    data = {c: _random_path(seed + k, n, vol, drift, 0.05) for k, c in enumerate(CODES)}
    over = {"anchor_follows_up": True, "float_stop": float_stop, "max_cycle_float_loss": 2000.0,
            "grid_step_floor": floor}  # fmt: skip
    params = {c: default_params(c, **over) for c in CODES}
    filtered = _realistic_outcome(run_realistic(data, params))
    every = _realistic_outcome(run_realistic(data, params, every_bar=True))  # step on every bar, no jump
    assert filtered == every


def test_the_rule_changes_the_run_on_a_rally():
    """Not vacuous: on a rising path the rule moves the anchor and the trades differ from the default."""
    bars = _random_path(7, 6000, 0.002, 0.0004, 0.05)
    runs = {
        on: run_realistic({CODES[0]: bars}, {CODES[0]: default_params(CODES[0], anchor_follows_up=on)})
        for on in (False, True)
    }
    off_state, on_state = (runs[on].symbols[CODES[0]].state for on in (False, True))
    assert runs[True].symbols[CODES[0]].signals != runs[False].symbols[CODES[0]].signals
    assert off_state != on_state


def test_no_bar_outside_the_candidates_acts_with_the_anchor_following():
    """Bar by bar, realistic step with every signal filled at once: where the filter says quiet, ``step``
    returns the very state and nothing; flat stretches of a rally are candidates."""
    code = CODES[0]
    params = default_params(code, anchor_follows_up=True, grid_step_floor=0.002)
    cp = compile_params(params)
    bars = generate(code, 8, seed=11)
    ind = compute_indicators(bars.h, bars.l, bars.c, _periods(params))
    cols = BarColumns.of(bars, ind, cp)
    state = initial_state(cp)
    quiet, raised = 0, 0
    for i, (bar, iv) in enumerate(zip(bars.rows(), indicator_rows(ind), strict=True)):
        if iv is None:
            continue
        is_candidate = candidate_bars(state, cp, cols, i, i + 1).size == 1
        new_state, sigs, evs = step(state, bar, None, cp, StepContext(iv, True))
        if not is_candidate:
            assert new_state is state and not sigs and not evs
            quiet += 1
        elif not state.lots and state.anchor is not None and new_state.anchor > state.anchor:
            raised += 1
        for s in sigs:
            new_state = apply_fill(new_state, s.client_order_id, s.shares, s.price_milli / 1000, True, cp)
        state = new_state
    assert quiet > 500 and raised > 0
    assert np.isfinite(cols.base_step[-1])
