"""Market rules as the exchanges apply them: limit prices rounded half up to the tick, per-exchange sessions."""

from datetime import time, timedelta
from decimal import Decimal

import pytest

from settings.config import ConfigError, GridbridgeConfig, MarketConfig, load_config
from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME
from windows.market_rules import (
    is_cancel_allowed,
    is_in_session,
    new_order_window_problem,
    price_limits,
    round_to_tick,
)

MARKET = MarketConfig()
D = Decimal


# ------------------------------------------------------------------------------------------ price limits


@pytest.mark.parametrize(
    "prev_close, low, high",
    [
        ("1.006", "0.905", "1.107"),  # 0.9054 -> 0.905, 1.1066 -> 1.107: half up, not inward
        ("1.005", "0.905", "1.106"),  # 0.9045 -> 0.905 (a half rounds up), 1.1055 -> 1.106
        ("1.000", "0.900", "1.100"),
        ("1.015", "0.914", "1.117"),  # 0.9135 -> 0.914 (half up), 1.1165 -> 1.117
        ("0.101", "0.091", "0.111"),  # 0.0909 -> 0.091, 0.1111 -> 0.111
    ],
)
def test_price_limits_round_half_up_to_the_tick_like_the_exchange(prev_close, low, high):
    assert price_limits(D(prev_close), MARKET) == (D(low), D(high))


@pytest.mark.parametrize(
    "price, expected",
    [
        (D("1.0005"), D("1.001")),  # half-even would give 1.000
        (D("1.0025"), D("1.003")),  # half-even would give 1.002
        (D("1.0015"), D("1.002")),
        (D("1.00049"), D("1.000")),
        (1.0005, D("1.001")),  # a float goes through its shortest repr, then half up
        (D("1.1"), D("1.100")),
    ],
)
def test_round_to_tick_rounds_half_up(price, expected):
    assert round_to_tick(price, MARKET) == expected


def test_a_price_on_the_rounded_limit_is_accepted_by_the_executor(tmp_path):
    h = Harness(tmp_path)
    h.prev_close["512890.SH"] = 1.006
    h.publish_quotes(**{"512890_SH": 1.100})
    h.send(signal_id="hi", price=1.107, shares=100, layer_index=1)
    h.send(signal_id="over", price=1.108, shares=100, layer_index=1)
    h.turn()
    assert h.result("hi").status is not ResultStatus.REJECTED
    assert h.result("over").reason is Reason.PRICE_LIMIT
    h.executor.stop()


# -------------------------------------------------------------------------------------------- sessions


def at(hh: int, mm: int, ss: int = 0):
    return SESSION_TIME.replace(hour=hh, minute=mm, second=ss)


@pytest.mark.parametrize(
    "when, code, problem",
    [
        (at(10, 0), "159201.SZ", None),
        (at(14, 56, 59), "159201.SZ", None),
        (at(14, 57), "159201.SZ", "CLOSING_CALL_AUCTION"),  # Shenzhen: no cancels 14:57-15:00
        (at(14, 59, 59), "159201.SZ", "CLOSING_CALL_AUCTION"),
        (at(14, 57), "512890.SH", None),  # Shanghai ETFs trade continuously to 15:00
        (at(14, 59, 59), "512890.SH", None),
        (at(15, 0), "512890.SH", "OUTSIDE_SESSION"),
        (at(15, 0), "159201.SZ", "OUTSIDE_SESSION"),
        (at(9, 17), "512890.SH", "OUTSIDE_SESSION"),  # opening call auction, cancels allowed: not ours
        (at(9, 22), "512890.SH", "OPENING_CALL_AUCTION"),  # 09:20-09:25: no cancels
        (at(9, 22), "159201.SZ", "OPENING_CALL_AUCTION"),
        (at(9, 27), "159201.SZ", "OUTSIDE_SESSION"),
        (at(12, 0), "159201.SZ", "OUTSIDE_SESSION"),
        (at(10, 0) + timedelta(days=5), "512890.SH", "OUTSIDE_SESSION"),  # a Saturday
    ],
)
def test_new_orders_only_in_continuous_trading_and_never_where_cancels_are_refused(when, code, problem):
    assert new_order_window_problem(when, code, MARKET) == problem


def test_cancels_are_refused_only_in_the_no_cancel_windows():
    assert not is_cancel_allowed(at(14, 58), "159201.SZ", MARKET)
    assert is_cancel_allowed(at(14, 58), "512890.SH", MARKET)
    assert not is_cancel_allowed(at(9, 21), "512890.SH", MARKET)
    assert is_cancel_allowed(at(9, 16), "512890.SH", MARKET)
    assert is_cancel_allowed(at(10, 0), "159201.SZ", MARKET)


def test_is_in_session_is_per_exchange():
    assert is_in_session(at(14, 58), MARKET, "512890.SH")
    assert not is_in_session(at(14, 58), MARKET, "159201.SZ")


def test_the_executor_refuses_shenzhen_orders_in_the_closing_call_auction(tmp_path):
    h = Harness(tmp_path, when=at(14, 58))
    h.send(signal_id="sz", code="159201.SZ", price=1.300, shares=100, layer_index=1)
    h.send(signal_id="sh", code="512890.SH", price=1.100, shares=100, layer_index=1)
    h.turn()
    sz = h.result("sz")
    assert sz.status is ResultStatus.REJECTED
    assert sz.reason is Reason.NO_CANCEL_PERIOD and sz.detail == "CLOSING_CALL_AUCTION"
    assert sz.message
    assert h.result("sh").status is ResultStatus.FILLED
    assert [o["client_order_id"] for o in h.placed()] == ["sh"]
    h.executor.stop()


def test_the_session_table_is_per_exchange_in_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        '{"market": {"sessions": {"SH": [{"start": "09:30", "end": "15:00"}],'
        ' "SZ": [{"start": "09:30", "end": "14:50"},'
        ' {"start": "14:50", "end": "15:00", "phase": "closing_auction", "cancel_allowed": false}]}}}'
    )
    config = load_config(path)
    assert new_order_window_problem(at(14, 52), "159201.SZ", config.market) == "CLOSING_CALL_AUCTION"
    assert new_order_window_problem(at(12, 0), "512890.SH", config.market) is None
    assert config.market.sessions["SZ"][1].end == time(15, 0)


@pytest.mark.parametrize(
    "sessions, message",
    [
        ({"SH": [{"start": "09:30", "end": "15:00"}]}, "SZ"),  # a configured code without a table
        ({"SH": [{"start": "09:30", "end": "11:30"}, {"start": "11:00", "end": "15:00"}],
          "SZ": [{"start": "09:30", "end": "15:00"}]}, "overlap"),
        ({"SH": [{"start": "15:00", "end": "09:30"}], "SZ": [{"start": "09:30", "end": "15:00"}]}, "start"),
    ],
)
def test_a_broken_session_table_is_a_config_error(tmp_path, sessions, message):
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"market": {"sessions": sessions}}))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_default_config_has_a_table_for_every_design_code():
    config = GridbridgeConfig()
    assert set(config.market.sessions) >= {"SH", "SZ"}
    assert paper_config().market.sessions == config.market.sessions
