"""The engine's money view: core's margin ledger booked from the venue's own fills and funding bills, each
once by id, across a restart; status shows average entry, realised/unrealised PnL, fees and funding
exactly (before: positions were quantities only)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from crypto.execution.engine import STATUS_FILE
from tests.crypto.execution.memvenue import MemVenue
from tests.crypto.execution.test_engine import BTC, make, target

D = Decimal


def test_ledger_ties_to_the_venue_fills_and_bills_and_survives_a_restart(tmp_path: Path) -> None:
    venue = MemVenue()
    venue._fill(BTC, "buy", D("0.2"), D("48000"))  # a position the engine finds at start (adopted at entry)
    eng = make(tmp_path, venue, funding_read_interval_ms=30_000)
    eng.start()
    venue.ms = 1_000
    eng.cycle(target("0.5"))  # buys 0.3 at the ask (taker fee)
    venue.mids[BTC] = D("51000")
    venue.ms = 2_000
    eng.clock.advance(1)
    eng.cycle(target("0.1"))  # sells 0.4: realises against the average entry
    venue.ms = 3_000
    venue.settle_funding(D("0.0001"))  # the long pays
    eng.clock.advance(60)
    eng.cycle()  # reconciliation: funding bills booked
    led = eng.book.ledger.position(BTC)
    vpos = venue.positions_[BTC]
    assert led.qty == vpos.qty == D("0.1")
    assert led.entry == vpos.entry  # the venue's WAC, to the last digit
    assert led.fees == sum((f.fee for f in venue.trades), D(0)) > 0
    assert led.funding == sum((b.amount for b in venue.bills), D(0)) < 0
    # by hand: entry after the buy = (0.2 x 48000 + 0.3 x 50000.1) / 0.5; the sell of 0.4 at 50999.9
    entry = (D("0.2") * D(48000) + D("0.3") * D("50000.1")) / D("0.5")
    assert led.realised_pnl == D("0.4") * D("50999.9") - (D("0.4") / D("0.5") * (entry * D("0.5"))).quantize(D("1e-12"))
    assert json.loads((tmp_path / STATUS_FILE).read_text())["ledger_untied"] == []
    status = json.loads((tmp_path / STATUS_FILE).read_text())["ledger"][BTC]
    assert D(status["avg_entry"]) == led.entry and D(status["funding"]) == led.funding
    assert D(status["unrealised_pnl"]) == D("0.1") * D(51000) - led.cost
    eng.close()

    again = make(tmp_path, venue, funding_read_interval_ms=30_000)  # a restart: replayed from the journal, the venue re-read, nothing twice
    again.start()
    again.clock.advance(120)
    again.cycle()
    assert again.book.ledger.position(BTC) == led
    again.close()


def test_no_fill_read_when_nothing_moved(tmp_path: Path) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue, reconcile_interval_ms=3_600_000)
    eng.start()
    reads = venue.fill_reads
    for _ in range(5):
        eng.clock.advance(1)
        eng.cycle()
    assert venue.fill_reads == reads  # the ledger reads fills only when a position moved
    eng.cycle(target("0.1"))
    eng.clock.advance(1)
    eng.cycle()
    assert venue.fill_reads == reads + 1 and eng.book.ledger.position(BTC).qty == D("0.1")
    eng.close()


def test_a_position_the_fills_do_not_explain_is_shown_untied(tmp_path: Path) -> None:
    venue = MemVenue()
    eng = make(tmp_path, venue)
    eng.start()
    eng.cycle(target("0.1"))
    venue._fill(BTC, "buy", D("0.05"), D("50000"))  # a change at the venue with no fill record for it
    eng.clock.advance(120_000)
    eng.cycle()
    assert json.loads((tmp_path / STATUS_FILE).read_text())["ledger_untied"] == [BTC]
    eng.close()


def test_fills_are_booked_even_when_the_funding_read_is_refused(tmp_path: Path) -> None:
    from core.oms.reasons import VenueReason
    from crypto.venue.types import VenueError

    class BillsBusy(MemVenue):
        busy = 1

        def funding_payments(self, symbol=None, since_ms=None):  # type: ignore[no-untyped-def]
            if self.busy:
                self.busy -= 1
                raise VenueError(VenueReason.RATE_LIMIT, "Too Many Requests", "50011")
            return super().funding_payments(symbol, since_ms)

    venue = BillsBusy()
    eng = make(tmp_path, venue, funding_read_interval_ms=1)
    eng.start()
    eng.cycle(target("0.1"))
    eng.clock.advance(1)
    eng.cycle()
    assert eng.book.ledger.position(BTC).qty == D("0.1")  # before: the refused bill read dropped the fills
    eng.close()
