from __future__ import annotations

from decimal import Decimal

import pytest

from core.risk.checks import MarginMode, RiskReason, Side, check_order
from core.risk.state import RiskState
from tests.core.stubs import CFG, intent, snapshot


@pytest.mark.parametrize(
    ("snap_kw", "order_kw", "expected"),
    [
        ({}, {}, None),
        ({"halted": True}, {"opens": False}, RiskReason.RISK_HALTED),
        ({"frozen_symbols": frozenset({"510300"})}, {"opens": False}, RiskReason.RISK_SYMBOL_FROZEN),
        ({"dust_locked": frozenset({"510300"})}, {}, RiskReason.RISK_DUST_LOCKED),
        ({"dust_locked": frozenset({"510300"})}, {"opens": False}, None),
        ({"state": RiskState.FUSE}, {}, RiskReason.RISK_FUSE),
        ({"state": RiskState.FUSE}, {"opens": False, "side": Side.SELL}, None),
        ({"state": RiskState.COOLDOWN}, {}, RiskReason.RISK_COOLDOWN),
        ({"state": RiskState.COOLDOWN}, {"opens": False}, None),
        ({"state": RiskState.REDUCE_ONLY}, {}, RiskReason.RISK_REDUCE_ONLY),
        ({"state": RiskState.REDUCE_ONLY}, {"opens": False}, None),
        ({"state": RiskState.DEGRADED}, {}, None),
        ({"data_ok": False}, {}, RiskReason.RISK_DATA_NOT_OK),
        ({"data_ok": False}, {"opens": False}, None),
        ({}, {"symbol": "BTCUSDT", "margin_mode": MarginMode.CROSS}, RiskReason.RISK_CROSS_MARGIN),
        ({}, {"symbol": "BTCUSDT", "margin_mode": MarginMode.CROSS, "opens": False}, None),
        ({}, {"symbol": "BTCUSDT", "leverage": "3", "margin_mode": MarginMode.ISOLATED}, None),
        ({}, {"symbol": "BTCUSDT", "leverage": "3.01"}, RiskReason.RISK_LEVERAGE),
        ({}, {"symbol": "ETH-USDT-SWAP", "leverage": "3"}, None),
        ({}, {"symbol": "SOLUSDT", "leverage": "2"}, None),
        ({}, {"symbol": "SOLUSDT", "leverage": "2.5"}, RiskReason.RISK_LEVERAGE),
        ({}, {"symbol": "510300", "leverage": "2"}, RiskReason.RISK_LEVERAGE),
        ({"extreme": True}, {"symbol": "BTCUSDT", "leverage": "2"}, RiskReason.RISK_LEVERAGE),
        ({"event_window": True}, {"symbol": "BTCUSDT", "leverage": "1"}, None),
        ({"event_window": True}, {"symbol": "BTCUSDT", "leverage": "1.5"}, RiskReason.RISK_LEVERAGE),
        ({"event_window": True}, {"symbol": "SOLUSDT"}, RiskReason.RISK_EVENT_WINDOW_FROZEN),
        ({"event_window": True}, {"symbol": "SOLUSDT", "opens": False}, None),
        ({"liq_blocked": True}, {"symbol": "BTCUSDT"}, RiskReason.RISK_LIQ_DISTANCE),
    ],
)
def test_check_order_returns_first_reason(snap_kw: dict, order_kw: dict, expected: RiskReason | None) -> None:
    assert check_order(snapshot(**snap_kw), intent(**order_kw), CFG) == expected


def test_halt_wins_over_every_other_reason() -> None:
    snap = snapshot(halted=True, state=RiskState.FUSE, data_ok=False, frozen_symbols=frozenset({"510300"}))
    assert check_order(snap, intent(), CFG) is RiskReason.RISK_HALTED


def test_event_window_halves_the_budget() -> None:
    assert snapshot(event_window=True).risk_budget(CFG) == Decimal("0.5")
    assert snapshot(state=RiskState.DEGRADED, event_window=True).risk_budget(CFG) == Decimal("0.25")
