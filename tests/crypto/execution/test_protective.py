from __future__ import annotations

from decimal import Decimal

from core.events import AuditCode
from core.execution.protective import BracketState
from core.oms.order_fsm import OrderState
from core.risk.state import RiskState
from crypto.execution.decisions import OrderPlan
from tests.crypto.execution.memvenue import MemVenue
from tests.crypto.execution.test_engine import BTC, codes, make, target

D = Decimal


def live(venue: MemVenue, kind: str) -> list:
    return [o for o in venue.open_orders(BTC) if (o.type == "stop_market") == (kind == "sl")]


def test_stop_first_then_take_profit_both_reduce_only(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (sl,) = live(venue, "sl")
    (tp,) = live(venue, "tp")
    assert sl.reduce_only and tp.reduce_only and sl.qty == tp.qty == D("0.5")
    assert sl.trigger_price < D(50000) < tp.price  # type: ignore[operator]
    assert int(sl.venue_order_id) < int(tp.venue_order_id)  # the stop went first
    assert eng.brackets.brackets[BTC].state is BracketState.ARMED
    assert codes(tmp_path).count(AuditCode.EXEC_PROTECTIVE_ATTACHED.value) == 2
    eng.close()


def test_take_profit_fill_cancels_the_stop(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (tp,) = live(venue, "tp")
    venue.fill_resting(tp.client_order_id, D("0.5"))
    eng.clock.advance(1)
    eng.cycle(target("0"))  # the strategy is flat too: nothing re-opens
    assert eng.book.position(BTC) == 0 and not venue.open_orders(BTC)
    assert AuditCode.EXEC_OCO_CANCEL.value in codes(tmp_path)
    eng.close()


def test_stop_refused_goes_reduce_only_and_blocks_new_exposure(tmp_path):
    venue = MemVenue()
    venue.refuse = {"stop_market"}
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    assert eng.risk.state is RiskState.REDUCE_ONLY
    assert AuditCode.EXEC_PROTECTIVE_ORDER_MISSING.value in codes(tmp_path)
    eng.clock.advance(1)
    eng.cycle(target("0.8"))
    assert eng.book.position(BTC) == D("0.5")  # nothing added without a stop
    eng.close()


def test_take_profit_refused_is_only_audited(tmp_path):
    venue = MemVenue()
    venue.refuse = {"tp"}
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    assert AuditCode.EXEC_TP_ATTACH_FAILED.value in codes(tmp_path)
    assert eng.risk.state is RiskState.NORMAL
    assert eng.brackets.brackets[BTC].state is BracketState.SL_ONLY
    assert [o.state for o in eng.book.live(BTC)] == [OrderState.ACK]
    eng.close()


def test_restart_adopts_the_live_stop_and_take_profit_never_cancels_them(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (sl,) = live(venue, "sl")
    (tp,) = live(venue, "tp")
    placed = venue.place_calls
    # no close(): the process died (its lock goes with it in a real kill; here the lock file is let go)
    assert eng._lock is not None
    eng._lock.release()
    again = make(tmp_path, venue, protective=True)
    again.start()
    b = again.brackets.brackets[BTC]
    assert b.state is BracketState.ARMED and (b.sl_client_id, b.tp_client_id) == (sl.client_order_id, tp.client_order_id)
    assert [o.client_order_id for o in live(venue, "sl")] == [sl.client_order_id]  # never cancelled
    again.clock.advance(1)
    again.cycle(target("0.5"))
    assert venue.place_calls == placed  # nothing re-attached, nothing re-sent
    (tp_live,) = live(venue, "tp")
    venue.fill_resting(tp_live.client_order_id, D("0.5"))  # OCO still works on the adopted pair
    again.clock.advance(1)
    again.cycle(target("0"))
    assert not venue.open_orders(BTC) and again.book.position(BTC) == 0
    again.close()


def test_restart_with_a_missing_take_profit_keeps_the_stop_and_sends_a_take_profit(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (sl,) = live(venue, "sl")
    (tp,) = live(venue, "tp")
    venue.cancel_order(BTC, tp.client_order_id)  # someone cancelled the take-profit while we were down
    assert eng._lock is not None
    eng._lock.release()
    again = make(tmp_path, venue, protective=True)
    again.start()
    b = again.brackets.brackets[BTC]
    assert b.sl_client_id == sl.client_order_id and b.is_protected
    assert [o.client_order_id for o in live(venue, "sl")] == [sl.client_order_id]
    (new_tp,) = live(venue, "tp")
    assert new_tp.client_order_id != tp.client_order_id and new_tp.qty == D("0.5")
    again.close()


def test_restart_keeps_one_stop_and_cancels_a_second_one(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (sl,) = live(venue, "sl")
    # a crash between attaching a new stop and cancelling the old one left two stops for one position
    eng.place(OrderPlan(BTC, "sell", D("0.5"), "stop_market", None, True, "sl", False, trigger_price=D("40000")),
              intent_id="second-stop")
    assert len(live(venue, "sl")) == 2
    assert eng._lock is not None
    eng._lock.release()
    again = make(tmp_path, venue, protective=True)
    again.start()
    assert [o.client_order_id for o in live(venue, "sl")] == [sl.client_order_id]
    assert again.brackets.brackets[BTC].sl_client_id == sl.client_order_id
    again.close()
