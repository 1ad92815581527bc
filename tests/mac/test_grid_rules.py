"""The grid's small rules are the shared ones: the pool rule and the commission of ``shared_schema.ledger_math``,
one buy step for ``step`` and the ladder."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from mac.grid import ladder, rules
from mac.grid.core import BUY, EventKind, GridState, PoolView, StepContext, step
from mac.grid.indicators import IndicatorValues
from mac.grid.params import compile_params
from settings.grid import default_params
from shared_schema.ledger_math import PoolRefusal, pool_refusal
from shared_schema.ledger_math import commission as ledger_commission
from shared_schema.models import Bar
from shared_schema.types import CST, datetime_to_ms

REALISTIC = compile_params(default_params("512890.SH"))
REFERENCE = compile_params(default_params("512890.SH", "reference"))
BAR_T = datetime_to_ms(datetime(2026, 1, 6, 10, 0, tzinfo=CST))
EXPECTED_KIND = {
    None: None,
    PoolRefusal.NOMINAL_CAP: EventKind.NOMINAL_CAP,
    PoolRefusal.POOL_EXHAUSTED: EventKind.POOL_EXHAUSTED,
    PoolRefusal.RESERVE: EventKind.LAYER0_REFUSED_RESERVE,
}


@settings(max_examples=300, deadline=None)
@given(
    pool=st.integers(1, 10**9),
    committed_share=st.floats(0.0, 1.2),
    need=st.integers(0, 10**8),
    layer=st.integers(0, 3),
    symbol=st.one_of(st.none(), st.tuples(st.integers(0, 10**9), st.integers(0, 10**9))),
)
def test_the_grid_refuses_a_buy_by_the_shared_pool_rule(pool, committed_share, need, layer, symbol):
    committed = int(pool * committed_share)
    symbol_committed, symbol_cap = symbol if symbol is not None else (None, None)
    view = PoolView.of(committed, pool, symbol_committed, symbol_cap)
    shared = pool_refusal(
        committed, pool, need, layer == 0, REALISTIC.reserve_ratio, symbol_committed, symbol_cap
    )
    assert rules.pool_refusal_event(view, need, layer, REALISTIC) is EXPECTED_KIND[shared]


def test_every_pool_refusal_has_a_grid_event():
    pool = 1_000_000
    view = PoolView.of(800_000, pool, 100, 1_000)
    assert rules.pool_refusal_event(view, 2_000, 1, REALISTIC) is EventKind.NOMINAL_CAP
    assert (
        rules.pool_refusal_event(PoolView.of(990_000, pool), 20_000, 1, REALISTIC) is EventKind.POOL_EXHAUSTED
    )
    assert (
        rules.pool_refusal_event(PoolView.of(840_000, pool), 20_000, 0, REALISTIC)
        is EventKind.LAYER0_REFUSED_RESERVE
    )
    assert rules.pool_refusal_event(PoolView.of(840_000, pool), 20_000, 1, REALISTIC) is None


@settings(max_examples=300, deadline=None)
@given(
    value=st.decimals(min_value=-10, max_value=10**7, places=3, allow_nan=False, allow_infinity=False),
    rate=st.decimals(min_value=0, max_value=Decimal("0.003"), places=6),
    minimum=st.decimals(min_value=0, max_value=10, places=2),
)
def test_realistic_commission_is_the_ledger_formula_and_reference_the_exact_rate(value, rate, minimum):
    realistic = compile_params(default_params("512890.SH", commission_rate=rate, commission_min=minimum))
    reference = compile_params(default_params("512890.SH", "reference", commission_rate=rate))
    assert rules.commission(realistic, value) == ledger_commission(value, rate, minimum)
    assert rules.commission(reference, value) == rate * value  # the reference rule: exact, unrounded


def test_step_and_the_ladder_share_one_buy_step_and_one_take_profit():
    assert ladder.buy_step is rules.buy_step
    for slope in (-0.001, 0.0, 0.002):
        assert ladder.take_profit_multiplier(slope, REALISTIC) == rules.take_profit_multiplier(
            slope, REALISTIC
        )
    assert ladder.take_profit_multiplier(None, REALISTIC) == rules.take_profit_multiplier(0.0, REALISTIC)


@settings(max_examples=200, deadline=None)
@given(
    reference=st.booleans(),
    anchor_milli=st.integers(800, 2000),
    drop=st.floats(0.0, 0.02),
    atr_rel=st.floats(0.0, 0.01),
    slope=st.sampled_from([-0.001, 0.0, 0.001]),
    risk_multiplier=st.sampled_from([1.0, 1.5, 2.0]),
)
def test_step_buys_exactly_where_the_widened_buy_step_says(
    reference, anchor_milli, drop, atr_rel, slope, risk_multiplier
):
    cp = REFERENCE if reference else compile_params(default_params("512890.SH", reserve_ratio=Decimal(0)))
    anchor = anchor_milli / 1000
    price = round(anchor * (1 - drop), 3)
    atr = anchor * atr_rel
    ind = IndicatorValues(atr=atr, slope=slope, atr_avg=atr * 10, rsi=50.0, usable_index=10_000)
    state = GridState(code=cp.code, anchor=anchor)
    bar = Bar(t=BAR_T, o=price, h=price, l=price, c=price)
    ctx = StepContext(indicators=ind, precomputed=True, buy_step_multiplier=risk_multiplier)
    view = None if reference else PoolView.of(0, 10**12)
    _, signals, _ = step(state, bar, view, cp, ctx)
    expected = price <= anchor * (1 - rules.buy_step(price, atr, slope, 0, cp, False, risk_multiplier))
    assert any(s.side == BUY for s in signals) is expected
