"""Venues for the broker contract: each one is a broker plus the exchange that moves its market.

``PaperVenue`` and ``XtVenue`` (XtQuantBroker on the fake terminal) expose the same small surface, so one
test suite states what every Broker must do.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from settings.config import PaperConfig
from shared_schema.clock import ManualClock
from shared_schema.models import Quote, QuoteFile
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.stubs import SESSION_TIME
from windows.brokers.paper import PaperBroker
from windows.brokers.protocol import BrokerEvent
from windows.brokers.xt_session import load_xt_modules
from windows.brokers.xtquant_broker import XtBrokerSettings, XtQuantBroker

FAKE_MODULE = "tests.kit.fake_xtquant"
ACCOUNT = "FAKE001"
BASE_POSITIONS = {"512890.SH": 100_000, "159201.SZ": 100_000}
CASH = "1000000"


def make_xt_broker(folder: Path, clock: ManualClock, **settings: Any) -> XtQuantBroker:
    options: dict[str, Any] = {"callback_deadline_s": 10.0, "reconnect_backoff_s": (1.0, 2.0)}
    options.update(settings)
    return XtQuantBroker(load_xt_modules(FAKE_MODULE), XtBrokerSettings(str(folder), ACCOUNT, **options), clock=clock)


def settle(broker: XtQuantBroker) -> list[BrokerEvent]:
    """Wait until the fake's worker handed every push to the callback, then drain."""
    trader = broker.conn.trader
    if trader is not None:
        assert trader.wait_delivered(), "fake xttrader did not deliver its pushes in time"
    return broker.drain_events()


class PaperVenue:
    name = "paper"

    def __init__(self, root: Path, partial: bool = False) -> None:
        self.clock = ManualClock(SESSION_TIME)
        config = PaperConfig(initial_cash=CASH, initial_positions=BASE_POSITIONS,
                             partial_fill_ratio=1.0 if partial else 0.0)
        self.broker = PaperBroker(root / "paper", config)
        self.broker.start()

    def quote(self, code: str, bid: float, ask: float, when: datetime | None = None) -> None:
        when = when or self.clock.now()
        q = Quote(code=code, last=ask, bid1=bid, ask1=ask, quote_time=when, prev_close=ask)
        self.broker.on_market(QuoteFile(seq=1, updated_at=when, quotes={code: q}))

    def events(self) -> list[BrokerEvent]:
        return self.broker.drain_events()

    def make_unanswerable(self) -> None:
        import pytest

        pytest.skip("the paper venue always answers its queries")

    def refuse_next_order(self) -> None:
        """The venue refuses the next order before it gets an order id (paper: its simulated rejection)."""
        self.broker.config = self.broker.config.model_copy(update={"reject_ratio": 1.0})

    def close(self) -> None:
        self.broker.stop()


class XtVenue:
    name = "xtquant"

    def __init__(self, root: Path, partial: bool = False) -> None:
        self.clock = ManualClock(SESSION_TIME)
        self.folder = root / "qmt"
        self.terminal = FakeTerminal.create(self.folder, cash=CASH, positions=BASE_POSITIONS, account_id=ACCOUNT)
        if partial:
            self.terminal.set_faults(liquidity=500)
        self.broker = make_xt_broker(self.folder, self.clock)
        self.broker.start()

    def quote(self, code: str, bid: float, ask: float, when: datetime | None = None) -> None:
        self.terminal.set_touch(code, bid, ask, when or self.clock.now(), last=ask, prev_close=ask)
        self.broker.on_market(None)  # the real venue ignores it; called to prove it is harmless

    def events(self) -> list[BrokerEvent]:
        return settle(self.broker)

    def make_unanswerable(self) -> None:
        self.terminal.set_faults(query_none=100)

    def refuse_next_order(self) -> None:
        """QMT refuses the next order itself: async response with order_id -1 and its error, no order row."""
        self.terminal.set_faults(refuse_before_counter=1)

    def close(self) -> None:
        self.broker.stop()


VENUES = {"paper": PaperVenue, "xtquant": XtVenue}
