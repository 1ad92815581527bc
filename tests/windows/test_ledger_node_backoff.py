"""Issue 10.2 / 10.16 on the node: a rejected order is not re-sent every minute; utilisation stays exact."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared_schema.atomic_io import atomic_write_model
from shared_schema.ledger_math import utilization
from shared_schema.models import POOL_FILE, PoolFile, Reason, Result, ResultStatus
from tests.mac.test_node import CODE, World, run_until_buy


@pytest.fixture
def world(tmp_path):
    return World(tmp_path, days=3)


def _hold_a_lot(world: World):
    node = world.node()
    buy = run_until_buy(world, node)
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares
    return node


def _reject_everything(world: World, node, reason: Reason) -> None:
    for coid in node.runtimes[CODE].outbox:
        if coid not in world.results:
            world.results[coid] = Result(signal_id=coid, status=ResultStatus.REJECTED, reason=reason,
                                         detail="LOT_SIZE", updated_at=world.clock.now())
    world.write_results()


def test_a_rejected_take_profit_sell_backs_off_instead_of_looping_and_alerts(world):
    node = _hold_a_lot(world)
    sells: list[int] = []
    while world.i < 700:
        _reject_everything(world, node, Reason.INVALID_SIGNAL)
        world.advance()
        sells += [world.i for s in node.run_once() if s.direction.value == "SELL"]
    assert sells, "the data never reached the take-profit"
    first = sells[0]
    within_hour = [i for i in sells if i < first + 60]
    # back-off 1, 2, 4, 8, 16, 32 minutes: at most 6 sends in the first hour, not 60
    assert len(within_hour) <= 6
    assert len(sells) < (700 - first) / 10
    rt = node.runtimes[CODE]
    alerts = [e for e in rt.events if e["kind"] == "REJECT_BACKOFF"]
    assert alerts and "INVALID_SIGNAL" in alerts[0]["detail"]
    assert rt.counters["blocked_REJECT_BACKOFF"] > 0


def test_the_back_off_is_kept_across_a_restart(world):
    node = _hold_a_lot(world)
    while world.i < 700 and not node.runtimes[CODE].backoff:
        _reject_everything(world, node, Reason.INVALID_SIGNAL)
        world.advance()
        node.run_once()
    assert node.runtimes[CODE].backoff
    assert world.node().runtimes[CODE].backoff == node.runtimes[CODE].backoff


def test_a_fill_clears_the_back_off(tmp_path):
    world = World(tmp_path, days=5)
    node = _hold_a_lot(world)
    rt = node.runtimes[CODE]
    while world.i < 700 and not rt.backoff:
        _reject_everything(world, node, Reason.INVALID_SIGNAL)
        world.advance()
        node.run_once()
    key = next(iter(rt.backoff))
    sell = None
    while world.i < 1190 and sell is None:
        sell = next((c for c, p in rt.outbox.items() if p["direction"] == "SELL"), None)
        if sell is None:
            world.advance()
            node.run_once()
    assert sell is not None
    world.answer(sell, ResultStatus.FILLED, rt.outbox[sell]["shares"], rt.outbox[sell]["price"])
    world.advance()
    node.run_once()
    assert key not in rt.backoff


def test_node_history_keeps_the_exact_utilisation(world):
    node = world.node()
    for _ in range(120):  # past the indicators' warm-up, so the grid judges the penalty
        world.advance()
        node.run_once()
    _reject_everything(world, node, Reason.POOL_RESERVE_15)  # no buy of ours pending: the view is the vault's
    world.utilization = 0.9
    world.advance()
    pool = PoolFile.model_validate_json((world.shared / POOL_FILE).read_bytes())
    exact = pool.model_copy(update={"used_159201": Decimal("270000.01"), "utilization": 0.9})
    atomic_write_model(world.shared / POOL_FILE, exact)
    node.run_once()
    _t, u, on = node.runtimes[CODE].history[-1]
    assert u == utilization(27_000_001, 30_000_000) > 0.9
    assert on is True


def test_a_manual_sell_of_part_of_a_lot_leaves_the_rest_in_the_nodes_grid_as_in_the_vault():
    from mac.grid.core import OPEN, GridState, Lot
    from mac.grid.params import compile_params
    from mac.node.results import sold_elsewhere
    from settings.grid import default_params

    lots = (Lot("L1", 10_000, Decimal(11000), 1.1, OPEN, 0, 0), Lot("L2", 1_000, Decimal(1100), 1.1, OPEN, 1, 0),
            Lot("L3", 500, Decimal(550), 1.1, OPEN, 2, 0))
    grid = GridState(CODE, lots=lots)
    params = compile_params(default_params(CODE))
    after = sold_elsewhere(grid, ["L1"], 100, 100, 1.11, params)  # sell 100 naming the 10,000 lot
    assert [(x.client_order_id, x.shares) for x in after.lots] == [("L1", 9_900), ("L2", 1_000), ("L3", 500)]
    after = sold_elsewhere(grid, ["L2", "L3"], 1_500, 700, 1.11, params)  # the 1,000+500 sell filled 700
    assert [(x.client_order_id, x.shares) for x in after.lots] == [("L1", 10_000), ("L2", 500), ("L3", 300)]
