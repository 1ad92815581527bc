"""Property: whatever the order of reports, refusals, lost answers and restarts, the hedge never exceeds the
fill, never hedges twice, and what stays unhedged at the end is under the smallest hedgeable quantity."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.oms.reasons import VenueReason
from crypto.hedge.book import HedgeBook, MarginReport
from crypto.hedge.rules import HedgeFilters
from crypto.hedge.snapshot import dump_snapshot, restore_snapshot

from .kit import FakeUM, make_runner

D = Decimal


def legacy_text(book: HedgeBook) -> str:
    """The older format: one margin order, the hedge ids, a hedged total moved at creation."""
    return json.dumps({
        "legacy_strategy_id": book.strategy_id,
        "legacy_symbol": book.symbol,
        "legacy_hedge_side": book.hedge_side,
        "legacy_margin_order_id": book.margin[0].order_id if book.margin else "m1",
        "legacy_hedge_order_ids": list(book.hedge_order_ids),
        "legacy_filled": str(book.filled),
        "legacy_hedged": str(sum((o.qty for o in book.orders), D(0))),
    })


@st.composite
def scenarios(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    step = draw(st.sampled_from([D("0.001"), D("0.0001"), D("0.01")]))
    on_grid = draw(st.booleans())
    min_qty = step * draw(st.integers(1, 5)) + (D(0) if on_grid else step / 2)
    mark = draw(st.sampled_from([D("50000"), D("3000"), D("2.5"), D("1234.5")]))
    min_notional = draw(st.sampled_from([D(0), D(5), D(100)]))
    increments = draw(st.lists(st.integers(1, 40), min_size=1, max_size=12))
    unit = step / 4
    fills = []
    total = D(0)
    for inc in increments:
        total += inc * unit
        fills.append(total)
    reports = []
    for cum in fills:
        reports.append(cum)
        if draw(st.booleans()):
            reports.append(draw(st.sampled_from(fills)))  # a duplicate or an old, reordered report
    actions = draw(st.lists(st.sampled_from(["none", "none", "none", "refuse", "rate", "lose", "drop",
                                             "restart", "legacy", "expire", "half", "fill"]),
                            min_size=len(reports), max_size=len(reports)))
    return {
        "filters": HedgeFilters(step, min_qty, min_notional), "mark": mark, "fills": fills, "reports": reports,
        "actions": actions, "exec_mode": draw(st.sampled_from(["MT", "MM"])),
        "cross_first": draw(st.integers(0, 5)), "on_grid": on_grid,
    }


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_hedge_never_exceeds_fill_and_residual_is_bounded(sc: dict) -> None:  # type: ignore[type-arg]
    filters, mark = sc["filters"], sc["mark"]
    venue = FakeUM()
    book = HedgeBook("p1", "BTC/USDT:USDT", "open", sc["exec_mode"], "sell", filters, max_reprices=2)
    h = make_runner(book, cross_first=sc["cross_first"], venue=venue)
    h.marks.price = mark
    seen = D(0)
    for cum, action in zip(sc["reports"], sc["actions"], strict=True):
        if action == "refuse":
            venue.refuse.append(VenueReason.INSUFFICIENT_FUNDS)
        elif action == "rate":
            venue.refuse.append(VenueReason.RATE_LIMIT)
        elif action == "lose":
            venue.lose = 1
        elif action == "drop":
            venue.drop = 1
        elif action in ("restart", "legacy"):
            text = legacy_text(h.runner.book) if action == "legacy" else dump_snapshot(h.runner.book)
            restored, was_legacy = restore_snapshot(text, filters, sc["exec_mode"], max_reprices=2)
            assert was_legacy == (action == "legacy")
            h = make_runner(restored, cross_first=sc["cross_first"], venue=venue)
            h.marks.price = mark
            h.runner.reconcile()
        elif action in ("expire", "half", "fill"):
            resting = [o for o in venue.orders.values() if o.status == "open"]
            if resting:
                cid = resting[0].client_order_id
                if action == "fill":
                    update = venue.fill_resting(cid)
                else:  # pulled or expired after acceptance, unfilled or half filled
                    update = venue.expire(cid, resting[0].qty / 2 if action == "half" else D(0))
                h.runner.on_hedge_update(update)
        seen = max(seen, cum)
        h.runner.on_margin_report(MarginReport("m1", cum))
        book = h.runner.book
        assert book.hedged <= book.committed <= book.filled == seen
        assert -venue.position() <= seen  # what the venue holds never exceeds the fill
    # Settle: the venue behaves again, the margin order completes.
    venue.refuse.clear()
    venue.lose = venue.drop = 0
    h.runner.reconcile()
    h.runner.on_margin_report(MarginReport("m1", sc["fills"][-1], "closed"))
    for _ in range(100):  # time passes (1 s per clock reading) past any back-off after a 429
        h.runner.reevaluate()
        if h.runner.book.hold_until_ms == 0:
            break
    h.runner.reevaluate()
    book = h.runner.book
    assert -venue.position() == book.hedged  # no hedge sent twice, none forgotten
    assert D(0) <= book.residual < filters.residual_bound(mark)
    if sc["on_grid"] and (filters.min_notional / mark) % filters.step == 0:
        assert book.residual < max(filters.step, filters.min_qty, filters.min_notional / mark)
    assert book.residual_reported == book.residual


def test_settled_book_survives_restart_without_a_second_hedge() -> None:
    venue = FakeUM()
    filters = HedgeFilters(D("0.001"), D("0.001"), D("100"))
    h = make_runner(HedgeBook("r1", "BTC/USDT:USDT", "open", "MT", "sell", filters), venue=venue)
    h.runner.on_margin_report(MarginReport("m1", D("0.0025")))
    restored, _ = restore_snapshot(dump_snapshot(h.runner.book), filters)
    h2 = make_runner(restored, venue=venue)
    h2.runner.reconcile()
    h2.runner.on_margin_report(MarginReport("m1", D("0.0025")))
    assert len(venue.orders) == 1 and h2.runner.book.hedged == D("0.002")
