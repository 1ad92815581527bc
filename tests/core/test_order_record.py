"""The one order record: exact money, and every state change through the state machine's table."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.oms.order_fsm import (
    IllegalTransition,
    OrderRecord,
    OrderState,
    apply_update,
    assume_sent,
    confirm_sent,
)

NEW = OrderRecord(client_order_id="b1", symbol="512890.SH", side="BUY", shares=300, price=Decimal("1.101"))


def test_confirm_sent_moves_new_to_sent_through_the_table_and_refuses_anything_else():
    sent = confirm_sent(NEW, "P1")
    assert (sent.state, sent.broker_order_id) == (OrderState.SENT, "P1")
    with pytest.raises(IllegalTransition):
        confirm_sent(sent, "P2")  # a second confirmation is not a transition the table has
    with pytest.raises(IllegalTransition):
        confirm_sent(replace(NEW, state=OrderState.FILLED))


def test_assume_sent_only_moves_an_unconfirmed_order():
    assert assume_sent(NEW).state is OrderState.SENT
    acked = apply_update(confirm_sent(NEW), OrderState.ACK).order
    assert assume_sent(acked) is acked  # never back to SENT from further on


def test_a_lost_order_reaches_rejected_by_legal_steps_only():
    rejected = apply_update(assume_sent(NEW), OrderState.REJECTED, message="never reached the venue")
    assert rejected.refused is None and rejected.order.state is OrderState.REJECTED


def test_price_and_average_are_exact_decimals():
    filled = apply_update(confirm_sent(NEW), OrderState.FILLED, 300, 33_031, 5).order
    assert isinstance(filled.price, Decimal)
    assert filled.avg_price == Decimal("1.101033")  # 330.31 / 300, to 6 decimals (a quotient, not a tick)
    assert NEW.avg_price == 0
