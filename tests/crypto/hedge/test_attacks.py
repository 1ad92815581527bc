"""Attacks on the hedge: execution reports with extreme fields (NaN, negative, a 35-digit quantity, more
than the order), hedge updates with garbage, a mark of NaN, the base-asset fee of a margin buy, two runs on
one state folder. Each bad entry is refused with a coded audit event and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import AuditCode
from crypto.hedge.book import HedgeBook, MarginReport, on_margin_report
from crypto.hedge.rules import HedgeFilters
from crypto.hedge.snapshot import dump_snapshot, restore_snapshot
from crypto.venue.types import VenueOrder

from .kit import make_runner

D = Decimal
WORKED = HedgeFilters(D("0.001"), D("0.001"), D("100"))
MARK = D("50000")


def open_book() -> HedgeBook:
    return HedgeBook("s1", "BTC/USDT:USDT", "open", "MT", "sell", WORKED)


BAD_FILLS = [D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity"), D("-0.001"),
             D("12345678901234567890123456789012345"), D("1e30"), D("1e-30")]


@pytest.mark.parametrize("filled", BAD_FILLS, ids=[str(x) for x in BAD_FILLS])
def test_a_report_with_an_extreme_fill_is_refused_and_changes_nothing(filled: Decimal) -> None:
    book = on_margin_report(open_book(), MarginReport("m1", D("0.5")), MARK, 0).book
    step = on_margin_report(book, MarginReport("m1", filled), MARK, 1)
    assert step.book == book and step.sends == ()
    [event] = step.events
    assert event.code == AuditCode.HEDGE_REPORT_REFUSED and event.data["reason"]
    # A new leg with garbage neither.
    step = on_margin_report(book, MarginReport("m2", filled), MARK, 1)
    assert step.book == book and step.sends == ()


def test_a_report_beyond_the_order_size_is_refused() -> None:
    book = open_book()
    step = on_margin_report(book, MarginReport("m1", D("2"), order_qty=D("1")), MARK, 0)
    assert step.book == book and [e.code for e in step.events] == [AuditCode.HEDGE_REPORT_REFUSED]
    assert step.events[0].data["reason"] == "FILL_ABOVE_ORDER"


def test_a_decreasing_report_changes_nothing() -> None:
    book = on_margin_report(open_book(), MarginReport("m1", D("0.5")), MARK, 0).book
    step = on_margin_report(book, MarginReport("m1", D("0.3")), MARK, 1)
    assert step.sends == () and step.book.filled == D("0.5")


def test_a_hedge_update_with_garbage_changes_nothing() -> None:
    h = make_runner(open_book())
    h.runner.on_margin_report(MarginReport("m1", D("0.5")))
    [cid] = h.runner.book.hedge_order_ids
    before = h.runner.book
    for filled in (D("NaN"), D("-1"), D("Infinity")):
        bad = VenueOrder("v0", cid, "BTC/USDT:USDT", "sell", "market", D("0.5"), filled, None, None, "closed")
        h.runner.on_hedge_update(bad)
        assert h.runner.book == before
    assert any(e.code == AuditCode.HEDGE_REPORT_REFUSED for e in h.events)


def test_a_nan_mark_defers_instead_of_crashing() -> None:
    h = make_runner(open_book())
    h.marks.price = D("NaN")
    h.runner.on_margin_report(MarginReport("m1", D("0.5")))
    assert h.runner.book.orders == () and h.venue.sends == []
    assert [e.data["reason"] for e in h.events if e.code == AuditCode.HEDGE_DEFERRED] == ["NO_MARK"]


def test_the_hedge_covers_the_fill_net_of_a_base_fee() -> None:
    """A margin buy pays its fee in the base asset: 1 BTC filled, 0.001 BTC fee, 0.999 BTC held. The hedge
    covers what is held (0.999), not what was bought: hedging 1 would leave the pair short 0.001 BTC."""
    h = make_runner(open_book())
    h.runner.on_margin_report(MarginReport("m1", D("1"), "closed", base_fee=D("0.001")))
    assert h.runner.book.hedged == D("0.999") and h.venue.position() == D("-0.999")
    # The fee grows with later reports (cumulative, largest wins) and never more than the fill.
    book = on_margin_report(open_book(), MarginReport("m1", D("0.5"), base_fee=D("0.0005")), MARK, 0).book
    book = on_margin_report(book, MarginReport("m1", D("0.5"), base_fee=D("0.0003")), MARK, 0).book
    assert book.net_filled == D("0.4995")
    step = on_margin_report(book, MarginReport("m1", D("0.5"), base_fee=D("0.6")), MARK, 0)
    assert step.book == book and step.events[0].data["reason"] == "FEE_ABOVE_FILL"


def test_the_base_fee_survives_a_snapshot() -> None:
    book = on_margin_report(open_book(), MarginReport("m1", D("1"), base_fee=D("0.001")), MARK, 0).book
    restored, legacy = restore_snapshot(dump_snapshot(book), WORKED)
    assert not legacy and restored.net_filled == D("0.999")


def test_two_runs_on_one_state_folder_the_second_exits_6(tmp_path: Path) -> None:
    from crypto.hedge.run_cli import EXIT_ALREADY_RUNNING, state_dir_lock

    fd = state_dir_lock(tmp_path)  # what the running one holds
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from gridbridge.cli import main; sys.exit(main())", "crypto", "hedge",
             "run", "--mode", "open", "--exec", "MT", "--venue", "binance-pm-fake", "--qty", "0.1", "--state-dir",
             str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    finally:
        import os

        os.close(fd)
    assert proc.returncode == EXIT_ALREADY_RUNNING == 6, proc.stderr
    assert "ALREADY_RUNNING" in proc.stderr
    assert not (tmp_path / "hedge1-open.json").exists()


def test_a_state_dir_that_is_a_symlink_or_a_file_is_refused(tmp_path: Path) -> None:
    from crypto.hedge.run_cli import StateDirRefused, state_dir_lock

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    for bad, code in ((tmp_path / "link", "STATE_DIR_SYMLINK"), (tmp_path / "file", "STATE_DIR_NOT_A_FOLDER")):
        with pytest.raises(StateDirRefused) as err:
            state_dir_lock(bad)
        assert err.value.code == code


@pytest.mark.parametrize("bad", ["--fills=12345678901234567890123456789012345", "--fills=1e30", "--fills=1e-30",
                                 "--mark=1e30", "--step=1e-20"])
def test_simulate_refuses_what_a_run_would_refuse(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a 35-digit fill printed "nothing (already covered)" and "complete", residual 0."""
    from crypto.hedge import cli

    args = {"--fills": "0.1", "--step": "0.001", "--min-qty": "0.001", "--min-notional": "100", "--mark": "50000"}
    key, value = bad.split("=", 1)
    args[key] = value
    with pytest.raises(SystemExit) as err:
        cli.main(["simulate", *[x for kv in args.items() for x in kv]])
    assert err.value.code == 2
    assert "TOO_" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["NaN", "-1", "1e30", "Infinity", "12345678901234567890123456789012345"])
