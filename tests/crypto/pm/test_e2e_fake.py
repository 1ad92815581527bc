"""End to end on the local exchange (crypto.fakex, OKX v5 dialect) through the real ccxt venue adapter:
futures entry -> stop attached -> ROE past the threshold -> stop moved -> ladder take-profit -> exit
(the venue's own stop fires); and a spot fill -> WAC -> guard stop exit."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.oms.account import HeldPosition
from crypto.pm.config import load_config
from crypto.pm.feed import VenueFeed, VenueTreasury
from crypto.pm.manager import ConfigHolder, Manager
from crypto.pm.port import VenuePort, client_order_id_for
from crypto.pm.runner import ActionRunner
from crypto.pm.service import PmService
from crypto.pm.spot import SpotBook, spot_buy
from crypto.pm.state import RedisState
from crypto.pm.store import SqliteSnapshotStore
from crypto.venue.factory import VenueCredentials, make_venue
from crypto.venue.types import OrderRequest

server = pytest.importorskip("crypto.fakex.server")
SWAP, INST = "BTC/USDT:USDT", "BTC-USDT-SWAP"

pytestmark = pytest.mark.slow


@pytest.fixture
def fake() -> Iterator[object]:
    with server.FakeExchange.start(seed=7, scenario="calm") as fx:
        yield fx


def rig(fx: object, redis_url: str, db: Path) -> tuple[Manager, PmService, object]:
    c = fx.credentials  # type: ignore[attr-defined]
    venue = make_venue("okx-fake", fx.url, VenueCredentials(api_key=c.api_key, secret=c.secret,  # type: ignore[attr-defined]
                                                            passphrase=c.passphrase))
    cfg = load_config({
        "locks": [{"trigger_roe": "0.3", "lock_roe": "0.1"}],
        "ladder": [{"roe": "0.5", "fraction": "0.5"}, {"roe": "1.5", "fraction": "0.5"}],
        "add_on": {"gate_roe": "0.2"},
    })
    clock = fx.now_ms  # type: ignore[attr-defined]  # the fake's manual clock (no request per reading)
    store = SqliteSnapshotStore(db)
    state = RedisState.from_url(redis_url)
    runner = ActionRunner(VenuePort(venue), store, state, cfg.retry, clock_ms=clock, rng=random.Random(1))
    m = Manager(state, store, runner, ConfigHolder(cfg), clock_ms=clock, treasury_port=VenueTreasury(venue))
    m.cold_start()
    return m, PmService(m, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock, symbols=[SWAP]), venue


def test_futures_entry_stop_lock_ladder_exit(fake: object, redis_url: str, tmp_path: Path) -> None:
    fx = fake
    m, svc, venue = rig(fx, redis_url, tmp_path / "pm.db")
    venue.set_leverage(SWAP, D(3), "isolated")  # type: ignore[attr-defined]
    filled = venue.place_order(OrderRequest(SWAP, "buy", D("0.1"), "market", "e2eentry1",  # type: ignore[attr-defined]
                                            margin_mode="isolated"))
    t0 = time.perf_counter()
    [pos_id] = svc.watch()
    attach_s = time.perf_counter() - t0
    pos = m.state.load_position(pos_id)
    assert pos is not None and pos.stop is not None
    entry = filled.avg_price
    stop0 = venue.fetch_order(SWAP, client_order_id_for(pos.stop_coid))  # type: ignore[attr-defined,arg-type]
    assert stop0.status == "open" and stop0.reduce_only and stop0.trigger_price == pos.stop
    assert attach_s < 1.0, attach_s  # the fill seen -> the reduce-only stop acknowledged

    # ROE past the first lock: 3x leverage, +12 % -> ROE ~0.36 -> lock 0.1 ROE.
    fx.exchange.set_price(INST, entry * D("1.12"))  # type: ignore[attr-defined]
    r = m.manage(pos_id, svc.feed.observe(SWAP)[0])  # type: ignore[index]
    assert [a.kind for a in r.plan.actions] == ["STOP_MOVE"] and r.plan.actions[0].reason == "ROE_LOCK_0"
    moved = venue.fetch_order(SWAP, r.outcomes[0].client_order_id)  # type: ignore[attr-defined]
    assert moved.status == "open" and moved.trigger_price > entry
    assert venue.fetch_order(SWAP, stop0.client_order_id).status == "canceled"  # type: ignore[attr-defined]

    # Ladder rung 0 at ROE 0.5 (+~17 %): half the position closes, the stop is re-placed for the rest.
    fx.exchange.set_price(INST, entry * D("1.18"))  # type: ignore[attr-defined]
    r = m.manage(pos_id, svc.feed.observe(SWAP)[0])  # type: ignore[index]
    assert [a.kind for a in r.plan.actions] == ["TP_PARTIAL", "STOP_MOVE"]
    assert all(o.status == "DONE" for o in r.outcomes)
    [venue_pos] = venue.positions([SWAP])  # type: ignore[attr-defined]
    assert venue_pos.qty == D("0.05")
    live = [o for o in venue.open_orders(SWAP) if o.type == "stop_market"]  # type: ignore[attr-defined]
    assert len(live) == 1 and live[0].qty == D("0.05") and live[0].trigger_price == moved.trigger_price

    # The price falls through the stop: the venue's stop fires, the watch closes our position.
    fx.exchange.set_price(INST, entry * D("1.01"))  # type: ignore[attr-defined]
    fx.advance(1_000)  # type: ignore[attr-defined]
    assert venue.positions([SWAP]) == []  # type: ignore[attr-defined]
    svc.watch()
    assert m.state.active_ids() == []
    assert m.state.r.get(f"risk:budget:{pos_id}") is None
    kinds = [e["type"] for e in m.state.events(SWAP)]
    assert kinds == ["ENTRY", "STOP_MOVE", "STOP_MOVE", "TP_PARTIAL", "EXIT"]
    assert [o for o in venue.open_orders(SWAP)] == []  # type: ignore[attr-defined]
    sli = m.slis.snapshot()
    print(f"e2e: stop attached in {attach_s * 1000:.0f} ms; order p95 {sli['order_p95_ms']:.0f} ms over "
          f"{sli['orders_measured']} orders")
    assert sli["order_p95_ms"] <= 800


def test_spot_fill_wac_and_guard_stop(fake: object, redis_url: str, tmp_path: Path) -> None:
    fx = fake
    m, _, venue = rig(fx, redis_url, tmp_path / "pm.db")
    spot = "BTC/USDT"
    for coid in ("spotbuy1", "spotbuy2"):
        venue.place_order(OrderRequest(spot, "buy", D("0.01"), "market", coid))  # type: ignore[attr-defined]
        fx.advance(60_000)  # type: ignore[attr-defined]
    book = SpotBook(HeldPosition(spot))
    for f in venue.fills(spot):  # type: ignore[attr-defined]
        base_fee = f.fee if f.fee_asset == "BTC" else D(0)  # a fee in coin arrives as fewer coins
        quote_fee = f.fee if f.fee_asset != "BTC" else D(0)
        qty = f.qty - base_fee
        book = spot_buy(book, qty, f.qty * f.price / qty, quote_fee)  # the coin fee raises the unit cost
    cost = sum((f.qty * f.price for f in venue.fills(spot)), D(0))  # type: ignore[attr-defined]
    assert book.held.cost == cost  # WAC basis = everything paid
    mark = venue.mark_price(spot)  # type: ignore[attr-defined]
    from crypto.pm.decisions import MarketView

    qty = book.qty.quantize(D("0.00000001"), rounding="ROUND_DOWN")
    m.open_position("spot1", spot, "spot", 1, qty, book.wac, qty * book.wac, MarketView(mark=mark, ts_ms=0))
    pos = m.state.load_position("spot1")
    assert pos is not None and pos.stop is not None and pos.entry == book.wac
    fx.exchange.set_price("BTC-USDT", pos.stop * D("0.99"))  # type: ignore[attr-defined]
    r = m.manage("spot1", MarketView(mark=venue.mark_price(spot), ts_ms=0))  # type: ignore[attr-defined]
    assert [a.kind for a in r.plan.actions] == ["EXIT"]
    assert r.outcomes[0].status == "DONE", r.outcomes[0].reason
    assert venue.fetch_order(spot, r.outcomes[0].client_order_id).filled == qty  # type: ignore[attr-defined]
    assert m.state.active_ids() == []


def test_a_burst_of_stop_moves_against_the_venue_rate_limit(fake: object, redis_url: str, tmp_path: Path) -> None:
    """30 stop moves back to back: the local exchange answers 429/50011 past OKX's per-2 s budget; the
    default backoff (1 s + jitter, 3 attempts) rides it out."""
    fx = fake
    m, _, venue = rig(fx, redis_url, tmp_path / "pm.db")
    venue.set_leverage(SWAP, D(3), "isolated")  # type: ignore[attr-defined]
    venue.place_order(OrderRequest(SWAP, "buy", D("0.1"), "market", "burstentry", margin_mode="isolated"))  # type: ignore[attr-defined]
    from crypto.pm.decisions import Action

    statuses = []
    for i in range(1, 31):
        cancels = (f"b:sl:{i - 1}",) if i > 1 else ()
        action = Action("STOP_MOVE", f"b:sl:{i}", "b", SWAP, D("0.1"), "sell", D(40000 + i), cancels)
        out = m.runner.run(action)
        m.slis.action("STOP_MOVE", out.status == "DONE")
        statuses.append(out.status)
    sli = m.slis.snapshot()
    print(f"burst: {statuses.count('DONE')}/30 done, order p95 {sli['order_p95_ms']:.0f} ms")
    assert sli["stop_move_success_rate"] >= 0.99
    live = [o for o in venue.open_orders(SWAP) if o.type == "stop_market"]  # type: ignore[attr-defined]
    assert [o.trigger_price for o in live] == [D(40030)]
