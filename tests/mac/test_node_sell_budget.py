"""The node's sell budget: T+1 with a base position (issue 10, item 7)."""

from __future__ import annotations

from mac.grid.core import PENDING_SELL, trading_day
from shared_schema.models import ResultStatus
from tests.mac.test_node import CODE, World, run_until_buy


def test_node_sells_todays_lot_against_the_sellable_base_the_same_day(tmp_path):
    world = World(tmp_path, days=3, seed=13)
    node = world.node()
    buy = run_until_buy(world, node)
    buy_day = trading_day(int(world.bars.t[world.i - 1]))
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares  # the venue holds base + lot; only the base is sellable today (T+1)
    sells = []
    while not sells and trading_day(int(world.bars.t[world.i])) == buy_day:
        world.advance()
        sells = [s for s in node.run_once() if s.direction.value == "SELL"]
    assert sells, "the lot reached its take-profit on its buy day but was not sold"
    assert sells[0].release_client_order_ids == [buy.client_order_id] and sells[0].shares == buy.shares
    assert node.runtimes[CODE].counters.get("event_NOT_SELLABLE_T1", 0) == 0


def test_node_deducts_only_the_sells_the_venue_has_not_seen(tmp_path):
    world = World(tmp_path, days=3, seed=13)
    node = world.node()
    buy = run_until_buy(world, node)
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares
    sells = []
    while not sells:
        world.advance()
        sells = [s for s in node.run_once() if s.direction.value == "SELL"]
    rt = node.runtimes[CODE]
    assert rt.grid.lots[0].status == PENDING_SELL
    assert node._sells_at_venue(rt) == frozenset()  # written, not yet placed: its shares still count
    world.answer(sells[0].signal_id, ResultStatus.SENT)
    node.run_once()
    assert node._sells_at_venue(rt) == {sells[0].client_order_id}  # can_use_volume already excludes it
