"""The pool rule and the commission: one definition each, for the vault, the grid, the venue and the backtest."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared_schema.ledger_math import PoolRefusal, commission, commission_fen, pool_refusal

POOL = 30_000_000  # 300,000 CNY in fen
R15 = Decimal("0.15")


def test_reserve_binds_only_a_first_layer() -> None:
    # 255,000 committed is exactly 85% of 300,000: a first layer may not add a fen, a later layer may.
    assert pool_refusal(25_500_000 - 1, POOL, 1, True, R15) is None
    assert pool_refusal(25_500_000, POOL, 1, True, R15) is PoolRefusal.RESERVE
    assert pool_refusal(25_500_000, POOL, 1, False, R15) is None


def test_order_of_the_rules_cap_then_pool_then_reserve() -> None:
    assert pool_refusal(POOL, POOL, 100, True, R15, 20_000_000, 20_000_000) is PoolRefusal.NOMINAL_CAP
    assert pool_refusal(POOL, POOL, 100, True, R15, 0, 20_000_000) is PoolRefusal.POOL_EXHAUSTED
    assert pool_refusal(POOL - 100, POOL, 100, False, R15) is None
    assert pool_refusal(POOL - 99, POOL, 100, False, R15) is PoolRefusal.POOL_EXHAUSTED


@given(st.integers(0, POOL), st.integers(1, POOL), st.booleans())
def test_an_approved_first_layer_never_breaks_the_reserve(committed: int, need: int, first: bool) -> None:
    if pool_refusal(committed, POOL, need, first, R15) is None:
        assert committed + need <= POOL
        if first:
            assert Decimal(committed + need) <= Decimal(POOL) * (1 - R15)


def test_commission_minimum_rounding_and_zero() -> None:
    assert commission(Decimal("10000"), Decimal("0.0001"), Decimal("0.1")) == Decimal("1.00")
    assert commission(Decimal("100"), Decimal("0.0001"), Decimal("0.1")) == Decimal("0.10")  # the minimum
    assert commission(Decimal("125"), Decimal("0.0001")) == Decimal("0.01")  # 0.0125 rounds half up
    assert commission(Decimal("0"), Decimal("0.0001"), Decimal("5")) == Decimal(0)


@given(st.integers(0, 10**11), st.decimals(Decimal(0), Decimal("0.01"), places=6), st.integers(0, 500))
def test_commission_in_fen_is_the_same_formula(value_fen: int, rate: Decimal, min_fen: int) -> None:
    fen = commission_fen(value_fen, rate, min_fen)
    if value_fen == 0:
        assert fen == 0
    else:
        exact = max(Decimal(value_fen) * rate, Decimal(min_fen))
        assert fen == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert Decimal(fen) / 100 == commission(Decimal(value_fen) / 100, rate, Decimal(min_fen) / 100)
