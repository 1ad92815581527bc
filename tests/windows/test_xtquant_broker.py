"""XtQuantBroker against the fake terminal's faults: what QMT bridge users report, and how it is survived."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from core.oms.order_fsm import OrderState
from shared_schema.config import GridbridgeConfig
from shared_schema.models import Reason, ResultStatus
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.harness import Harness
from tests.kit.venues import ACCOUNT, BASE_POSITIONS, CASH, FAKE_MODULE, XtVenue, make_xt_broker
from windows.brokers.protocol import ConnectionEvent, OrderRequest, OrderUpdate, PlaceStatus
from windows.brokers.xtquant_broker import (
    LOST_AFTER_LOOKUPS,
    XT_ORDER_STATUS,
    XT_ORDER_TYPE,
    XtQuantBroker,
    XtQuantUnavailable,
    load_xt_modules,
)
from windows.executor import Executor

CODE = "512890.SH"


def buy(coid: str, shares: int = 1000, price: str = "1.101") -> OrderRequest:
    return OrderRequest(coid, CODE, "BUY", shares, Decimal(price))


def ups(events, coid: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


@pytest.fixture
def venue(tmp_path):
    v = XtVenue(tmp_path)
    v.quote(CODE, 1.099, 1.100)
    yield v
    v.close()


# ------------------------------------------------------------------------------------------ vocabulary


def test_status_map_covers_every_real_qmt_order_status():
    xc = load_xt_modules(FAKE_MODULE).xtconstant
    names = {
        "ORDER_UNREPORTED": OrderState.SENT, "ORDER_WAIT_REPORTING": OrderState.SENT, "ORDER_REPORTED": OrderState.ACK,
        "ORDER_REPORTED_CANCEL": OrderState.ACK, "ORDER_PARTSUCC_CANCEL": OrderState.PARTIAL,
        "ORDER_PART_CANCEL": OrderState.CANCELLED, "ORDER_CANCELED": OrderState.CANCELLED,
        "ORDER_PART_SUCC": OrderState.PARTIAL, "ORDER_SUCCEEDED": OrderState.FILLED, "ORDER_JUNK": OrderState.REJECTED,
        "ORDER_UNKNOWN": None,
    }
    assert {getattr(xc, n): s for n, s in names.items()} == XT_ORDER_STATUS
    # cancel-pending is not cancelled
    assert XT_ORDER_STATUS[xc.ORDER_REPORTED_CANCEL] is not OrderState.CANCELLED
    assert {s: getattr(xc, n) for s, n in XT_ORDER_TYPE.items()} == {"BUY": 23, "SELL": 24}


def test_the_fake_reexports_the_real_xtconstant_values():
    import xtquant.xtconstant as real

    fake = load_xt_modules(FAKE_MODULE).xtconstant
    assert (fake.STOCK_BUY, fake.STOCK_SELL, fake.FIX_PRICE, fake.ORDER_JUNK) == (
        real.STOCK_BUY, real.STOCK_SELL, real.FIX_PRICE, real.ORDER_JUNK)


def test_real_trader_off_windows_gives_a_clear_error():
    with pytest.raises(XtQuantUnavailable, match="Windows"):
        load_xt_modules("xtquant")


def test_factory_builds_the_xtquant_broker_with_an_injected_module(tmp_path):
    from windows.brokers.factory import make_broker

    config = GridbridgeConfig.model_validate({"xtquant": {"userdata_path": str(tmp_path), "account_id": ACCOUNT}})
    broker = make_broker("xtquant", config, tmp_path, tmp_path, xtquant_module=FAKE_MODULE)
    assert isinstance(broker, XtQuantBroker)
    with pytest.raises(SystemExit, match="account_id"):
        make_broker("xtquant", GridbridgeConfig(), tmp_path, tmp_path, xtquant_module=FAKE_MODULE)


# -------------------------------------------------------------------------------------------- pushes


def test_status_sequence_is_sent_ack_filled_with_values_from_trade_reports(venue):
    venue.terminal.set_faults(liquidity=400)
    venue.broker.place_limit_order(buy("A1"))
    first = ups(venue.events(), "A1")
    later = []
    for _ in range(2):
        venue.quote(CODE, 1.099, 1.100, venue.clock.advance(60))
        later += ups(venue.events(), "A1")

    assert [(u.state, u.filled_shares) for u in first] == [(OrderState.PARTIAL, 400)]
    assert [(u.state, u.filled_shares, u.filled_value_fen) for u in later] == [
        (OrderState.PARTIAL, 800, 88_000), (OrderState.FILLED, 1000, 110_000)]
    assert later[-1].broker_order_id


def test_duplicated_and_reordered_pushes_say_each_thing_once(venue):
    venue.terminal.set_faults(duplicate=True, reorder=True, liquidity=300)
    venue.broker.place_limit_order(buy("R1"))
    events = venue.events()
    for _ in range(4):
        venue.quote(CODE, 1.099, 1.100, venue.clock.advance(60))
        events += venue.events()

    seen = ups(events, "R1")
    keys = [(u.state, u.filled_shares, u.filled_value_fen) for u in seen]
    assert len(keys) == len(set(keys))
    assert [k[1] for k in keys] == sorted(k[1] for k in keys)
    assert keys[-1] == (OrderState.FILLED, 1000, 110_000)


def test_junk_order_is_rejected_with_the_venue_message(venue):
    venue.broker.place_limit_order(OrderRequest("J1", CODE, "SELL", BASE_POSITIONS[CODE] + 100, Decimal("1.099")))

    final = ups(venue.events(), "J1")[-1]

    assert final.state is OrderState.REJECTED and "sellable" in final.message


def test_cancel_asked_before_the_order_id_arrives_is_sent_when_it_does(venue):
    venue.broker.place_limit_order(buy("C1", price="1.050"))
    venue.broker.cancel_order("C1")  # the async response has not been drained yet

    events = venue.events()
    events += venue.events()

    assert ups(events, "C1")[-1].state is OrderState.CANCELLED
    assert venue.terminal.orders()[-1]["status"] == 54


def test_part_filled_then_cancelled_ends_cancelled_with_its_fills(venue):
    venue.terminal.set_faults(liquidity=300)
    venue.broker.place_limit_order(buy("C2"))
    venue.events()
    venue.broker.cancel_order("C2")

    final = ups(venue.events(), "C2")[-1]

    assert (final.state, final.filled_shares, final.filled_value_fen) == (OrderState.CANCELLED, 300, 33_000)
    assert venue.terminal.orders()[-1]["status"] == 53


def test_venue_orders_without_our_remark_are_reported_not_ignored(venue):
    from tests.kit.fake_xtquant import xttrader, xttype

    manual = xttrader.XtQuantTrader(str(venue.folder), 424242)
    manual.start()
    assert manual.connect() == 0
    manual.order_stock_async(xttype.StockAccount(ACCOUNT), CODE, 23, 100, 11, 1.05, "", "")
    manual.stop()

    foreign = [u for u in venue.broker.query_orders() if u.client_order_id.startswith("xt-")]

    assert len(foreign) == 1 and "not placed by gridbridge" in foreign[0].message


# -------------------------------------------------------------------------------- missing callbacks


def test_order_with_no_callback_is_looked_up_after_the_deadline(venue):
    venue.terminal.set_faults(silent_remarks=["M1"])
    venue.broker.place_limit_order(buy("M1"))
    assert ups(venue.events(), "M1") == []

    venue.clock.advance(10)
    found = ups(venue.events(), "M1")

    assert [(u.state, u.filled_value_fen) for u in found] == [(OrderState.FILLED, 110_000)]


def test_silent_insufficient_funds_rejection_is_reported_after_the_lookups(venue):
    venue.terminal.set_faults(silent_insufficient_funds=True)
    outcome = venue.broker.place_limit_order(buy("F1", shares=2_000_000))
    assert outcome.status is PlaceStatus.SENT
    events = []
    for _ in range(LOST_AFTER_LOOKUPS):
        assert ups(events, "F1") == []
        venue.clock.advance(10)
        events += venue.events()

    (final,) = ups(events, "F1")
    assert final.state is OrderState.REJECTED and "not at the venue" in final.message


def test_query_hides_nothing_but_says_unknown_while_a_fresh_order_may_be_unseen(venue):
    venue.terminal.set_faults(silent_insufficient_funds=True)
    venue.broker.place_limit_order(buy("F2", shares=2_000_000))

    assert venue.broker.query_orders() is None  # the terminal's cache may trail: unknown, not absent
    venue.clock.advance(10)
    assert "F2" not in {u.client_order_id for u in venue.broker.query_orders()}


def test_trade_reports_missing_behind_a_filled_order_row_are_fetched(venue):
    venue.terminal.set_faults(silent_remarks=["G1"])
    venue.broker.place_limit_order(buy("G1"))
    row = venue.broker.conn.trader.query_stock_orders(venue.broker.conn.account)[-1]
    from windows.brokers.xtquant_broker import _ORDER_FIELDS, _copy

    venue.broker._absorb_order(_copy(row, _ORDER_FIELDS))  # the order push came, its trade push did not
    held = ups(venue.broker.drain_events(), "G1")
    venue.clock.advance(10)
    fetched = ups(venue.broker.drain_events(), "G1")

    assert held[-1].state is OrderState.ACK, "not FILLED before the value is exact"
    assert (fetched[-1].state, fetched[-1].filled_value_fen) == (OrderState.FILLED, 110_000)


# ------------------------------------------------------------------------------- -1 and disconnects


def test_minus_one_is_unknown_and_the_live_order_is_found(venue):
    venue.terminal.set_faults(minus_one_next=1)

    outcome = venue.broker.place_limit_order(buy("N1"))

    assert outcome.status is PlaceStatus.UNKNOWN
    assert ups(venue.events(), "N1")[-1].state is OrderState.FILLED
    assert len(venue.terminal.orders_by_remark()["N1"]) == 1


def test_disconnect_mid_burst_then_reconnect_with_a_new_session_and_reconcile(venue):
    venue.terminal.set_faults(disconnect_after_pushes=7, liquidity=500)
    outcomes = {f"B{i}": venue.broker.place_limit_order(buy(f"B{i}")).status for i in range(3)}
    events = venue.events()
    first_session = venue.broker.conn.session_id
    # B2 went out after the link broke but before on_disconnected arrived: -1, unknown, and indeed not live.
    assert outcomes == {"B0": PlaceStatus.SENT, "B1": PlaceStatus.SENT, "B2": PlaceStatus.UNKNOWN}
    assert any(isinstance(e, ConnectionEvent) and not e.connected for e in events)
    assert venue.broker.query_asset() is None
    refused = venue.broker.place_limit_order(buy("B9"))
    assert refused.status is PlaceStatus.REJECTED
    assert "B9" not in venue.terminal.orders_by_remark()
    venue.quote(CODE, 1.099, 1.100, venue.clock.advance(60))  # fills land while we are away

    venue.clock.advance(1.0)
    after = venue.events()

    kinds = [type(e).__name__ for e in after]
    assert isinstance(after[-1], ConnectionEvent) and after[-1].connected, kinds
    assert venue.broker.conn.session_id != first_session
    assert set(venue.terminal.sessions()) == {str(first_session), str(venue.broker.conn.session_id)}
    assert "B2" not in venue.terminal.orders_by_remark()
    truth = {r: venue.terminal.filled_value_fen(r) for r in ("B0", "B1")}
    latest = {}
    for e in events + after:
        if isinstance(e, OrderUpdate):
            latest[e.client_order_id] = e
    assert {c: latest[c].filled_value_fen for c in truth} == truth
    assert all(latest[c].state is OrderState.FILLED for c in truth)


def test_no_connected_event_until_the_reconcile_queries_answer(venue):
    venue.terminal.drop_connections()
    assert any(isinstance(e, ConnectionEvent) and not e.connected for e in venue.events())
    venue.terminal.set_faults(query_none=2)

    venue.clock.advance(1.0)
    assert not any(isinstance(e, ConnectionEvent) for e in venue.broker.drain_events())
    assert not venue.broker.connected

    venue.clock.advance(2.0)
    assert any(isinstance(e, ConnectionEvent) and e.connected for e in venue.broker.drain_events())


def test_refused_connects_back_off(venue):
    venue.terminal.set_faults(refuse_connect=1)
    venue.terminal.drop_connections()
    venue.events()

    venue.clock.advance(0.5)
    assert venue.broker.drain_events() == []  # not due yet
    venue.clock.advance(0.5)
    assert venue.broker.drain_events() == []  # refused; next try after 2 s
    venue.clock.advance(2.0)
    assert any(isinstance(e, ConnectionEvent) and e.connected for e in venue.broker.drain_events())


# ------------------------------------------------------------------------------ through the executor


class XtHarness(Harness):
    """The in-process executor harness with XtQuantBroker on the fake terminal instead of paper."""

    def __init__(self, root: Path, terminal_kwargs: dict | None = None, config: GridbridgeConfig | None = None):
        self.folder = Path(root) / "qmt"
        options = {"cash": CASH, "positions": BASE_POSITIONS, "account_id": ACCOUNT, **(terminal_kwargs or {})}
        self.terminal = FakeTerminal.create(self.folder, **options)
        super().__init__(root, config)

    def make_executor(self) -> Executor:
        broker = make_xt_broker(self.folder, self.clock)
        return Executor(self.shared, self.state, self.config, broker, wall_clock=self.clock, watch_mode="poll")

    def publish_quotes(self, when=None, **prices: float) -> None:
        super().publish_quotes(when, **prices)
        if hasattr(self, "terminal"):
            for code, last in self.prices.items():
                self.terminal.set_touch(code, round(last - self.spread, 3), last, self.clock.now(), last=last)

    def settle_turn(self, n: int = 1) -> None:
        for _ in range(n):
            trader = self.executor.broker.conn.trader
            if trader is not None:
                trader.wait_delivered()
            self.executor.run_once()

    def turn_until(self, predicate, turns: int = 200) -> bool:
        for _ in range(turns):
            self.settle_turn()
            if predicate():
                return True
            time.sleep(0.002)
        return False


@pytest.fixture
def xh(tmp_path):
    h = XtHarness(tmp_path)
    yield h
    h.executor.stop()


def test_executor_never_resends_a_minus_one_order_and_books_its_fill(xh):
    xh.terminal.set_faults(minus_one_next=1, silent_remarks=["S1"])
    sid = xh.send(signal_id="S1", price="1.101")

    assert xh.turn_until(lambda: xh.result(sid).status is ResultStatus.FILLED)
    assert len(xh.terminal.orders_by_remark()["S1"]) == 1
    assert xh.terminal.snapshot()["counters"]["order_stock_async"] == 1
    assert xh.pool().used_512890 * 100 == xh.terminal.filled_value_fen("S1")


def test_executor_releases_the_frozen_amount_of_a_silent_insufficient_funds_rejection(tmp_path):
    h = XtHarness(tmp_path, {"cash": "1101", "commission_min": "5"})
    try:
        h.terminal.set_faults(silent_insufficient_funds=True)
        sid = h.send(signal_id="S2", price="1.100")
        h.settle_turn(3)
        assert h.result(sid).status is ResultStatus.SENT
        assert h.pool().frozen_512890 > 0
        for _ in range(LOST_AFTER_LOOKUPS):
            h.clock.advance(10)
            h.settle_turn(2)

        result = h.result(sid)
        assert (result.status, result.reason) == (ResultStatus.REJECTED, Reason.BROKER_REJECT)
        assert h.pool().frozen_512890 == 0
    finally:
        h.executor.stop()


def test_executor_goes_disconnected_then_trades_again_only_after_reconcile(xh):
    xh.terminal.set_faults(disconnect_after_pushes=4)
    first = xh.send(signal_id="D1", price="1.101")
    assert xh.turn_until(lambda: not xh.executor.connected)
    assert any("DISCONNECTED" in a for a in xh.results().alerts)
    refused = xh.send(signal_id="D2", price="1.101")
    xh.settle_turn(2)
    assert xh.result(refused).reason is Reason.RISK_STATE, xh.result(refused)
    assert xh.result(refused).status is ResultStatus.REJECTED

    xh.clock.advance(1.0)
    assert xh.turn_until(lambda: xh.executor.connected)
    after = xh.send(signal_id="D3", price="1.101")
    assert xh.turn_until(lambda: xh.result(after).status is ResultStatus.FILLED)
    assert "D2" not in xh.terminal.orders_by_remark()

    assert xh.result(first).status is ResultStatus.FILLED
    assert xh.pool().used_512890 * 100 == xh.terminal.filled_value_fen("D1") + xh.terminal.filled_value_fen("D3")
    assert len(xh.terminal.sessions()) == 2
