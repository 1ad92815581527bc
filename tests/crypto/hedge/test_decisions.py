"""The hedge's decisions: the worked case, duplicates, rollbacks, the channel, GTX re-prices, close mode."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from core.events import AuditCode
from core.oms.reasons import VenueReason
from crypto.hedge import cli
from crypto.hedge.book import (
    HedgeBook,
    HedgeOrder,
    HedgeState,
    MarginReport,
    first_unfinished,
    on_margin_report,
    um_hedge_position,
)
from crypto.hedge.close import CloseRefusal, Exposure, close_book, plan_close
from crypto.hedge.rules import Defer, DeferReason, Hedge, HedgeFilters, NoDelta, decide_hedge
from crypto.hedge.simulate import simulate

from .kit import make_runner

D = Decimal
WORKED = HedgeFilters(D("0.001"), D("0.001"), D("100"))
MARK = D("50000")


def open_book(exec_mode: str = "MT", **kw: object) -> HedgeBook:
    return HedgeBook("s1", "BTC/USDT:USDT", "open", exec_mode, "sell", WORKED, **kw)  # type: ignore[arg-type]


def codes(events: list) -> list[AuditCode]:  # type: ignore[type-arg]
    return [e.code for e in events]


def test_worked_case_decisions() -> None:
    assert decide_hedge(D("0.0004"), D(0), MARK, WORKED) == Defer(DeferReason.MIN_QTY, D("0.0004"), D("0.000"), D("0"))
    d = decide_hedge(D("0.0015"), D(0), MARK, WORKED)
    assert isinstance(d, Defer) and d.reason == DeferReason.MIN_NOTIONAL and d.notional == D("50")
    assert decide_hedge(D("0.0025"), D(0), MARK, WORKED) == Hedge(D("0.002"), D("0.0025"))
    assert isinstance(decide_hedge(D("0.0025"), D("0.002"), MARK, WORKED), Defer)
    assert decide_hedge(D("0.002"), D("0.002"), MARK, WORKED) == NoDelta(D(0))
    assert decide_hedge(D("0.003"), D("0.002"), None, WORKED).reason == DeferReason.NO_MARK  # type: ignore[union-attr]


def test_worked_case_simulated_and_residual_kept() -> None:
    result = simulate([D("0.0004"), D("0.0015"), D("0.0025")], WORKED, MARK)
    assert [(r.decision, r.reason, r.hedge_qty, r.hedged) for r in result.rows] == [
        ("defer", "MIN_QTY", None, D(0)),
        ("defer", "MIN_NOTIONAL", None, D(0)),
        ("hedge", None, D("0.002"), D("0.002")),
    ]
    assert result.residual == D("0.0005")
    assert result.residual < result.residual_bound == D("0.002")


def test_simulate_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["simulate", "--fills", "0.0004,0.0015,0.0025", "--step", "0.001", "--min-qty", "0.001",
                   "--min-notional", "100", "--mark", "50000", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert [(r["decision"], r["reason"], r["hedge_qty"], r["hedged"]) for r in doc["reports"]] == [
        ("defer", "MIN_QTY", None, "0"), ("defer", "MIN_NOTIONAL", None, "0"), ("hedge", None, "0.002", "0.002")]
    assert doc["residual"] == "0.0005"


def test_simulate_cli_table_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["simulate", "--fills", "0.0004,0.0015,0.0025", "--step", "0.001", "--min-qty", "0.001",
                     "--min-notional", "100", "--mark", "50000"]) == 0
    out = capsys.readouterr().out
    assert "defer (MIN_NOTIONAL, notional 50 < 100)" in out and "hedge 0.002" in out and "residual 0.0005" in out
    assert cli.main(["simulate", "--fills", "0.1", "--step", "0", "--min-qty", "0", "--min-notional", "0",
                     "--mark", "1"]) == 2
    assert json.loads(capsys.readouterr().err)["error"] == "BAD_FILTERS"
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--fills", "abc", "--step", "1", "--min-qty", "0", "--min-notional", "0", "--mark", "1"])


def test_residual_reported_when_margin_order_completes() -> None:
    book = open_book()
    step = on_margin_report(book, MarginReport("m1", D("0.0015"), "open"), MARK, 0)
    assert AuditCode.HEDGE_RESIDUAL not in codes(list(step.events))
    step = on_margin_report(step.book, MarginReport("m1", D("0.0015"), "closed"), MARK, 1)
    residual = [e for e in step.events if e.code == AuditCode.HEDGE_RESIDUAL]
    assert residual and residual[0].data["residual"] == "0.0015" and step.book.residual_reported == D("0.0015")
    # A duplicate completion report does not repeat it.
    again = on_margin_report(step.book, MarginReport("m1", D("0.0015"), "closed"), MARK, 2)
    assert AuditCode.HEDGE_RESIDUAL not in codes(list(again.events))


def test_duplicate_and_reordered_reports_change_nothing() -> None:
    h = make_runner(open_book())
    h.runner.on_margin_report(MarginReport("m1", D("0.003")))
    h.runner.on_margin_report(MarginReport("m1", D("0.001")))  # late, older report
    h.runner.on_margin_report(MarginReport("m1", D("0.003")))  # duplicate
    assert len(h.venue.sends) == 1 and h.runner.book.hedged == D("0.003") == -h.venue.position()


def test_rejection_rolls_back_and_next_fill_rehedges() -> None:
    h = make_runner(open_book())
    h.venue.refuse.append(VenueReason.INSUFFICIENT_FUNDS)
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert h.runner.book.hedged == 0 and h.runner.book.committed == 0
    assert AuditCode.HEDGE_ROLLED_BACK in codes(h.events)
    h.runner.on_margin_report(MarginReport("m1", D("0.0031")))
    assert h.runner.book.hedged == D("0.003") == -h.venue.position()
    assert [s.qty for s in h.venue.sends] == [D("0.002"), D("0.003")]


def test_expired_hedge_moves_hedged_back_to_its_fill() -> None:
    from dataclasses import replace

    h = make_runner(open_book("MM"))
    h.runner.on_margin_report(MarginReport("m1", D("0.004")))
    first = h.runner.book.orders[0]
    assert first.state == HedgeState.ACCEPTED and h.runner.book.hedged == D("0.004")  # moved at acceptance
    h.venue.orders[first.client_order_id] = replace(h.venue.orders[first.client_order_id], status="canceled",
                                                    filled=D("0.001"))
    h.runner.on_hedge_update(h.venue.orders[first.client_order_id])
    assert h.runner.book.orders[0].state == HedgeState.EXPIRED and h.runner.book.orders[0].hedged == D("0.001")
    # The unfilled 0.003 rolled back and went again as a re-priced GTX.
    assert [o.qty for o in h.runner.book.orders] == [D("0.004"), D("0.003")]
    assert h.runner.book.orders[1].attempt == 1 and h.runner.book.hedged == D("0.004")
    assert AuditCode.HEDGE_ROLLED_BACK in codes(h.events) and AuditCode.HEDGE_REPRICED in codes(h.events)


def test_channel_down_sends_directly() -> None:
    h = make_runner(open_book(), channel_up=False)
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert h.direct_sends == [h.runner.book.orders[0].client_order_id] and h.channel.submitted == []
    assert h.runner.book.hedged == D("0.002")
    assert AuditCode.HEDGE_DIRECT_SEND in codes(h.events)
    h.channel.up = True
    h.runner.on_margin_report(MarginReport("m1", D("0.004")))
    assert len(h.channel.submitted) == 1 and len(h.direct_sends) == 1


def test_channel_that_delivered_then_failed_costs_no_second_order() -> None:
    h = make_runner(open_book())
    h.venue.dup_live_only = True  # the filled market hedge's id would be accepted again

    class DeliverThenDrop:
        def __init__(self) -> None:
            self.calls = 0

        def submit(self, request):  # type: ignore[no-untyped-def]
            self.calls += 1
            h.venue.submit(request)
            from crypto.hedge.runner import ChannelDown

            raise ChannelDown("ack lost")

    h.runner.channel = DeliverThenDrop()
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert len(h.venue.orders) == 1 and h.runner.book.hedged == D("0.002") == -h.venue.position()
    assert h.direct_sends == []


def test_lost_answer_is_looked_up_by_client_id() -> None:
    h = make_runner(open_book())
    h.venue.lose = 1  # accepted, answer lost: the lookup finds it
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert h.runner.book.hedged == D("0.002") and len(h.venue.orders) == 1


def test_timed_out_send_stays_committed_until_reconciled() -> None:
    h = make_runner(open_book())
    h.venue.drop = 1  # never reached the venue; the lookup finds nothing: still PENDING, not re-sent
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert h.runner.book.orders[0].state == HedgeState.PENDING and h.runner.book.committed == D("0.002")
    assert len(h.venue.orders) == 0
    h.runner.reconcile(lost_after=2)  # while running: one empty lookup is not enough
    assert h.runner.book.orders[0].state == HedgeState.PENDING
    h.runner.reconcile(lost_after=2)  # the second in a row: rolled back
    assert h.runner.book.orders[0].state == HedgeState.REJECTED
    h.runner.reevaluate()
    assert h.runner.book.hedged == D("0.002") == -h.venue.position()


def test_crossing_gtx_is_repriced_then_falls_back_to_market() -> None:
    h = make_runner(open_book("MM", max_reprices=2), cross_first=10)
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    kinds = [(s.type, s.post_only) for s in h.venue.sends]
    assert kinds == [("limit", True), ("limit", True), ("limit", True), ("market", False)]
    assert h.pricing.asked == [0, 1, 2]
    got = codes(h.events)
    assert got.count(AuditCode.HEDGE_REPRICED) == 2 and got.count(AuditCode.HEDGE_MARKET_FALLBACK) == 1
    assert h.runner.book.hedged == D("0.002") == -h.venue.position()


def test_crossing_gtx_repriced_once_then_rests() -> None:
    h = make_runner(open_book("MM"), cross_first=1)
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))
    assert [s.post_only for s in h.venue.sends] == [True, True]
    live = h.runner.book.orders[-1]
    assert live.state == HedgeState.ACCEPTED and h.runner.book.hedged == D("0.002")
    h.runner.on_hedge_update(h.venue.fill_resting(live.client_order_id))
    assert h.runner.book.orders[-1].state == HedgeState.FILLED


def test_concurrent_reports_are_serialised() -> None:
    h = make_runner(open_book())
    start = threading.Barrier(8)

    def report(qty: str) -> None:
        start.wait()
        h.runner.on_margin_report(MarginReport("m1", D(qty)))

    threads = [threading.Thread(target=report, args=("0.005",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert h.runner.book.hedged == D("0.005") == -h.venue.position() and len(h.venue.sends) == 1


def test_close_mode_never_flips_the_position() -> None:
    plan = plan_close(Exposure(spot=D("0.0055"), um=D("-0.004")), HedgeFilters(D("0.0001"), D("0.0001"), D("5")),
                      MARK)
    assert not isinstance(plan, CloseRefusal)
    assert (plan.margin_side, plan.margin_qty, plan.um_side, plan.um_cap) == ("sell", D("0.0055"), "buy", D("0.004"))
    h = make_runner(close_book("c1", "BTC/USDT:USDT", plan, "MT", WORKED))
    for filled in ("0.001", "0.0035", "0.0055"):
        h.runner.on_margin_report(MarginReport("mc", D(filled), "open"))
    h.runner.on_margin_report(MarginReport("mc", D("0.0055"), "closed"))
    assert h.runner.book.hedged == D("0.004") and h.venue.position() == D("0.004")  # bought back the short
    assert all(s.reduce_only and s.side == "buy" for s in h.venue.sends)


def test_close_sells_no_more_spot_than_the_um_leg_plus_the_residual_allowance() -> None:
    spot = HedgeFilters(D("0.00001"), D("0.00001"), D("5"))
    plan = plan_close(Exposure(spot=D("1.8"), um=D("-0.8")), spot, MARK, allowance=D("0.002"))
    assert not isinstance(plan, CloseRefusal) and plan.margin_qty == D("0.802") and plan.um_cap == D("0.8")
    fee_short = plan_close(Exposure(spot=D("1.19894"), um=D("-1.2")), spot, MARK, allowance=D("0.002"))
    assert not isinstance(fee_short, CloseRefusal) and fee_short.margin_qty == D("1.19894")
    residual_only = plan_close(Exposure(spot=D("0.0005"), um=D(0)), spot, MARK, allowance=D("0.002"))
    assert not isinstance(residual_only, CloseRefusal) and residual_only.margin_qty == D("0.0005")


def test_close_refusals() -> None:
    spot = HedgeFilters(D("0.0001"), D("0.0001"), D("5"))
    assert plan_close(Exposure(D(0), D("-1")), spot, MARK) == CloseRefusal.NOTHING_TO_CLOSE
    assert plan_close(Exposure(D("1"), D("1")), spot, MARK) == CloseRefusal.NOT_A_HEDGE
    assert plan_close(Exposure(D("0.00005"), D("-1")), spot, MARK) == CloseRefusal.SPOT_MIN_QTY
    assert plan_close(Exposure(D("0.0001"), D("-1")), spot, D("40000")) == CloseRefusal.SPOT_MIN_NOTIONAL
    assert plan_close(Exposure(D("1"), D("-1")), spot, None) == CloseRefusal.NO_PRICE


def test_helpers_aggregate_and_first_unfinished() -> None:
    orders = (
        HedgeOrder("a", "sell", D("0.002"), "market", state=HedgeState.FILLED, filled=D("0.002")),
        HedgeOrder("b", "sell", D("0.003"), "gtx", state=HedgeState.ACCEPTED, filled=D("0.001")),
        HedgeOrder("c", "sell", D("0.001"), "gtx", state=HedgeState.REJECTED),
        HedgeOrder("d", "buy", D("0.001"), "market", state=HedgeState.FILLED, filled=D("0.001")),
    )
    assert um_hedge_position(orders) == D("-0.002")
    first = first_unfinished(orders)
    assert first is not None and first.client_order_id == "b"
    assert first_unfinished(orders[:1]) is None
