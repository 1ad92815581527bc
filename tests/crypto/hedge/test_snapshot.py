"""Snapshots: the order-id lists round-trip; the older ``legacy_*`` format fills the new fields and a restart
never hedges twice."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.oms.reasons import VenueReason
from crypto.hedge.book import HedgeBook, HedgeState, MarginReport
from crypto.hedge.rules import HedgeFilters
from crypto.hedge.snapshot import SnapshotError, dump_snapshot, restore_snapshot

from .kit import FakeUM, make_runner

D = Decimal
FILTERS = HedgeFilters(D("0.001"), D("0.001"), D("100"))


def test_snapshot_round_trip_holds_the_order_id_lists() -> None:
    h = make_runner(HedgeBook("s1", "BTC/USDT:USDT", "open", "MM", "sell", FILTERS))
    h.runner.on_margin_report(MarginReport("m1", D("0.0041")))
    text = dump_snapshot(h.runner.book)
    doc = json.loads(text)
    assert doc["margin_order_ids"] == ["m1"] and doc["hedge_order_ids"] == ["s1h0"] and doc["version"] == 2
    restored, legacy = restore_snapshot(text, FILTERS)
    assert not legacy and restored == h.runner.book


def test_legacy_snapshot_fills_new_fields_and_never_hedges_twice() -> None:
    venue = FakeUM()
    h = make_runner(HedgeBook("s1", "BTC/USDT:USDT", "open", "MT", "sell", FILTERS), venue=venue)
    venue.refuse.append(VenueReason.INSUFFICIENT_FUNDS)
    h.runner.on_margin_report(MarginReport("m1", D("0.002")))  # s1h0 refused
    h.runner.on_margin_report(MarginReport("m1", D("0.005")))  # s1h1: 0.005 accepted
    assert h.runner.book.hedged == D("0.005")
    # The older design counted at creation: 0.002 + 0.005 = 0.007 "hedged".
    legacy = json.dumps({"legacy_strategy_id": "s1", "legacy_symbol": "BTC/USDT:USDT", "legacy_hedge_side": "sell",
                         "legacy_margin_order_id": "m1", "legacy_hedge_order_ids": ["s1h0", "s1h1"],
                         "legacy_filled": "0.005", "legacy_hedged": "0.007"})
    book, was_legacy = restore_snapshot(legacy, FILTERS, "MT")
    assert was_legacy
    assert book.margin_order_ids == ("m1",) and book.hedge_order_ids == ("s1h0", "s1h1")
    assert all(o.state == HedgeState.UNKNOWN for o in book.orders) and book.committed == D("0.007")
    h2 = make_runner(book, venue=venue)
    # A report before the lookup: the legacy total is still committed, nothing is sent.
    h2.runner.on_margin_report(MarginReport("m1", D("0.006")))
    assert len(venue.orders) == 1
    h2.runner.reconcile()
    states = {o.client_order_id: o.state for o in h2.runner.book.orders}
    assert states["s1h0"] == HedgeState.REJECTED and states["s1h1"] == HedgeState.FILLED
    assert h2.runner.book.legacy_committed == 0 and h2.runner.book.hedged == D("0.005")
    h2.runner.on_margin_report(MarginReport("m1", D("0.0071")))
    assert -venue.position() == D("0.007") == h2.runner.book.hedged
    assert h2.runner.book.orders[-1].client_order_id not in ("s1h0", "s1h1")  # ids never reused


@pytest.mark.parametrize(("text", "code"), [
    ("not json", "SNAPSHOT_NOT_JSON"),
    ("[1]", "SNAPSHOT_NOT_OBJECT"),
    ('{"legacy_strategy_id": "s"}', "SNAPSHOT_INVALID"),
    ('{"version": 2, "strategy_id": "s"}', "SNAPSHOT_INVALID"),
    ('{"legacy_strategy_id": "s", "legacy_symbol": "X", "legacy_hedge_side": "up", "legacy_margin_order_id": "m"}',
     "SNAPSHOT_INVALID"),
])
def test_bad_snapshots_are_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(SnapshotError) as info:
        restore_snapshot(text, FILTERS)
    assert info.value.code == code


def test_inconsistent_id_lists_are_refused() -> None:
    h = make_runner(HedgeBook("s1", "BTC/USDT:USDT", "open", "MT", "sell", FILTERS))
    h.runner.on_margin_report(MarginReport("m1", D("0.003")))
    doc = json.loads(dump_snapshot(h.runner.book))
    doc["hedge_order_ids"] = ["other"]
    with pytest.raises(SnapshotError) as info:
        restore_snapshot(json.dumps(doc), FILTERS)
    assert info.value.code == "SNAPSHOT_INCONSISTENT"
