"""The paper venue (our stand-in for the broker) keeps its placement log bounded: at each day's roll it
keeps only the lines of the orders its books still hold (open ones, today's and the two days before), so a
restart reads a few days, not the life of the account. After any restart, or a kill -9 anywhere, it still
knows every order it accepted today (a re-sent id is refused as a duplicate), and an order of a day it has
dropped never comes back to life."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from settings.config import PaperConfig
from shared_schema.models import Quote, QuoteFile
from tests.kit.stubs import SESSION_TIME
from windows.brokers.paper import ORDER_LOG, STATE_FILE, PaperBroker
from windows.brokers.protocol import OrderRequest, PlaceStatus

CONFIG = PaperConfig(initial_cash="100000000", initial_positions={"512890.SH": 10_000_000})


def quote(broker: PaperBroker, when: datetime) -> None:
    q = Quote(code="512890.SH", last=1.1, bid1=1.099, ask1=1.1, quote_time=when, prev_close=1.1)
    broker.on_market(QuoteFile(seq=1, updated_at=when, quotes={"512890.SH": q}))


def place(broker: PaperBroker, coid: str, price: str = "1.100") -> PlaceStatus:
    return broker.place_limit_order(OrderRequest(coid, "512890.SH", "BUY", 100, Decimal(price))).status


def day(n: int) -> datetime:
    when = SESSION_TIME
    for _ in range(n):
        when += timedelta(days=1)
        while when.weekday() >= 5:
            when += timedelta(days=1)
    return when


def log_lines(folder: Path) -> list[dict]:
    path = folder / ORDER_LOG
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def run_days(folder: Path, days: int, per_day: int) -> PaperBroker:
    broker = PaperBroker(folder, CONFIG)
    broker.start()
    for d in range(days):
        quote(broker, day(d))
        for i in range(per_day):
            # half fill at once, half rest below the ask and are cancelled at the day's end
            place(broker, f"D{d}N{i}", "1.100" if i % 2 else "1.000")
        broker.drain_events()
    return broker


def test_the_placement_log_stays_a_few_days_long(tmp_path):
    broker = run_days(tmp_path, days=20, per_day=30)
    lines = log_lines(tmp_path)
    days_in_log = {r["order"]["trading_day"] for r in lines}
    assert len(lines) <= 4 * 30, f"{len(lines)} lines: the log grows with every day"
    assert set(r["client_order_id"] for r in lines) <= set(broker.book.orders)
    assert len(days_in_log) <= 3
    broker.stop()


def test_a_restart_after_compaction_knows_every_order_of_today_and_revives_none(tmp_path):
    broker = run_days(tmp_path, days=10, per_day=10)
    today = {c for c, o in broker.book.orders.items() if o.trading_day == broker.book.trading_day}
    kept = dict(broker.book.orders)
    broker.stop()

    again = PaperBroker(tmp_path, CONFIG)
    again.start()
    assert set(again.book.orders) == set(kept), "no order of a dropped day comes back"
    assert not [c for c, o in again.book.orders.items() if o.is_open and o.trading_day != again.book.trading_day]
    for coid in today:
        assert place(again, coid) is PlaceStatus.REJECTED  # a duplicate: the venue knows it
    again.stop()


def test_a_kill_after_placing_and_before_the_books_are_written_loses_no_order(tmp_path):
    broker = run_days(tmp_path, days=6, per_day=5)
    place(broker, "late-1")
    place(broker, "late-2", "1.000")  # logged (fsync) before it is acted on; books not yet written
    books = json.loads((tmp_path / STATE_FILE).read_text())
    assert "late-1" not in books["orders"]
    # kill -9: no stop(), no flush

    again = PaperBroker(tmp_path, CONFIG)
    again.start()
    assert {"late-1", "late-2"} <= set(again.book.orders)
    assert place(again, "late-1") is PlaceStatus.REJECTED and place(again, "late-2") is PlaceStatus.REJECTED
    assert not [c for c, o in again.book.orders.items() if o.is_open and o.trading_day != again.book.trading_day]
    again.stop()


def test_a_kill_between_the_books_and_the_log_rewrite_revives_nothing(tmp_path, monkeypatch):
    """The books were written at the roll (old days trimmed) but the log was not yet rewritten."""
    broker = run_days(tmp_path, days=5, per_day=5)
    broker.stop()
    monkeypatch.setattr(PaperBroker, "_compact_log", lambda self: None)
    broker = PaperBroker(tmp_path, CONFIG)
    broker.start()
    for d in range(5, 9):
        quote(broker, day(d))
        place(broker, f"X{d}", "1.000")
        broker.drain_events()
    kept = set(broker.book.orders)
    # kill -9 here: the books hold the trimmed day, the log still every placement
    monkeypatch.undo()

    again = PaperBroker(tmp_path, CONFIG)
    again.start()
    assert set(again.book.orders) == kept
    again.stop()
