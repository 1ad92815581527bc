"""Contracts <-> base units: rounding down to the lot, exact round trips (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.venue.types import Market
from crypto.venue.units import is_multiple, round_down_to_step, split_to_lot, to_base, to_contracts

D = Decimal


def swap(contract_size: str = "0.01", lot: str = "0.01") -> Market:
    cs = D(contract_size)
    return Market(symbol="BTC/USDT:USDT", venue_id="BTC-USDT-SWAP", kind="swap", base="BTC", quote="USDT",
                  settle="USDT", contract_size=cs, qty_step=D(lot) * cs, tick=D("0.1"), min_qty=D(lot) * cs,
                  min_notional=D(0))


def spot(lot: str = "0.00000001") -> Market:
    return Market(symbol="BTC/USDT", venue_id="BTC-USDT", kind="spot", base="BTC", quote="USDT", settle=None,
                  contract_size=D(1), qty_step=D(lot), tick=D("0.1"), min_qty=D("0.00001"), min_notional=D(0))


def test_btc_swap_one_base_unit_is_one_hundred_contracts() -> None:
    assert to_contracts(swap(), D("1")) == D(100)
    assert to_base(swap(), D(100)) == D(1)


def test_eth_swap_contract_is_a_tenth() -> None:
    eth = swap(contract_size="0.1", lot="1")
    assert to_contracts(eth, D("0.35")) == D(3)  # 3.5 contracts rounds down to 3
    assert to_base(eth, D(3)) == D("0.3")


def test_off_lot_rounds_down_never_up() -> None:
    market = swap()  # lot 0.01 contract = 0.0001 BTC
    assert to_contracts(market, D("0.00019")) == D("0.01")
    assert split_to_lot(market, D("0.00019")) == (D("0.0001"), D("0.00009"))


def test_below_one_lot_gives_zero() -> None:
    assert to_contracts(swap(), D("0.00009")) == 0


def test_spot_amount_is_base() -> None:
    assert to_contracts(spot(), D("0.123456789")) == D("0.12345678")


def test_bad_step_refused() -> None:
    with pytest.raises(ValueError):
        round_down_to_step(D(1), D(0))
    with pytest.raises(ValueError):
        round_down_to_step(D(-1), D(1))


sizes = st.sampled_from(["0.01", "0.1", "1", "10", "0.001", "0.0001"])
lots = st.sampled_from(["1", "0.1", "0.01", "0.001"])
quantities = st.decimals(min_value=D(0), max_value=D(100000), places=8, allow_nan=False, allow_infinity=False)


@given(cs=sizes, lot=lots, qty=quantities)
def test_conversion_never_exceeds_and_loses_less_than_a_lot(cs: str, lot: str, qty: Decimal) -> None:
    market = swap(cs, lot)
    back = to_base(market, to_contracts(market, qty))
    assert back <= qty
    assert qty - back < market.qty_step
    assert is_multiple(back, market.qty_step)
    assert is_multiple(to_contracts(market, qty), D(lot))


@given(cs=sizes, lot=lots, lots_count=st.integers(min_value=0, max_value=10**7))
def test_on_lot_quantity_round_trips_exactly(cs: str, lot: str, lots_count: int) -> None:
    market = swap(cs, lot)
    contracts = D(lot) * lots_count
    qty = to_base(market, contracts)
    assert to_contracts(market, qty) == contracts
    assert to_base(market, to_contracts(market, qty)) == qty


@given(cs=sizes, lot=lots, qty=quantities)
def test_split_adds_up(cs: str, lot: str, qty: Decimal) -> None:
    on_lot, residual = split_to_lot(swap(cs, lot), qty)
    assert on_lot + residual == qty
    assert D(0) <= residual < swap(cs, lot).qty_step


@given(lots_count=st.integers(min_value=1, max_value=10**9))
def test_contract_amount_survives_ccxt_float_path(lots_count: int) -> None:
    # The adapter hands ccxt float(amount); ccxt formats with str(float): an on-lot amount must come back
    # as the same decimal string.
    contracts = D("0.01") * lots_count
    assert D(str(float(contracts))) == contracts
