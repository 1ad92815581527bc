"""The node books cash from the result's exact money (filled_value, fees), not from the float avg_price."""

from __future__ import annotations

from decimal import Decimal

from mac.grid.core import OPEN, GridState, Lot, commission
from mac.grid.params import compile_params
from mac.node.results import sold_elsewhere
from settings.grid import default_params
from shared_schema.models import Result, ResultStatus
from tests.mac.test_node import CODE, World, run_until_buy


def test_a_fill_at_a_price_no_float_holds_books_exact_cash(tmp_path):
    world = World(tmp_path)
    node = world.node()
    buy = run_until_buy(world, node)
    rt = node.runtimes[CODE]
    cash_before = rt.grid.cash
    # 100 shares at the limit and 200 one tick lower, then cancelled: 300 shares at an average of
    # price - 0.000666..., which no float holds (the float path books a different cash).
    filled = 300
    value = buy.price * filled - Decimal("0.2")
    fees = Decimal("5.00")
    avg = float(value / filled)
    assert Decimal(str(avg)) * filled != value
    world.results[buy.signal_id] = Result(
        signal_id=buy.signal_id, client_order_id=buy.client_order_id, code=CODE, direction=buy.direction,
        status=ResultStatus.CANCELLED, requested_shares=buy.shares, filled_shares=filled, avg_price=avg,
        filled_value=value, fees=fees, updated_at=world.clock.now())
    world.write_results()
    world.volume += filled
    world.advance()
    node.run_once()

    lot = next(x for x in rt.grid.lots if x.client_order_id == buy.client_order_id)
    assert lot.status == OPEN and lot.shares == filled
    assert lot.cost == value
    assert rt.grid.cash == cash_before - value - fees


def test_a_result_without_exact_money_books_as_before(tmp_path):
    world = World(tmp_path)
    node = world.node()
    buy = run_until_buy(world, node)
    rt = node.runtimes[CODE]
    cash_before = rt.grid.cash
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.advance()
    node.run_once()
    value = buy.price * buy.shares
    assert rt.grid.cash == cash_before - value - commission(rt.params, value)  # the grid's fee model


def test_a_sell_made_elsewhere_books_its_exact_proceeds():
    lots = (Lot("L1", 300, Decimal("330"), 1.1, OPEN, 0, 0),)
    params = compile_params(default_params(CODE))
    value, fees = Decimal("333.10"), Decimal("5.00")  # 333.10 / 300 = 1.110333...
    after = sold_elsewhere(GridState(CODE, lots=lots), ["L1"], 300, 300, float(value / 300), params,
                           filled_value=value, fees=fees)
    assert after.cash == GridState(CODE).cash + value - fees
    assert after.lots == ()
