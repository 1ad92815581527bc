"""XtQuantBroker against the fake terminal's faults: what QMT bridge users report, and how it is survived."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.audit import read_events
from core.events import AuditCode
from core.oms.lost_orders import LOST_AFTER_LOOKUPS
from core.oms.order_fsm import OrderState
from settings.config import GridbridgeConfig
from shared_schema.models import Reason, ResultStatus
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.harness import Harness
from tests.kit.stubs import SESSION_TIME
from tests.kit.venues import ACCOUNT, BASE_POSITIONS, CASH, FAKE_MODULE, XtVenue, make_xt_broker, settle
from windows.brokers.protocol import ConnectionEvent, OrderRequest, OrderUpdate, PlaceStatus
from windows.brokers.xt_orders import XT_ORDER_STATUS, XT_ORDER_TYPE
from windows.brokers.xt_session import XtQuantUnavailable, load_xt_modules
from windows.brokers.xtquant_broker import XtQuantBroker
from windows.executor import JOURNAL_FILE, Executor

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


def place_manual(folder: Path, remark: str, session: int = 424242, price: float = 1.05) -> None:
    """An order someone else places on the same account (the QMT window, another program)."""
    from tests.kit.fake_xtquant import xttrader, xttype

    manual = xttrader.XtQuantTrader(str(folder), session)
    manual.start()
    assert manual.connect() == 0
    manual.order_stock_async(xttype.StockAccount(ACCOUNT), CODE, 23, 100, 11, price, "", remark)
    manual.stop()


def write_journal(path: Path, *coids: str, snapshot: tuple[str, ...] = ()) -> None:
    """A journal whose records name ``coids``, after a compaction snapshot that holds ``snapshot``'s orders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        if snapshot:
            orders = {c: {"__obj__": "windows.executor_state:LiveOrder", "f": {"record": {
                "__obj__": "core.oms.order_fsm:OrderRecord", "f": {"client_order_id": c}}}} for c in snapshot}
            handle.write(json.dumps({"k": "snapshot", "state": {"__d__": {"orders": {"__d__": orders}}}}) + "\n")
        for coid in coids:
            handle.write(json.dumps({"k": "intent", "id": coid, "coid": coid, "code": CODE}) + "\n")


