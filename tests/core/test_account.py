from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.oms.account import (
    HeldPosition,
    OversellError,
    apply_buy,
    apply_sell,
    build_account,
    weighted_liq_distance,
)
from tests.core.stubs import position

D = Decimal


def test_wac_buy_then_partial_sell() -> None:
    pos = apply_buy(HeldPosition("510300"), D(100), D("3.000"), D("0.50"))
    pos = apply_buy(pos, D(100), D("3.200"), D("0.50"))
    assert pos.entry == D("3.105")
    res = apply_sell(pos, D(100), D("3.300"), D("0.40"))
    assert res.realised == D("330.0") - D("0.40") - D("310.5")
    assert res.position.entry == D("3.105") and res.position.qty == 100


def test_oversell_refused() -> None:
    with pytest.raises(OversellError):
        apply_sell(HeldPosition("A", D(1), D(1)), D(2), D(1))


def test_unrealised_at_mark_and_equity() -> None:
    pos = apply_buy(HeldPosition("A"), D(10), D(2))
    pos = HeldPosition(pos.symbol, pos.qty, pos.cost, mark=D("2.5"))
    assert pos.unrealised_pnl == D(5)
    acct = build_account(D(100), [pos], peak_equity=D(200))
    assert acct.equity == D(125) and acct.drawdown_pct == D("0.375")


prices = st.decimals(min_value=D("0.001"), max_value=D(1000), places=3)
qtys = st.integers(min_value=1, max_value=10_000).map(D)
fees = st.decimals(min_value=D(0), max_value=D(5), places=2)


@given(st.lists(st.tuples(st.booleans(), qtys, prices, fees), min_size=1, max_size=40), prices)
def test_wac_ledger_conserves_money_exactly(ops: list, close_price: Decimal) -> None:
    pos = HeldPosition("X")
    cash_flow = D(0)
    realised = D(0)
    for is_buy, qty, price, fee in ops:
        if is_buy or pos.qty == 0:
            pos = apply_buy(pos, qty, price, fee)
            cash_flow -= qty * price + fee
        else:
            q = min(qty, pos.qty)
            res = apply_sell(pos, q, price, fee)
            pos, realised = res.position, realised + res.realised
            cash_flow += q * price - fee
        assert pos.qty >= 0 and pos.cost >= 0
    # Invariant: realised + remaining basis == net cash flow + money still in the position's basis.
    assert realised == cash_flow + pos.cost
    if pos.qty:
        res = apply_sell(pos, pos.qty, close_price)
        assert res.position.cost == 0 and res.position.qty == 0
        assert res.position.realised_pnl == cash_flow + pos.qty * close_price


def test_weighted_liq_distance_is_dominated_by_the_big_position_near_liquidation() -> None:
    big_near = position("BTCUSDT", qty="10", mark="100", liq="95")  # 5 %, notional 1000
    small_far = position("ETHUSDT", qty="1", mark="100", liq="50")  # 50 %, notional 100
    assert weighted_liq_distance([big_near, small_far], D("0.95")) == D("0.05")
    short = position("SOLUSDT", qty="-1", mark="100", liq="120")
    assert short.liq_distance == D("0.2")
    assert weighted_liq_distance([position(liq=None)], D("0.95")) is None
