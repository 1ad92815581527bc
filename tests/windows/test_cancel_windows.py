"""No cancel is sent where the exchange refuses cancels (Shenzhen closing call auction 14:57-15:00, the
opening call auction's 09:20-09:25): the executor defers it, audited, and sends it at the first moment the
code's exchange accepts cancels again. No ``cancel_req`` is journaled for a cancel that was not sent."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.audit import read_events
from core.control.commands import ControlAction, new_command, sign_command
from core.control.file_door import write_command_file
from core.events import AuditCode
from settings.config import MarketConfig
from shared_schema.models import Reason, ResultStatus
from shared_schema.types import CST
from tests.kit.harness import Harness
from windows.market_rules import is_cancel_allowed

SECRET = "s3cret-for-tests"
SZ, SH = "159201.SZ", "512890.SH"
DAY = datetime(2026, 1, 5, tzinfo=CST)  # a Monday


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    harness = Harness(tmp_path, when=at(14, 52))
    harness.turn()
    cancels: list[tuple[str, datetime]] = []
    real = harness.broker.cancel_order

    def recording(coid: str) -> None:
        cancels.append((coid, harness.executor.now()))
        real(coid)

    harness.broker.cancel_order = recording  # type: ignore[method-assign]
    harness.cancels = cancels  # type: ignore[attr-defined]
    yield harness
    harness.executor.stop()


def rest(h: Harness, signal_id: str, code: str, price: str) -> str:
    h.send(signal_id=signal_id, code=code, price=price, shares=1000)
    h.turn()
    assert h.result(signal_id).status is ResultStatus.SENT
    return signal_id


def market_step(h: Harness, when: datetime, turns: int = 1) -> None:
    h.publish_quotes(when=when)
    h.turn(turns)


def refused_cancels(h: Harness) -> list[tuple[str, datetime]]:
    market = h.config.market
    code = {"sz": SZ, "sh": SH}
    return [(c, t) for c, t in h.cancels if not is_cancel_allowed(t, code[c[:2]], market)]


def deferred_events(h: Harness):
    return [e for e in read_events(h.state / "audit.jsonl") if e.code is AuditCode.ORDER_CANCEL_DEFERRED]


def test_an_sz_order_resting_into_the_closing_auction_is_cancelled_only_after_it(h):
    rest(h, "sz-old", SZ, "1.200")  # 14:52, under the bid: rests; max order age 300 s -> due at 14:57
    rest(h, "sh-old", SH, "1.000")
    market_step(h, at(14, 57, 30), turns=3)
    assert [c for c, _ in h.cancels] == ["sh-old"]  # Shanghai has no closing auction: cancelled at once
    assert h.result("sh-old").status is ResultStatus.CANCELLED
    assert h.result("sz-old").status is ResultStatus.SENT
    assert h.executor.state.orders["sz-old"].cancel_requested is False  # nothing journaled that was not sent
    market_step(h, at(14, 59, 59), turns=2)
    assert [c for c, _ in h.cancels] == ["sh-old"]
    events = deferred_events(h)
    assert len(events) == 1 and events[0].data["client_order_id"] == "sz-old"
    assert events[0].data["why"] == "MAX_ORDER_AGE" and events[0].data["action"] == "DEFER"
    assert any("cancel" in a and "sz-old" in a for a in h.results().alerts)
    market_step(h, at(15, 0), turns=2)
    assert [c for c, _ in h.cancels] == ["sh-old", "sz-old"]
    assert refused_cancels(h) == []
    assert h.result("sz-old").status is ResultStatus.CANCELLED
    assert [e.data["action"] for e in deferred_events(h)] == ["DEFER", "SEND"]


def test_a_halt_at_1458_cancels_shanghai_at_once_and_shenzhen_when_cancels_are_allowed(h):
    market_step(h, at(14, 56))
    rest(h, "sz-rest", SZ, "1.200")
    rest(h, "sh-rest", SH, "1.000")
    market_step(h, at(14, 58))
    command = new_command(ControlAction.FORCE_HALT, "test", h.executor.wall_clock.now())
    write_command_file(h.shared, sign_command(command, SECRET.encode()))
    h.turn(3)
    assert h.pool().halted is True
    assert [c for c, _ in h.cancels] == ["sh-rest"]
    assert h.result("sz-rest").status is ResultStatus.SENT
    assert h.executor.state.orders["sz-rest"].cancel_requested is False
    market_step(h, at(14, 59, 30))
    assert [c for c, _ in h.cancels] == ["sh-rest"]
    market_step(h, at(15, 0, 1), turns=2)
    assert [c for c, _ in h.cancels] == ["sh-rest", "sz-rest"]
    assert refused_cancels(h) == []
    assert (h.result("sz-rest").status, h.result("sz-rest").reason) == (ResultStatus.CANCELLED, Reason.HALTED)
    assert [(e.data["client_order_id"], e.data["why"], e.data["action"]) for e in deferred_events(h)] == [
        ("sz-rest", "HALTED", "DEFER"), ("sz-rest", "HALTED", "SEND")]


def test_a_deferred_cancel_whose_order_ends_meanwhile_is_dropped(h):
    rest(h, "sz-fill", SZ, "1.200")
    market_step(h, at(14, 57, 30))
    assert h.cancels == []
    h.publish_quotes(when=at(14, 58), **{"159201_SZ": 1.19})  # the market trades through the limit: it fills
    h.turn(2)
    assert h.result("sz-fill").status is ResultStatus.FILLED
    market_step(h, at(15, 0))
    assert h.cancels == []
    assert [e.data["action"] for e in deferred_events(h)] == ["DEFER", "DROP"]


def test_cancel_windows_follow_the_exchange_table():
    market = MarketConfig()
    assert not is_cancel_allowed(at(14, 58), SZ, market) and is_cancel_allowed(at(14, 58), SH, market)
    assert not is_cancel_allowed(at(9, 22), SH, market) and not is_cancel_allowed(at(9, 22), SZ, market)
    assert is_cancel_allowed(at(15, 0), SZ, market) and is_cancel_allowed(at(9, 25) + timedelta(seconds=1), SZ, market)
