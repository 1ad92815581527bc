"""The engine through the wire: the fake's OKX v5 server on loopback and the unmodified ccxt okx class
(crypto.venue.CcxtVenue) in front of it. Same assertions as in process: funding equals the bills, close-all
leaves nothing."""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.carry.config import CarryConfig
from crypto.carry.machine import CarryState
from crypto.carry.shell import CarryEngine
from crypto.fakex.engine.exchange import DEFAULT_START_MS
from crypto.fakex.server import FakeExchange
from crypto.venue.factory import VenueCredentials, make_venue

PERP = "BTC/USDT:USDT"


@pytest.mark.slow
def test_carry_through_ccxt_and_the_okx_fake(tmp_path: Path) -> None:
    start = DEFAULT_START_MS + 7 * 3_600_000 + 40 * 60_000  # 07:40 UTC: the 08:00 settlement comes soon
    balances = {"trading": {"USDT": D("7500")}, "funding": {"USDT": D("2500")}}
    with FakeExchange.start(seed=5, scenario="calm", start_ms=start, balances=balances) as fx:
        c = fx.credentials
        venue = make_venue("okx-fake", fx.url, VenueCredentials(api_key=c.api_key, secret=c.secret,
                                                                passphrase=c.passphrase))

        def wait(ms: int) -> None:
            fx.advance(ms)
            time.sleep(0.02)

        engine = CarryEngine(venue, CarryConfig(), tmp_path / "state", clock=fx.exchange, wait=wait, fsync=False)
        for _ in range(8):  # 07:40 -> 08:20 in 5-minute scans
            engine.step()
            fx.advance(300_000)
            time.sleep(0.25)  # the fake counts its OKX rate limits in wall time
        p = engine.pairs[PERP]
        assert p.state == CarryState.HEDGING
        bills = [b for b in fx.exchange.bills(kind="funding") if b.inst_id == "BTC-USDT-SWAP"]
        assert len(bills) == 1
        assert p.b.funding == bills[0].pos_bal_chg != 0  # the engine's funding is the venue's bill, exactly
        import json

        engine.audit.close()
        equity = [D(json.loads(line)["data"]["equity"]) for line in (engine.dir / "audit.jsonl").read_text().splitlines()
                  if '"EQUITY_SNAPSHOT"' in line]
        assert equity and all(D("9800") < e < D("10200") for e in equity)  # the strategy's equity, no margin twice
        engine.close_all("operator close-all")
        assert engine.pairs[PERP].state == CarryState.STOPPED
        assert venue.positions([PERP]) == []
