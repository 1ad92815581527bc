"""Results carry the fill's value and fees as exact money, so a node books cash without an average price."""

from __future__ import annotations

import json
from decimal import Decimal

from shared_schema.models import Result, ResultStatus
from tests.kit.stubs import SESSION_TIME
from windows.executor_state import ExecutorState
from windows.vault import FeeModel, GlobalVault, VaultLimits

B = "512890.SH"
T = SESSION_TIME.isoformat()


def _state(fee: FeeModel) -> ExecutorState:
    limits = VaultLimits.from_yuan(Decimal("300000"), {B: Decimal("200000")}, Decimal("0.15"))
    state = ExecutorState(GlobalVault(limits, fee))
    for rec in (
        {"k": "signal", "id": "b", "h": "x", "sig": {"client_order_id": "b", "code": B, "direction": "BUY",
                                                    "shares": 300}, "t": T},
        {"k": "alloc", "sym": B, "amt": 33_100, "layer": 1, "coid": "b", "shares": 300, "fee": 500,
         "decision": "APPROVED", "t": T},
        {"k": "intent", "id": "b", "coid": "b", "code": B, "side": "BUY", "shares": 300, "price": "1.101",
         "release": [], "t": T},
        {"k": "sent", "coid": "b", "status": "SENT", "boid": "1", "t": T},
    ):
        state.apply(rec)
    return state


def test_a_sent_result_has_no_money_yet_and_each_fill_carries_exact_value_and_fees():
    state = _state(FeeModel(Decimal("0.0001"), 500))
    result = state.signals["b"].result
    assert (result.status, result.filled_value, result.fees) == (ResultStatus.SENT, None, None)
    state.apply({"k": "update", "coid": "b", "state": "PARTIAL", "filled": 100, "value": 11_011, "fees": 0, "t": T})
    result = state.signals["b"].result
    # 110.11 at 1.1011 a share: the average is not a tick price, the value is exact; the broker reported no
    # commission, so the fee is the model's estimate the vault charged (at least 5.00)
    assert (result.filled_value, result.fees) == (Decimal("110.11"), Decimal("5.00"))
    assert state.vault.allocations["b"].buy_fees == 500
    state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 300, "value": 33_031, "fees": 512, "t": T})
    result = state.signals["b"].result
    assert (result.status, result.filled_value, result.fees) == (ResultStatus.FILLED, Decimal("330.31"), Decimal("5.12"))


def test_the_money_fields_round_trip_through_the_result_file_exactly():
    state = _state(FeeModel(Decimal("0.0001"), 500))
    state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 300, "value": 33_031, "fees": 7, "t": T})
    text = state.signals["b"].result.model_dump_json()
    assert json.loads(text)["filled_value"] == 330.31 and json.loads(text)["fees"] == 0.07
    back = Result.model_validate_json(text)
    assert (back.filled_value, back.fees) == (Decimal("330.31"), Decimal("0.07"))


def test_a_refused_send_carries_zero_money():
    state = _state(FeeModel(Decimal("0.0001"), 500))
    state.apply({"k": "update", "coid": "b", "state": "REJECTED", "filled": 0, "value": 0, "fees": 0, "t": T})
    result = state.signals["b"].result
    assert (result.status, result.filled_value, result.fees) == (ResultStatus.REJECTED, Decimal(0), Decimal(0))
