from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from core.audit import read_log_events
from core.control.commands import ControlAction, new_command, sign_command
from core.control.file_door import write_command_file
from core.events import AuditCode
from core.oms.order_fsm import OrderState
from core.risk.state import RiskState
from crypto.execution.config import ExecConfig
from crypto.execution.decisions import OrderPlan
from crypto.execution.engine import AUDIT_FILE, STATUS_FILE, CryptoEngine
from crypto.trend.strategy import TargetPosition
from shared_schema.clock import ManualClock
from tests.crypto.execution.memvenue import MemVenue

D = Decimal
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def make(tmp: Path, venue: MemVenue | None = None, clock: ManualClock | None = None, **cfg: object) -> CryptoEngine:
    base: dict[str, object] = {"limit_offset_bps": D("-5"), "min_interval_ms": 0, "max_order_age_ms": 10_000}
    base.update(cfg)
    return CryptoEngine(venue or MemVenue(), tmp, ExecConfig(**base), clock=clock or ManualClock(T0), fsync=False,
                        environ={"GRIDBRIDGE_CONTROL_SECRET": "s3cret"})


def codes(tmp: Path) -> list[str]:
    return [e.code.value for e in read_log_events(tmp / AUDIT_FILE)]


def target(qty: str, symbol: str = BTC) -> dict[str, TargetPosition]:
    return {symbol: TargetPosition(symbol, D(qty))}


def test_start_adopts_the_venue_and_reconciles_clean(tmp_path):
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.2"), D("50000"))
    eng = make(tmp_path, venue)
    report = eng.start()
    assert report.clean
    assert eng.book.position(BTC) == D("0.2")
    assert venue.leverage[BTC] == D(2) and venue.margin_mode[BTC] == "isolated"
    status = json.loads((tmp_path / STATUS_FILE).read_text())
    assert status["last_reconcile"]["clean"] is True and status["positions"][BTC] == "0.2"
    eng.close()