def wait_for(predicate, safety_net_s: float = 60.0) -> bool:
    """Poll until ``predicate()`` (progress); the deadline is only a safety net."""
    deadline = time.monotonic() + safety_net_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def finishes(fn, *args):
    """Run ``fn`` on a thread; the test fails (instead of hanging) if it never returns. The 60 s is only a
    safety net: a bounded call returns after its own timeout, far sooner."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("value", fn(*args)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"{getattr(fn, '__name__', fn)} never returned: a hung terminal froze the caller"
    return box.get("value")


def test_venue_orders_without_our_remark_are_reported_not_ignored(venue):
    from tests.kit.fake_xtquant import xttrader, xttype

    manual = xttrader.XtQuantTrader(str(venue.folder), 424242)
    manual.start()
    assert manual.connect() == 0
    manual.order_stock_async(xttype.StockAccount(ACCOUNT), CODE, 23, 100, 11, 1.05, "", "")
    manual.stop()

    foreign = [u for u in venue.broker.query_orders() if u.client_order_id.startswith("xt-")]

    assert len(foreign) == 1 and "not placed by gridbridge" in foreign[0].message


def test_foreign_orders_are_not_adopted_even_with_a_remark(tmp_path):
    venue = XtVenue(tmp_path)
    journal = tmp_path / "state" / JOURNAL_FILE
    write_journal(journal, "OPS7", snapshot=("OPS6",))  # operators' own ids, placed by an earlier executor
    broker = make_xt_broker(venue.folder, venue.clock, journal_path=str(journal), session_id_base=7_000_000)
    try:
        venue.quote(CODE, 1.099, 1.100)
        broker.start()
        for n, remark in enumerate(("manual buy", "hedge-1", "OPS7", "OPS6", "G2890BFTV09310", "M0123456789abcde")):
            place_manual(venue.folder, remark, session=424242 + n)

        by_coid = {u.client_order_id: u for u in broker.query_orders()}
        events = settle(broker)

        ours = {"OPS7", "OPS6", "G2890BFTV09310", "M0123456789abcde"}
        assert ours <= set(by_coid), "our orders from an earlier process are adopted by remark"
        foreign = {c: u for c, u in by_coid.items() if c.startswith("xt-")}
        assert len(foreign) == 2 and all("not placed by gridbridge" in u.message for u in foreign.values())
        assert not {"manual buy", "hedge-1"} & set(by_coid)
        assert not {"manual buy", "hedge-1"} & set(broker.tracks)
        assert not {"manual buy", "hedge-1"} & {e.client_order_id for e in events if isinstance(e, OrderUpdate)}
        assert broker.place_limit_order(buy("hedge-1")).status is PlaceStatus.SENT, "a foreign remark blocks nothing"
        mine = ups(settle(broker), "hedge-1")[-1]
        assert (mine.state, mine.shares, mine.filled_value_fen) == (OrderState.FILLED, 1000, 110_000)
        assert {u.client_order_id for u in broker.query_orders()} >= {"hedge-1"} | set(foreign)
    finally:
        broker.stop()
        venue.close()


def test_our_id_format_matches_what_the_node_and_the_cli_make():
    import re

    from mac.grid.core import make_client_order_id
    from windows.brokers.xt_orders import is_our_id_format

    node = make_client_order_id("2890", "BUY", 1_767_583_860_000, 37)
    cli = "M" + "0123456789abcdef"[:15]

    assert is_our_id_format(node) and is_our_id_format(cli)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,24}", node)
    assert not any(is_our_id_format(r) for r in ("", "manual", "G2890", "M123", "xt-5", "Mzzzzzzzzzzzzzzz", "G2890bftv09310"))


# -------------------------------------------------------------------------------- counter rules (fake)


@pytest.mark.parametrize(("side", "shares", "price", "when", "words"), [
    ("BUY", 1000, "1.1005", None, "tick"),
    ("SELL", 1000, "1.0991", None, "tick"),
    ("BUY", 150, "1.101", None, "multiple of 100"),
    ("BUY", 1000, "1.211", None, "limits"),
    ("SELL", 1000, "0.989", None, "limits"),
    ("BUY", 1000, "1.101", SESSION_TIME.replace(hour=12, minute=0), "hours"),
    ("BUY", 1000, "1.101", SESSION_TIME.replace(hour=9, minute=10), "hours"),
    ("BUY", 1000, "1.101", SESSION_TIME.replace(hour=15, minute=0), "hours"),
    ("BUY", 1000, "1.101", SESSION_TIME + timedelta(days=5), "hours"),  # a Saturday
])
def test_the_fake_counter_refuses_what_a_real_counter_refuses(venue, side, shares, price, when, words):
    if when is not None:
        venue.quote(CODE, 1.099, 1.100, when)
    cash = venue.broker.query_asset().cash

    outcome = venue.broker.place_limit_order(OrderRequest("X1", CODE, side, shares, Decimal(price)))
    final = ups(venue.events(), "X1")[-1]

    assert outcome.status is PlaceStatus.SENT, "the counter answers asynchronously"
    assert final.state is OrderState.REJECTED and words in final.message, final
    assert venue.terminal.orders_by_remark()["X1"][-1]["status"] == 57
    assert venue.terminal.trades() == [] and venue.broker.query_asset().cash == cash


def test_the_fake_counter_takes_limit_prices_rounded_half_up_and_odd_lot_sells(venue):
    venue.terminal.set_touch(CODE, 1.005, 1.006, venue.clock.now(), last=1.006, prev_close=1.006)

    placed = {
        "L1": venue.broker.place_limit_order(buy("L1", price="1.107")),  # 1.1066 -> 1.107
        "L2": venue.broker.place_limit_order(buy("L2", price="1.108")),
        "L3": venue.broker.place_limit_order(OrderRequest("L3", CODE, "SELL", 1000, Decimal("0.905"))),  # 0.9054
        "L4": venue.broker.place_limit_order(OrderRequest("L4", CODE, "SELL", 1000, Decimal("0.904"))),
        "L5": venue.broker.place_limit_order(OrderRequest("L5", CODE, "SELL", 150, Decimal("1.005"))),
        "L6": venue.broker.place_limit_order(buy("L6", price="1.006")),  # the opening call auction takes orders
    }
    venue.events()
    status = {r: o[-1]["status"] for r, o in venue.terminal.orders_by_remark().items()}

    assert all(o.status is PlaceStatus.SENT for o in placed.values())
    assert status["L2"] == status["L4"] == 57
    assert 57 not in (status["L1"], status["L3"], status["L5"], status["L6"])
    venue.quote(CODE, 1.005, 1.006, SESSION_TIME.replace(hour=9, minute=20))
    venue.broker.place_limit_order(buy("L7", price="1.006"))
    venue.events()
    assert venue.terminal.orders_by_remark()["L7"][-1]["status"] != 57


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
    from windows.brokers.xt_callbacks import ORDER_FIELDS as _ORDER_FIELDS
    from windows.brokers.xt_callbacks import copy_fields as _copy

    venue.broker._absorb_order(_copy(row, _ORDER_FIELDS))  # the order push came, its trade push did not
    held = ups(venue.broker.drain_events(), "G1")
    venue.clock.advance(10)
    fetched = ups(venue.broker.drain_events(), "G1")

    assert held[-1].state is OrderState.ACK, "not FILLED before the value is exact"
    assert (fetched[-1].state, fetched[-1].filled_value_fen) == (OrderState.FILLED, 110_000)


# ------------------------------------------------------------------------------- -1 and disconnects


def test_a_blank_async_response_is_no_answer_the_order_is_looked_up(venue):
    venue.terminal.set_faults(blank_response_next=1)  # order_id 0, no message, nothing at the counter
    outcome = venue.broker.place_limit_order(buy("Z1"))
    assert outcome.status is PlaceStatus.SENT
    events = []
    for _ in range(LOST_AFTER_LOOKUPS):
        assert ups(events, "Z1") == []
        venue.clock.advance(10)
        events += venue.events()

    (final,) = ups(events, "Z1")
    assert final.state is OrderState.REJECTED and "not at the venue" in final.message
    assert "Z1" not in venue.terminal.orders_by_remark()


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


# ------------------------------------------------------------------------------------ a hung terminal


@pytest.fixture
def hung_venue(tmp_path):
    v = XtVenue(tmp_path)
    v.broker.stop()
    v.broker = make_xt_broker(v.folder, v.clock, call_timeout_s=2.0, session_id_base=7_000_000)
    v.broker.start()
    v.quote(CODE, 1.099, 1.100)
    yield v
    v.terminal.release()  # hung calls end, so no thread is left waiting
    v.close()


def test_bounded_calls_count_the_hung_ones_and_start_no_more_past_the_limit():
    from windows.brokers.xt_session import BoundedCaller, TerminalTimeout, TerminalUnavailable

    frozen = threading.Event()
    caller = BoundedCaller(0.05, max_hung=1)
    with pytest.raises(TerminalTimeout, match="did not answer q"):
        caller("q", frozen.wait)  # never returns before the test sets it
    started = []
    with pytest.raises(TerminalUnavailable, match="not called"):
        caller("q", lambda: started.append(1))
    assert started == [] and caller.hung == 1

    frozen.set()  # the terminal answers the hung call, late
    assert wait_for(lambda: caller.hung == 0)
    caller.timeout_s = 30.0  # a safety net only: the call returns at once
    assert caller("q", lambda: 7) == 7
    with pytest.raises(ValueError):
        caller("q", lambda: int("x"))  # the call's own error reaches the caller


def test_the_adapter_gives_the_terminal_its_call_timeout(hung_venue):
    assert hung_venue.broker.conn.trader.timeout == 2000  # ms, through XtQuantTrader.set_timeout


def test_a_hung_query_is_unknown_drops_trade_health_and_recovers_when_the_terminal_answers(hung_venue):
    venue = hung_venue
    venue.terminal.hang("query_stock_orders", "query_stock_trades", "query_stock_positions", "query_stock_asset")

    assert finishes(venue.broker.query_orders) is None, "a query with no answer is unknown"
    lost = [e for e in venue.broker.drain_events() if isinstance(e, ConnectionEvent)]
    assert [e.connected for e in lost] == [False] and "did not answer" in lost[0].message
    assert finishes(venue.broker.query_asset) is None  # no further call waits on a dead terminal
    venue.clock.advance(1.0)
    assert finishes(venue.broker.drain_events) == [] or not venue.broker.connected  # reconcile hangs: still down
    assert not venue.broker.connected

    venue.terminal.release()
    venue.clock.advance(2.0)
    back = [e for e in finishes(venue.broker.drain_events) if isinstance(e, ConnectionEvent)]

    assert [e.connected for e in back] == [True]
    assert venue.broker.query_asset() is not None


def test_a_hung_order_call_is_unknown_and_the_late_order_is_found_not_resent(hung_venue):
    venue = hung_venue
    venue.terminal.hang("order_stock_async")

    outcome = finishes(venue.broker.place_limit_order, buy("H1"))

    assert outcome.status is PlaceStatus.UNKNOWN and "did not answer" in outcome.message
    assert any(isinstance(e, ConnectionEvent) and not e.connected for e in venue.broker.drain_events())
    refused = finishes(venue.broker.place_limit_order, buy("H2"))
    assert refused.status is PlaceStatus.REJECTED, "nothing is sent to a terminal that does not answer"
    venue.terminal.release()  # the hung request reaches the terminal late: H1 goes live
    assert wait_for(lambda: "H1" in venue.terminal.orders_by_remark())
    venue.clock.advance(1.0)
    events = finishes(venue.broker.drain_events)
    events += venue.events()

    assert ups(events, "H1")[-1].state is OrderState.FILLED
    assert len(venue.terminal.orders_by_remark()["H1"]) == 1 and "H2" not in venue.terminal.orders_by_remark()


def test_the_producer_sources_never_freeze_on_a_hung_terminal(tmp_path):
    from shared_schema.clock import ManualClock
    from tests.kit.fake_xtquant import xtdata
    from windows.brokers.xtquant_broker import XtBrokerSettings
    from windows.xt_sources import XtDataQuoteSource, XtTraderAccountSource

    synth = {"codes": [CODE], "days": 1, "seed": 3, "start": "2026-01-05"}
    terminal = FakeTerminal.create(tmp_path / "qmt", positions={CODE: 5000}, account_id=ACCOUNT, synth=synth)
    xtdata.set_terminal_dir(terminal.folder)
    clock = ManualClock(SESSION_TIME)
    quotes = XtDataQuoteSource(xtdata, [CODE], bars_count=3, call_timeout_s=2.0)
    account = XtTraderAccountSource(load_xt_modules(FAKE_MODULE), XtBrokerSettings(
        str(terminal.folder), ACCOUNT, reconnect_backoff_s=(1.0,), call_timeout_s=2.0), clock)
    account.start()
    try:
        terminal.replay_step()
        before = quotes.next_quotes()
        assert account.read_account()[2]
        terminal.replay_step()
        terminal.hang("*")

        assert finishes(quotes.next_quotes) == before, "the last quotes, with their old times"
        assert finishes(account.read_account)[2] is False

        terminal.release()
        clock.advance(1.0)
        assert finishes(account.read_account)[2] is True
        assert quotes.next_quotes()[CODE].quote_time > before[CODE].quote_time
    finally:
        terminal.release()
        account.stop()
        xtdata.set_terminal_dir(None)


# ------------------------------------------------------------------------------ through the executor


class XtHarness(Harness):
    """The in-process executor harness with XtQuantBroker on the fake terminal instead of paper."""

    def __init__(self, root: Path, terminal_kwargs: dict | None = None, config: GridbridgeConfig | None = None,
                 broker_settings: dict | None = None):
        self.folder = Path(root) / "qmt"
        options = {"cash": CASH, "positions": BASE_POSITIONS, "account_id": ACCOUNT, **(terminal_kwargs or {})}
        self.terminal = FakeTerminal.create(self.folder, **options)
        self.broker_settings = broker_settings or {}
        super().__init__(root, config)

    def make_executor(self) -> Executor:
        broker = make_xt_broker(self.folder, self.clock, journal_path=str(Path(self.state) / JOURNAL_FILE),
                                **self.broker_settings)
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
    assert xh.pool().used_512890 * 100 == xh.terminal.cash_out_fen("S1")


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
    xh.settle_turn()  # the audit is flushed at the end of a turn
    assert any(e.code is AuditCode.EXEC_HEALTH_DEGRADED and "on_disconnected" in e.cause
               for e in read_events(xh.state / "audit.jsonl"))
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
    assert xh.pool().used_512890 * 100 == xh.terminal.cash_out_fen("D1") + xh.terminal.cash_out_fen("D3")
    assert len(xh.terminal.sessions()) == 2


@pytest.mark.parametrize("hung", [("order_stock_async",), ("*",)], ids=["send-hangs", "everything-hangs"])
def test_a_hung_terminal_never_stops_the_executor_loop_goes_reduce_only_audited_and_recovers(tmp_path, hung):
    h = XtHarness(tmp_path, broker_settings={"call_timeout_s": 2.0})
    try:
        h.terminal.hang(*hung)  # MiniQMT frozen: these calls never answer
        first = h.send(signal_id="H1", price="1.101")

        finishes(h.settle_turn, 2)  # a call hangs, times out, and the loop goes on

        assert not h.executor.connected
        assert h.pool().risk_state == "REDUCE_ONLY"
        degraded = [e for e in read_events(h.state / "audit.jsonl")
                    if e.code is AuditCode.EXEC_HEALTH_DEGRADED and e.cause.startswith("trade health lost")]
        assert len(degraded) == 1 and "did not answer" in degraded[0].cause and degraded[0].data["trade_ok"] is False
        refused = h.send(signal_id="H2", price="1.101")
        finishes(h.settle_turn, 2)
        assert (h.result(refused).status, h.result(refused).reason) == (ResultStatus.REJECTED, Reason.RISK_STATE)

        h.terminal.release()  # the terminal answers again; a hung send reaches it late
        h.clock.advance(1.0)
        assert h.turn_until(lambda: h.executor.connected)
        assert h.turn_until(lambda: h.pool().risk_state != "REDUCE_ONLY")
        after = h.send(signal_id="H3", price="1.101")
        assert h.turn_until(lambda: h.result(after).status is ResultStatus.FILLED)

        venue = h.terminal.orders_by_remark()
        assert "H2" not in venue and len(venue["H3"]) == 1
        if hung == ("order_stock_async",):  # H1 was in flight: unknown, then found; never sent twice
            h.clock.advance(10.0)
            assert h.turn_until(lambda: h.result(first).status is ResultStatus.FILLED), h.result(first)
            assert len(h.terminal.orders_by_remark()["H1"]) == 1
            assert h.terminal.snapshot()["counters"]["order_stock_async"] == 2
    finally:
        h.terminal.release()
        h.executor.stop()