def test_a_snapshot_with_an_extreme_quantity_is_refused(bad: str) -> None:
    """Before: -1 and 1e30 were restored as the margin fill."""
    import json

    from crypto.hedge.snapshot import SnapshotError

    book = on_margin_report(open_book(), MarginReport("m1", D("1")), MARK, 0).book
    doc = json.loads(dump_snapshot(book))
    doc["margin"][0]["filled"] = bad
    with pytest.raises(SnapshotError) as err:
        restore_snapshot(json.dumps(doc), WORKED)
    assert err.value.code == "SNAPSHOT_INVALID"


def test_a_deeply_nested_or_huge_snapshot_is_refused() -> None:
    """Before: 200,000 nested brackets raised RecursionError out of the restore."""
    from crypto.hedge.snapshot import SnapshotError

    for text, code in (("[" * 200_000 + "]" * 200_000, "SNAPSHOT_NOT_JSON"), (" " * (17 * 1024 * 1024), "SNAPSHOT_TOO_LARGE")):
        with pytest.raises(SnapshotError) as err:
            restore_snapshot(text, WORKED)
        assert err.value.code == code


def test_a_corrupt_journal_in_the_state_dir_is_exit_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a SnapshotError traceback. The run refuses to guess what a journal it cannot read had sent."""
    from crypto.hedge import cli

    (tmp_path / "hedge1-open.json").write_text('{"version": 2, "garbage": 1}')
    rc = cli.main(["run", "--mode", "open", "--exec", "MT", "--venue", "binance-pm-fake", "--qty", "0.1",
                   "--state-dir", str(tmp_path)])
    assert rc == 7 and "SNAPSHOT_INVALID" in capsys.readouterr().err


def test_a_429_storm_backs_off_instead_of_a_send_per_report() -> None:
    """Every hedge refused with 429 while fills keep coming: after a refusal the hedge waits (1 s, doubling,
    capped at 60 s; HEDGE_DEFERRED reason BACKOFF) instead of sending at every report. Before: one refused
    order per report, the book (and its snapshot) growing with each. When the storm ends the fill is hedged."""
    from collections import deque

    from core.oms.reasons import VenueReason

    h = make_runner(open_book())
    h.venue.refuse = deque([VenueReason.RATE_LIMIT] * 1000)
    for i in range(1, 61):  # 60 reports, the kit's clock moves 1 s per reading
        h.runner.on_margin_report(MarginReport("m1", D("0.01") * i))
    sends_in_storm = len(h.venue.sends)
    assert sends_in_storm <= 12, sends_in_storm  # 1, 2, 4, 8, 16, 32 s waits: a handful, not 60
    assert any(e.data.get("reason") == "BACKOFF" for e in h.events if e.code == AuditCode.HEDGE_DEFERRED)
    assert h.runner.book.hedged == 0 and h.runner.book.committed == 0
    h.venue.refuse.clear()
    for _ in range(200):  # the storm is over: the wait runs out and the next evaluation hedges
        h.runner.reevaluate()
        if h.runner.book.hedged:
            break
    assert h.runner.book.hedged == D("0.6") and h.venue.position() == D("-0.6")
    restored, _ = restore_snapshot(dump_snapshot(h.runner.book), WORKED)
    assert restored.refusals_in_row == 0 and restored.hold_until_ms == 0


def test_a_back_off_stamped_in_2099_does_not_stop_the_hedge_for_good() -> None:
    from core.oms.reasons import VenueReason
    from crypto.hedge.book import evaluate, on_hedge_refused

    book = on_margin_report(open_book(), MarginReport("m1", D("0.5")), MARK, 0).book
    [order] = book.orders
    y2099 = 4_070_908_800_000
    book = on_hedge_refused(book, order.client_order_id, VenueReason.RATE_LIMIT, MARK, y2099).book
    assert book.hold_until_ms > y2099
    step = evaluate(book, MARK, 1_700_000_000_000)  # the clock is back: the 2099 hold is void
    assert len(step.sends) == 1
    step = evaluate(book, MARK, y2099 + 10)  # within a real hold: it waits
    assert step.sends == ()


@pytest.mark.parametrize(("spot", "um", "price", "refusal"),
                         [("NaN", "-1", "50000", "EXPOSURE_INVALID"), ("1", "NaN", "50000", "EXPOSURE_INVALID"),
                          ("1e30", "-1e30", "50000", "EXPOSURE_INVALID"), ("1", "-1", "NaN", "NO_PRICE"),
                          ("1", "-1", "-5", "NO_PRICE")])
def test_a_close_plan_from_an_extreme_exposure_is_refused(spot: str, um: str, price: str, refusal: str) -> None:
    """Before: NaN raised InvalidOperation out of the plan, and a 1e30 spot leg was planned as a 1e30 close."""
    from crypto.hedge.close import CloseRefusal, Exposure, plan_close

    got = plan_close(Exposure(D(spot), D(um)), HedgeFilters(D("0.00001"), D("0.00001"), D("5")), D(price), D("0.002"))
    assert got == CloseRefusal(refusal)


def test_a_second_run_in_another_state_folder_never_reuses_client_ids(tmp_path: Path) -> None:
    """The same strategy id run again in another --state-dir against the same venue. Binance refuses a
    client id only among open orders, so the second run's first hedge id would be accepted again, and a
    lookup by that id (after a lost answer or a channel failure) would find the first run's filled order and
    count it as this run's hedge. Each new book has its own run tag in every id, kept in its snapshot (a
    restart on the same folder reuses it)."""
    from crypto.fakex.engine.paths import STEP_MS
    from crypto.fakex.server import FakeExchange
    from crypto.hedge.run_cli import FAKE_BALANCES
    from crypto.hedge.session import HedgeSession, RunConfig
    from crypto.venue.factory import VenueCredentials, make_venue

    with FakeExchange.start(seed=7, scenario="calm", dialects=("binance",), balances=FAKE_BALANCES) as fx:
        creds = VenueCredentials.model_validate({"api_key": fx.credentials.api_key, "secret": fx.credentials.secret})
        venue = make_venue("binance-pm-fake", fx.url, creds)
        results = []
        for folder in ("a", "b"):
            (tmp_path / folder).mkdir()
            session = HedgeSession(venue, RunConfig(mode="open", exec_mode="MT", qty=D("0.3")),
                                   lambda: fx.advance(STEP_MS), tmp_path / folder)
            results.append(session.run())
    a, b = results
    assert a.outcome == b.outcome == "done"
    ids_a = {o["client_order_id"] for o in a.hedge_orders}
    ids_b = {o["client_order_id"] for o in b.hedge_orders}
    assert ids_a and ids_b and not ids_a & ids_b
    assert b.um_position == a.um_position - b.hedged  # the second hedged its own fill, once
    book_b, _ = restore_snapshot((tmp_path / "b" / "hedge1-open.json").read_text(), WORKED)
    book_a, _ = restore_snapshot((tmp_path / "a" / "hedge1-open.json").read_text(), WORKED)
    assert book_a.run_tag and book_b.run_tag and book_a.run_tag != book_b.run_tag
    assert all(book_b.run_tag in cid for cid in (*book_b.hedge_order_ids, *book_b.margin_order_ids))