def test_approaches_target_with_a_crossing_limit_then_holds(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.5"))
    assert eng.book.position(BTC) == D("0.5")
    assert venue.positions_[BTC].qty == D("0.5")
    (only,) = venue.orders.values()
    assert only.type == "limit" and only.price is not None and only.price >= D("50000.1")
    eng.clock.advance(1)
    assert eng.cycle(target("0.51"))[BTC] == "HYSTERESIS"
    assert len(venue.orders) == 1
    assert AuditCode.ORDER_FILLED.value in codes(tmp_path)
    eng.close()


def test_partial_fill_updates_position_and_remaining(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("0"))
    eng.start()
    eng.cycle(target("0.5"))
    (order,) = eng.book.live(BTC)
    venue.fill_resting(order.client_order_id, D("0.2"))
    eng.clock.advance(1)
    eng.cycle()
    order = eng.book.orders[order.client_order_id]
    assert order.state is OrderState.PARTIAL and order.filled == D("0.2") and order.remaining == D("0.3")
    assert eng.book.position(BTC) == D("0.2")
    assert AuditCode.ORDER_PARTIAL.value in codes(tmp_path)
    eng.close()


def test_old_order_is_cancelled_then_reposted_never_two_live(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("0"))
    eng.start()
    eng.cycle(target("0.5"))
    first = eng.book.live(BTC)[0]
    eng.clock.advance(11)
    eng.cycle()  # too old: cancelled
    assert eng.book.orders[first.client_order_id].state is OrderState.CANCELLED
    eng.clock.advance(1)
    eng.cycle()
    live = eng.book.live(BTC)
    assert len(live) == 1 and live[0].client_order_id != first.client_order_id
    assert len(venue.open_orders(BTC)) == 1
    eng.close()


def test_lost_response_is_looked_up_and_gives_one_venue_order(tmp_path):
    venue = MemVenue()
    venue.lose_next = 1
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.5"))
    (coid,) = eng.book.orders
    assert venue.orders_with(coid) == 1
    assert eng.book.orders[coid].state is OrderState.FILLED
    assert eng.book.position(BTC) == D("0.5")
    assert AuditCode.ORDER_ERROR.value in codes(tmp_path)
    eng.close()


def test_one_intent_sent_five_times_is_one_venue_order(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("0"))
    eng.start()
    plan = OrderPlan(BTC, "buy", D("0.01"), "limit", D("40000"), False, "probe", True)
    orders = [eng.place(plan, intent_id="probe-1") for _ in range(5)]
    assert len({o.client_order_id for o in orders if o is not None}) == 1
    assert venue.place_calls == 1 and len(venue.orders) == 1
    eng.close()


def test_rate_limit_backs_off_downgrades_and_resends_the_same_id(tmp_path):
    venue = MemVenue()
    venue.rate_limit_next = 3
    clock = ManualClock(T0)
    eng = make(tmp_path, venue, clock)
    eng.start()
    eng.cycle(target("0.5"))
    (coid,) = eng.book.orders
    for _ in range(2):
        clock.advance(1)
        eng.cycle()
    assert eng.book.orders[coid].state is OrderState.NEW and eng.downgraded
    assert AuditCode.EXEC_RATE_LIMIT_BACKOFF.value in codes(tmp_path)
    assert eng.risk.state is RiskState.DEGRADED
    clock.advance(1)
    eng.cycle(target("0.5", ETH))
    assert venue.orders_with(coid) == 1 and eng.book.orders[coid].state is OrderState.FILLED
    assert len(eng.book.orders) == 1  # downgraded: the new opening target waits
    clock.advance(10)
    eng.cycle()
    assert not eng.downgraded and len(eng.book.orders) == 2
    eng.close()


def test_insufficient_margin_is_rejected_and_reduce_only(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    venue.funds_next = 1  # the margin went elsewhere since the last read (the target passed its vetting)
    eng.cycle(target("0.5"))
    assert eng.risk.state is RiskState.REDUCE_ONLY
    assert AuditCode.ORDER_REJECTED.value in codes(tmp_path)
    eng.clock.advance(1)
    eng.cycle(target("0.6"))
    assert len(venue.orders) == 0  # no opening order while reduce-only
    eng.close()


def test_off_lot_target_rounded_and_undersized_ignored(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.0137"))
    (order,) = venue.orders.values()
    assert order.qty == D("0.013")
    eng.clock.advance(1)
    eng.cycle(target("0.00005", ETH))
    assert AuditCode.EXEC_FILTER_IGNORE.value in codes(tmp_path)
    assert len(venue.orders) == 1
    eng.close()


def test_closing_dust_is_dust_locked(tmp_path):
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.0005"), D("50000"))
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0"))
    assert BTC in eng.risk.dust_locked
    assert AuditCode.EXEC_DUST_POSITION_STUCK.value in codes(tmp_path)
    eng.close()


def test_crash_between_send_and_record_then_restart_is_clean(tmp_path):
    venue = MemVenue()

    class Crash(BaseException):
        pass

    def hook(point: str, order: object) -> None:
        raise Crash

    eng = make(tmp_path, venue, limit_offset_bps=D("0"))
    eng.hook = hook
    eng.start()
    with pytest.raises(Crash):
        eng.cycle(target("0.5"))
    eng.close()
    (coid,) = eng.book.orders
    again = make(tmp_path, venue, limit_offset_bps=D("0"))
    report = again.start()
    assert report.clean and coid in report.resolved
    again.clock.advance(1)
    again.cycle(target("0.5"))
    assert venue.orders_with(coid) == 1 and len(venue.orders) == 1
    again.close()


def test_event_window_sets_1x_and_refuses_a_2x_open(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.set_event_window(True)
    assert venue.leverage[BTC] == D(1)
    eng.leverage[BTC] = D(2)  # as if the venue still held 2x
    eng.cycle(target("0.1"))
    assert len(venue.orders) == 0
    refused = [e for e in read_log_events(tmp_path / AUDIT_FILE) if e.code is AuditCode.RISK_ORDER_REFUSED]
    assert refused and refused[-1].data["reason"] == "RISK_LEVERAGE"
    eng.close()


def test_halt_command_cancels_and_stops(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("0"))
    eng.start()
    eng.cycle(target("0.5"))
    assert venue.open_orders()
    cmd = new_command(ControlAction.FORCE_HALT, "test", eng.clock.now())
    write_command_file(tmp_path, sign_command(cmd, b"s3cret"))
    eng.clock.advance(1)
    eng.cycle(target("0.5"))
    assert not venue.open_orders() and eng.kill.halted and eng.book.halted
    assert AuditCode.KILL_SWITCH_FORCE_HALT.value in codes(tmp_path)
    eng.close()


def test_close_all_flattens(tmp_path):
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.3"), D("50000"))
    eng = make(tmp_path, venue)
    eng.start()
    eng.close_all(wait=lambda: eng.clock.advance(1))
    assert venue.positions_[BTC].qty == 0 and eng.book.position(BTC) == 0
    eng.close()


def test_trend_loop_targets_on_closed_bars(tmp_path):
    from crypto.execution.loop import TrendLoop
    from crypto.trend.strategy import TrendConfig

    venue = MemVenue()
    clock = ManualClock(T0)
    eng = make(tmp_path, venue, clock)
    eng.start()
    loop = TrendLoop(eng, TrendConfig(fast_span=2, slow_span=4, breakout_window=3, atr_period=2, vol_window=3,
                                      periods_per_year=365 * 24 * 60), 60_000)
    for i in range(12):
        venue.mids[BTC] = D(50000) + D(100) * i + (D(30) if i % 2 else D(0))
        venue.mids[ETH] = D(3000) + D(10) * i
        clock.advance(60)
        loop.step()
    assert loop.bars_seen >= 10
    assert eng.book.position(BTC) > 0 and eng.book.position(ETH) > 0
    assert AuditCode.SIGNAL_ACCEPTED.value in codes(tmp_path)
    eng.close()


def test_a_filled_intent_is_never_sent_again(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    plan = OrderPlan(BTC, "buy", D("0.01"), "limit", D("60000"), False, "probe", True)  # crosses: fills
    first = eng.place(plan, intent_id="once")
    again = [eng.place(plan, intent_id="once") for _ in range(4)]
    assert first is not None and first.state is OrderState.FILLED
    assert all(a is not None and a.client_order_id == first.client_order_id for a in again)
    assert venue.place_calls == 1
    eng.close()


def test_compacted_journal_replays_to_the_same_book(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("0"), compact_after_records=100)
    eng.start()
    for i in range(40):
        eng.clock.advance(11)
        eng.cycle(target("0.5" if i % 2 else "0.3"))
    assert eng.journal.compactions >= 1
    while not eng.book.live(BTC):
        eng.clock.advance(1)
        eng.cycle()
    venue.fill_resting(eng.book.live(BTC)[0].client_order_id, D("0.1"))
    eng.clock.advance(1)
    eng.cycle()
    before = (dict(eng.book.positions), {c: o.state for c, o in eng.book.orders.items() if not o.is_terminal},
              eng.book.seq)
    eng.close()
    again = make(tmp_path, venue, limit_offset_bps=D("0"))
    report = again.start()
    after = (dict(again.book.positions), {c: o.state for c, o in again.book.orders.items() if not o.is_terminal},
             again.book.seq)
    assert before == after and report.clean
    again.close()


def test_liquidation_distance_under_8pct_cuts_the_nearest_position(tmp_path):
    venue = MemVenue()
    venue._fill(BTC, "buy", D("1"), D("50000"))  # 50,000 notional, liquidation 6 % away
    venue._fill(ETH, "buy", D("100"), D("3000"))  # 300,000 notional, 30 % away
    venue.liq = {BTC: D("47000"), ETH: D("2100")}
    eng = make(tmp_path, venue)
    eng.start()
    assert eng.risk.liq_blocked
    eng.clock.advance(1)
    eng.cycle()
    btc_left = venue.positions_[BTC].qty
    assert D(0) < btc_left < D(1) and venue.positions_[ETH].qty == D(100)  # only the near one, only in part
    assert AuditCode.RISK_FORCED_REDUCTION.value in codes(tmp_path)
    eng.clock.advance(1)
    eng.cycle()
    assert not eng.risk.liq_blocked  # back at 10 %: the P95 now sits on the far position
    assert AuditCode.RISK_LIQ_DISTANCE_RESTORED.value in codes(tmp_path)
    eng.close()


def test_cross_margin_found_blocks_opens(tmp_path):
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.1"), D("50000"))
    eng = make(tmp_path, venue)
    eng.start()
    venue.margin_mode[BTC] = "cross"  # someone switched the position to cross at the venue
    eng.clock.advance(1)
    eng.cycle(target("0.5"))
    assert eng.risk.state is RiskState.REDUCE_ONLY and venue.positions_[BTC].qty == D("0.1")
    assert AuditCode.RISK_CROSS_MARGIN_FOUND.value in codes(tmp_path)
    eng.close()


def test_force_reduce_command_closes_everything_even_against_the_target(tmp_path):
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.5"))
    assert venue.positions_[BTC].qty == D("0.5")
    cmd = new_command(ControlAction.FORCE_REDUCE, "test", eng.clock.now())
    write_command_file(tmp_path, sign_command(cmd, b"s3cret"))
    eng.clock.advance(1)
    eng.cycle(target("0.5"))
    assert venue.positions_[BTC].qty == 0 and eng.risk.state is RiskState.REDUCE_ONLY
    closing = [o for o in venue.orders.values() if o.side == "sell"]
    assert closing and all(o.reduce_only and o.type == "market" for o in closing)
    eng.close()


def test_cross_by_design_account_is_not_a_misconfigured_isolated_one(tmp_path):
    """A portfolio-margin account reports every position in cross: with margin_mode "cross" (and the risk
    kernel's isolated-margin guard off, as the config must say) opens go on; the same positions on an
    isolated account block opens; a contradictory config refuses to start."""
    from core.risk.config import RiskConfig

    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.1"), D("50000"))
    venue.margin_mode[BTC] = "cross"
    eng = CryptoEngine(venue, tmp_path / "pm", ExecConfig(margin_mode="cross", limit_offset_bps=D("-5"), min_interval_ms=0),
                       risk_cfg=RiskConfig(require_isolated_margin=False), clock=ManualClock(T0), fsync=False)
    eng.start()
    assert venue.margin_mode[BTC] == "cross"  # the engine asked for cross, never for isolated
    eng.cycle(target("0.3"))
    assert eng.risk.state is RiskState.NORMAL and venue.positions_[BTC].qty == D("0.3")
    assert eng.request_open(OrderPlan(BTC, "buy", D("0.01"), "market", None, False, "target", False), D(2)) is not None
    assert AuditCode.RISK_CROSS_MARGIN_FOUND.value not in codes(tmp_path / "pm")
    eng.close()
    iso = make(tmp_path / "iso", venue)
    iso.start()
    venue.margin_mode[BTC] = "cross"
    iso.cycle(target("0.5"))
    assert iso.risk.state is RiskState.REDUCE_ONLY
    iso.close()
    with pytest.raises(ValueError, match="require_isolated_margin"):
        CryptoEngine(venue, tmp_path / "x", ExecConfig(margin_mode="cross"))
    with pytest.raises(ValueError, match="require_isolated_margin"):
        CryptoEngine(venue, tmp_path / "y", ExecConfig(), risk_cfg=RiskConfig(require_isolated_margin=False))
