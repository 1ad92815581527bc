"""Attacks on the engine (self-review families): one entry with an extreme field, a partial of anything,
growth. Each was a test first and failed before its fix, unless noted as a regression guard."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from core.audit import AuditWriter, read_log_events
from core.events import AuditCode, AuditEvent, Severity
from core.oms.order_fsm import OrderState
from crypto.execution import engine as engine_mod
from crypto.execution.engine import AUDIT_FILE, JOURNAL_FILE
from crypto.trend.strategy import TargetPosition
from tests.crypto.execution.memvenue import MemVenue
from tests.crypto.execution.test_engine import BTC, ETH, T0, make, target

D = Decimal


@pytest.mark.parametrize("bad", ["NaN", "sNaN", "Infinity", "1e30", "-1e30"])
def test_an_extreme_target_is_refused_once_and_the_other_symbol_is_served(tmp_path: Path, bad: str) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    for _ in range(2):
        eng.cycle({BTC: TargetPosition(BTC, D(bad)), ETH: TargetPosition(ETH, D("1"))})
        eng.clock.advance(1)
    assert eng.book.position(BTC) == 0 and eng.book.position(ETH) == D("1.00")
    assert all(o.symbol == ETH for o in venue.orders.values())  # before: NaN crashed the cycle, 1e30 was chased
    rejected = [e for e in read_log_events(tmp_path / AUDIT_FILE) if e.code is AuditCode.SIGNAL_REJECTED]
    assert len(rejected) == 1 and rejected[0].symbol == BTC  # recorded once, not every cycle
    eng.close()


def test_a_refused_target_keeps_the_previous_one_and_minus_zero_is_flat(tmp_path: Path) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.2"))
    eng.clock.advance(1)
    eng.cycle({BTC: TargetPosition(BTC, D("0.3"), stop_price=D("-1"))})  # a stop under 0: refused whole
    assert eng.targets[BTC].qty == D("0.2") and eng.book.position(BTC) == D("0.2")
    eng.cycle({BTC: TargetPosition(BTC, 0.3)})  # type: ignore[arg-type]  # a float where a Decimal goes
    eng.cycle({"ETH": TargetPosition(BTC, D("0.5"))})  # a key that is not its symbol
    assert eng.targets[BTC].qty == D("0.2")
    eng.clock.advance(1)
    eng.cycle(target("-0"))
    assert eng.book.position(BTC) == 0 and venue.positions_[BTC].qty == 0
    reasons = [e.data["reason"] for e in read_log_events(tmp_path / AUDIT_FILE) if e.code is AuditCode.SIGNAL_REJECTED]
    assert reasons == ["STOP_NOT_A_PRICE", "TARGET_NOT_A_NUMBER", "KEY_NOT_SYMBOL"]
    eng.close()


def test_partial_fills_of_a_split_order_keep_the_books_exact(tmp_path: Path) -> None:
    venue = MemVenue(depth=D("0.7"))  # a thin book: the order is split, each child fills in part
    eng = make(tmp_path, venue, max_depth_share=D("0.5"), limit_offset_bps=D("0"))
    eng.start()
    for _ in range(12):
        eng.cycle(target("1.3"))
        for o in venue.open_orders(BTC):
            venue.fill_resting(o.client_order_id, D("0.1"))  # the market takes part of each resting child
        eng.clock.advance(11_000)  # past max_order_age: the rest is cancelled and re-posted
    eng.cycle(target("1.3"))
    assert eng.book.position(BTC) == venue.positions_[BTC].qty  # nothing invented, nothing lost
    live = [o for o in eng.book.live(BTC)]
    assert len(live) <= 1  # never two working orders
    filled = sum((o.signed_filled for o in eng.book.orders.values() if o.symbol == BTC), D(0))
    assert filled == eng.book.position(BTC)
    eng.close()


def test_a_partial_of_a_reduce_only_close_leaves_the_rest_open_with_its_order(tmp_path: Path) -> None:
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.5"), D("50000"))
    eng = make(tmp_path, venue, limit_offset_bps=D("5"))  # passive: the close rests
    eng.start()
    eng.cycle(target("0"))
    (order,) = eng.book.live(BTC)
    assert order.reduce_only and order.side == "sell" and order.qty == D("0.5")
    venue.fill_resting(order.client_order_id, D("0.2"))
    eng.clock.advance(1)
    eng.cycle(target("0"))
    assert eng.book.position(BTC) == venue.positions_[BTC].qty == D("0.3")
    (still,) = eng.book.live(BTC)  # the same order works the rest: no second close on top of it
    assert still.client_order_id == order.client_order_id and still.remaining == D("0.3")
    assert still.state is OrderState.PARTIAL
    eng.close()


def test_a_partial_stop_fill_leaves_the_rest_protected(tmp_path: Path) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue, protective=True)
    eng.start()
    eng.cycle(target("0.5"))
    (sl,) = [o for o in venue.open_orders(BTC) if o.type == "stop_market"]
    venue.fill_resting(sl.client_order_id, D("0.2"))  # the stop triggered, the book gave 0.2
    for _ in range(3):
        eng.clock.advance(1)
        eng.cycle(target("0.3"))  # the strategy follows the stop-out: no re-entry
    assert eng.book.position(BTC) == venue.positions_[BTC].qty == D("0.3")
    stops = [o for o in venue.open_orders(BTC) if o.type == "stop_market"]
    tps = [o for o in venue.open_orders(BTC) if o.type == "limit" and o.reduce_only]
    assert sum((o.remaining for o in stops), D(0)) == D("0.3")  # exactly the rest is covered, once
    assert sum((o.remaining for o in tps), D(0)) <= D("0.3")
    eng.close()


def _grow(tmp: Path, records: int, events: int) -> None:
    """A journal of ``records`` ended orders (a build that never compacted) and ``events`` audit events."""
    with open(tmp / JOURNAL_FILE, "w") as f:
        for i in range(records // 2):
            coid = f"gbt{i:021d}"
            f.write(json.dumps({"k": "intent", "coid": coid, "iid": f"{BTC}|target|{i}", "sym": BTC, "side": "buy",
                                "qty": "0.01", "type": "limit", "purpose": "target", "px": "50000", "trig": None,
                                "ro": False, "po": False, "t": 1700000000000 + i, "n": i}) + "\n")
            f.write(json.dumps({"k": "update", "coid": coid, "state": "CANCELLED", "filled": "0", "avg": None,
                                "fee": "0", "voi": str(i), "t": 1700000000000 + i}) + "\n")
    w = AuditWriter(tmp / AUDIT_FILE, fsync=False)
    ev = AuditEvent(T0, AuditCode.EQUITY_SNAPSHOT, Severity.INFO, "cycle", None,
                    {"equity": "100000", "peak_equity": "100000", "liq_distance_p95": None, "exposure": "0",
                     "risk_state": "NORMAL"})
    w.extend((ev,) * events)
    w.close()


@pytest.mark.slow
def test_100k_journal_records_and_100k_audit_events_restart_reads_only_the_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _grow(tmp_path, 100_000, 100_000)
    eng = make(tmp_path)
    eng.start()  # the first start replays it all once, then folds the journal (before: never at start)
    assert len(eng.book.orders) == 0  # ended orders are not kept in memory
    eng.close()
    assert (tmp_path / JOURNAL_FILE).stat().st_size < 10_000  # bounded: one snapshot record and a short tail

    full_reads: list[Path] = []
    real = engine_mod.read_log_events

    def spy(path: Path, *a: object, **k: object):  # type: ignore[no-untyped-def]
        full_reads.append(path)
        return real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_mod, "read_log_events", spy)
    eng = make(tmp_path)
    started = time.perf_counter()
    eng.start()
    seconds = time.perf_counter() - started
    assert full_reads == []  # the risk state came from the snapshot plus the audit tail (before: 100k events)
    assert eng.journal.records_since_snapshot < 100
    print(f"restart after 100k records: {seconds:.3f} s")
    eng.close()


def test_a_long_run_keeps_the_journal_and_memory_bounded(tmp_path: Path) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue, compact_after_records=100)
    eng.start()
    for i in range(120):  # 120 cycles, each an order: ~240 records, two compactions at least
        eng.cycle(target("0.1" if i % 2 == 0 else "0"))
        eng.clock.advance(1)
    assert eng.journal.compactions >= 2
    assert len(eng.book.orders) < 60  # 120 orders made; ended ones leave memory at each compaction
    eng.close()
    again = make(tmp_path, venue, compact_after_records=100)
    again.start()
    assert again.book.position(BTC) == venue.positions_.get(BTC, type("P", (), {"qty": D(0)})).qty
    assert again.last_reconcile is not None and again.last_reconcile.clean
    led = again.book.ledger.position(BTC)  # the ledger came through the compactions whole, booked once
    assert led.qty == again.book.position(BTC)
    assert led.fees == sum((f.fee for f in venue.trades), D(0))
    assert len(again.book.ledger.booked) <= len(venue.trades)
    again.close()


def test_orders_folded_from_one_report_twice_are_counted_once(tmp_path: Path) -> None:
    """Regression guard: a repeated venue report changes nothing."""
    venue = MemVenue()
    eng = make(tmp_path, venue, limit_offset_bps=D("5"))
    eng.start()
    eng.cycle(target("0.3"))
    (order,) = eng.book.live(BTC)
    venue.fill_resting(order.client_order_id, D("0.1"))
    report = venue.fetch_order(BTC, order.client_order_id)
    assert report is not None
    eng._fold(eng.book.orders[order.client_order_id], report)
    eng._fold(eng.book.orders[order.client_order_id], report)
    assert eng.book.position(BTC) == D("0.1") and eng.book.orders[order.client_order_id].state is OrderState.PARTIAL
    eng.close()


class _KeysRefused(MemVenue):
    """Reads work (a read-only key), trading calls are refused as AUTH."""

    def __init__(self, refuse_at_start: bool) -> None:
        super().__init__()
        self.refuse_at_start = refuse_at_start
        self.refuse_sends = False

    def set_leverage(self, symbol: str, leverage: Decimal, margin_mode: str = "isolated") -> None:
        if self.refuse_at_start:
            from core.oms.reasons import VenueReason
            from crypto.venue.types import VenueError

            raise VenueError(VenueReason.AUTH, "Invalid Sign", "50113")
        super().set_leverage(symbol, leverage, margin_mode)

    def place_order(self, r):  # type: ignore[no-untyped-def]
        if self.refuse_sends:
            from core.oms.reasons import VenueReason
            from crypto.venue.types import VenueError

            self.place_calls += 1
            raise VenueError(VenueReason.AUTH, "API key expired", "50101")
        return super().place_order(r)


def test_keys_that_cannot_trade_fail_the_start_loudly(tmp_path: Path) -> None:
    from crypto.venue.types import VenueError

    eng = make(tmp_path, _KeysRefused(refuse_at_start=True))
    with pytest.raises(VenueError, match="AUTH"):
        eng.start()  # before: noted and carried on; every order then refused, cycle after cycle
    eng.close()


def test_keys_revoked_mid_run_latch_reduce_only_instead_of_a_refusal_every_cycle(tmp_path: Path) -> None:
    from core.risk.state import RiskState

    venue = _KeysRefused(refuse_at_start=False)
    eng = make(tmp_path, venue)
    eng.start()
    venue.refuse_sends = True
    eng.cycle(target("0.2"))
    assert eng.risk.state is RiskState.REDUCE_ONLY
    calls = venue.place_calls
    for _ in range(5):
        eng.clock.advance(1)
        eng.cycle(target("0.3"))
    assert venue.place_calls == calls  # no opening order while the keys are refused
    eng.close()


def test_a_fill_stamped_2099_is_booked_but_never_moves_the_watermark(tmp_path: Path) -> None:
    from dataclasses import replace as dc_replace

    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.1"))
    venue.trades[-1] = dc_replace(venue.trades[-1], ts_ms=4_070_908_800_000)  # the venue stamped it 2099
    eng.book.ledger = type(eng.book.ledger)()  # as if not booked yet: the next read books the odd one
    eng.book.ledger_since.clear()
    eng.ledger_fills_read.clear()
    eng.clock.advance(1)
    eng.cycle(target("0.1"))
    venue.ms = 5_000
    eng.clock.advance(1)
    eng.cycle(target("0.3"))  # a normal fill afterwards must still be read and booked
    eng.clock.advance(1)
    eng.cycle(target("0.3"))
    assert eng.book.ledger.position(BTC).qty == venue.positions_[BTC].qty == D("0.3")
    assert max(eng.book.ledger_since.values()) < 4_070_908_800_000
    eng.journal.compact(eng.book.snapshot_record(eng.now_ms()))  # a compaction keeps the outlier's key:
    eng.book.apply(eng.book.snapshot_record(eng.now_ms()))  # every later read meets it again
    eng.ledger_fills_read.clear()
    eng.clock.advance(1)
    eng.cycle(target("0.3"))
    assert eng.book.ledger.position(BTC).qty == D("0.3")  # not booked a second time
    outliers = [e for e in read_log_events(tmp_path / AUDIT_FILE) if e.code is AuditCode.EXEC_VENUE_CLOCK_OUTLIER]
    assert len(outliers) == 1
    eng.close()


def test_one_venue_server_time_of_2099_at_adoption_is_outvoted(tmp_path: Path) -> None:
    class OneOddAnswer(MemVenue):
        answers = [4_070_908_800_000]

        def now_ms(self) -> int:
            return self.answers.pop() if self.answers else self.ms

    venue = OneOddAnswer()
    venue.ms = 7_000
    eng = make(tmp_path, venue)
    eng.start()
    assert eng.book.ledger_floor[BTC] == 7_000  # before: the one answer was the floor, every fill skipped
    assert [e.code for e in read_log_events(tmp_path / AUDIT_FILE)].count(AuditCode.EXEC_VENUE_CLOCK_OUTLIER) == 1
    eng.close()


def test_status_file_that_cannot_be_written_alerts_once_clears_once_and_trading_goes_on(tmp_path: Path) -> None:
    from crypto.execution.engine import STATUS_FILE

    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    (tmp_path / STATUS_FILE).unlink()
    (tmp_path / STATUS_FILE).mkdir()  # a folder where the status file goes (or a full disk)
    for _ in range(3):
        eng.cycle(target("0.1"))  # before: IsADirectoryError out of every cycle
        eng.clock.advance(1)
    assert eng.book.position(BTC) == D("0.1")
    (tmp_path / STATUS_FILE).rmdir()
    eng.cycle()
    assert (tmp_path / STATUS_FILE).is_file()
    got = [e.code for e in read_log_events(tmp_path / AUDIT_FILE)
           if e.code in (AuditCode.EXEC_STATUS_WRITE_FAILED, AuditCode.EXEC_STATUS_WRITE_RECOVERED)]
    assert got == [AuditCode.EXEC_STATUS_WRITE_FAILED, AuditCode.EXEC_STATUS_WRITE_RECOVERED]
    eng.close()


def test_a_second_engine_from_another_state_folder_refuses_instead_of_cancelling_the_first(tmp_path: Path) -> None:
    from crypto.execution.engine import AnotherEngine

    venue = MemVenue()
    first = make(tmp_path / "a", venue, limit_offset_bps=D("5"))  # a resting order stays live
    first.start()
    first.cycle(target("0.2"))
    (live,) = venue.open_orders(BTC)
    second = make(tmp_path / "b", venue)  # the same account and prefix from another folder
    with pytest.raises(AnotherEngine, match="another engine"):
        second.start()  # before: it cancelled the first engine's order as an "orphan"
    second.close()
    assert venue._by_coid(live.client_order_id).status == "open"  # type: ignore[union-attr]
    # found while running: nothing cancelled, new orders halted until an operator's RESUME
    venue.mids[BTC] = D("50000")
    foreign = first.book.seq.prefix + "foreign0000000000001"  # type: ignore[union-attr]
    from crypto.venue.types import OrderRequest

    venue.place_order(OrderRequest(BTC, "buy", D("0.01"), "limit", foreign, price=D("40000")))
    first.clock.advance(120_000)  # the timed reconciliation
    first.cycle(target("0.4"))
    assert first.kill.halted and venue._by_coid(foreign).status == "open"  # type: ignore[union-attr]
    first.close()
    cleaner = make(tmp_path / "c", venue, orphan_policy="cancel")  # close-all's policy: cancel them
    cleaner.start()
    assert venue._by_coid(foreign).status == "canceled"  # type: ignore[union-attr]
    cleaner.close()


def test_a_start_refused_by_the_venue_can_simply_be_retried(tmp_path: Path) -> None:
    """The venue answers "rate limit" during the start (the checklist's kill -9 child retries its start):
    the failed start lets go of the folder, the retry claims it again and rebuilds the same book."""
    from core.oms.reasons import VenueReason
    from crypto.venue.types import VenueError

    class BusyOnce(MemVenue):
        busy = 1

        def positions(self, symbols=None):  # type: ignore[no-untyped-def]
            if self.busy:
                self.busy -= 1
                raise VenueError(VenueReason.RATE_LIMIT, "Too Many Requests", "50011")
            return super().positions(symbols)

    venue = BusyOnce()
    venue._fill(BTC, "buy", D("0.2"), D("50000"))
    eng = make(tmp_path, venue)
    with pytest.raises(VenueError):
        eng.start()
    other = make(tmp_path, venue)  # the folder is free while nobody runs
    other.start()
    other.close()
    eng.start()  # the retry: claimed again, same book
    assert eng.book.position(BTC) == D("0.2") and eng.book.records == other.book.records  # nothing applied twice
    eng.close()


def test_a_linked_control_folder_or_no_secret_is_alerted_once_and_cleared_once(tmp_path: Path) -> None:
    import shutil

    from crypto.execution.config import ExecConfig
    from crypto.execution.engine import CryptoEngine
    from shared_schema.clock import ManualClock

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    eng = make(state)
    eng.start()
    eng.cycle()
    if (state / "control").exists():
        shutil.rmtree(state / "control")
    (state / "control").symlink_to(elsewhere)
    for _ in range(3):
        eng.cycle()  # before: the door's alert was dropped; commands were silently never read
        eng.clock.advance(1)
    (state / "control").unlink()
    eng.cycle()
    codes_ = [e.code for e in read_log_events(state / AUDIT_FILE)]
    assert codes_.count(AuditCode.EXEC_CONTROL_DOOR_ALERT) == 1 and codes_.count(AuditCode.EXEC_CONTROL_DOOR_CLEARED) == 1
    eng.close()
    bare = CryptoEngine(MemVenue(), tmp_path / "bare", ExecConfig(), clock=ManualClock(T0), fsync=False, environ={})
    bare.start()
    bare.cycle()
    bare.cycle()
    alerts = [e for e in read_log_events(tmp_path / "bare" / AUDIT_FILE) if e.code is AuditCode.EXEC_CONTROL_DOOR_ALERT]
    assert len(alerts) == 1 and "GRIDBRIDGE_CONTROL_SECRET" in alerts[0].cause
    bare.close()


@pytest.mark.parametrize(("knob", "value"), [
    ("hysteresis", "-1"), ("hysteresis", "1"), ("hysteresis", "NaN"), ("limit_offset_bps", "-20000"),
    ("limit_offset_bps", "Infinity"), ("stop_distance", "2"), ("take_profit_distance", "-0.1"),
    ("leverage", "1e30"), ("depth_bps", "-5"), ("symbols", ()), ("symbols", ("BTC/USDT:USDT",) * 2),
    ("settle_asset", ""), ("rate_jitter", float("nan")),
])
def test_an_extreme_config_knob_is_refused_by_name(knob: str, value: object) -> None:
    from pydantic import ValidationError

    from crypto.execution.config import ExecConfig

    with pytest.raises(ValidationError, match=knob):
        ExecConfig(**{knob: value})
