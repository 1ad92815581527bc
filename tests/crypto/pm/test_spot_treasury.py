"""Spot WAC (on core's ledger) and the treasury rule and transfer table."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.oms.account import HeldPosition
from crypto.pm.spot import OversellError, SpotBook, spot_buy, spot_sell, unrealised
from crypto.pm.treasury import (
    TRANSITIONS,
    IllegalTransfer,
    TransferRecord,
    TransferState,
    TransferTrigger,
    decide_transfer,
    need,
    transfer_id_for,
    transition,
)


def test_buy_100_and_110_gives_wac_105_then_sell_half_at_120_realises_7_5() -> None:
    book = spot_buy(spot_buy(SpotBook(HeldPosition("BTC/USDT")), D(1), D(100)), D(1), D(110))
    assert book.wac == D(105)
    book, realised = spot_sell(book, D("0.5"), D(120))
    assert realised == D("7.5")
    assert book.wac == D(105)  # a sell leaves the WAC of the rest unchanged
    assert unrealised(book, D(120)) == (D(120) - D(105)) * D("1.5")


def test_buy_fee_goes_into_the_cost() -> None:
    book = spot_buy(SpotBook(HeldPosition("ETH/USDT")), D(2), D(100), fee=D("0.2"))
    assert book.wac == D("100.1")


def test_oversell_refused() -> None:
    book = spot_buy(SpotBook(HeldPosition("ETH/USDT")), D(1), D(100))
    with pytest.raises(OversellError):
        spot_sell(book, D(2), D(100))


amounts = st.decimals(min_value=D("0.001"), max_value=D(100), places=3)


@settings(max_examples=200)
@given(buys=st.lists(st.tuples(amounts, amounts), min_size=1, max_size=6), sell_share=st.integers(1, 100))
def test_realised_plus_unrealised_is_value_minus_cost(buys: list[tuple[D, D]], sell_share: int) -> None:
    book = SpotBook(HeldPosition("X/USDT"))
    for qty, price in buys:
        book = spot_buy(book, qty, price)
    cost = sum((q * p for q, p in buys), D(0))
    sold = (book.qty * sell_share / 100).quantize(D("0.000001"))
    if sold <= 0:
        return
    wac_before = book.wac
    book, realised = spot_sell(book, sold, D(50))
    mark = D(60)
    total = realised + unrealised(book, mark)
    assert abs(total - (sold * D(50) + book.qty * mark - cost)) < D("0.0000001")
    if book.qty:
        assert abs(book.wac - wac_before) < D("0.0000001")


def test_treasury_need_and_rule() -> None:
    assert need(D(500), D(200)) == D(300)
    assert need(D(500), D(800)) == D(0)
    assert decide_transfer(D(200), D(400), D(500), D(100)) == D(300)
    assert decide_transfer(D(200), D(399), D(500), D(100)) == "TREASURY_SPOT_SHORT"
    assert decide_transfer(D(600), D(10_000), D(500), D(100)) == "TREASURY_NO_NEED"


def _rec() -> TransferRecord:
    return TransferRecord("t1", "USDT", D(300), "funding", "trading", TransferState.PENDING, 0)


def test_transfer_pending_approved_executed() -> None:
    rec = transition(transition(_rec(), TransferTrigger.APPROVE, 1), TransferTrigger.VENUE_OK, 2, venue_transfer_id="v9")
    assert rec.state is TransferState.EXECUTED and rec.venue_transfer_id == "v9"


@pytest.mark.parametrize("state", list(TransferState))
@pytest.mark.parametrize("trigger", list(TransferTrigger))
def test_transfer_table_refuses_everything_else(state: TransferState, trigger: TransferTrigger) -> None:
    rec = TransferRecord("t", "USDT", D(1), "funding", "trading", state, 0)
    if (state, trigger) in TRANSITIONS:
        assert transition(rec, trigger, 1).state is TRANSITIONS[(state, trigger)]
    else:
        with pytest.raises(IllegalTransfer):
            transition(rec, trigger, 1)


def test_transfer_id_is_stable_within_a_period() -> None:
    assert transfer_id_for("funding", "trading", 1_000, 300_000) == transfer_id_for("funding", "trading", 299_999, 300_000)
    assert transfer_id_for("funding", "trading", 1_000, 300_000) != transfer_id_for("funding", "trading", 300_000, 300_000)
