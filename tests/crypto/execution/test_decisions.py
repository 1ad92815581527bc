from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.oms.order_fsm import OrderState
from core.risk.config import RiskConfig
from core.risk.snapshot import RiskSnapshot
from core.risk.state import RiskState
from crypto.execution.config import ExecConfig
from crypto.execution.decisions import SymbolView, plan_symbol
from crypto.execution.orders import LiveOrder, fold_report
from crypto.venue.types import Book, VenueOrder
from tests.crypto.execution.memvenue import btc

D = Decimal
NOW = 1_767_571_200_000


def view(position: Decimal, live: tuple[LiveOrder, ...] = (), depth: Decimal = Decimal(5)) -> SymbolView:
    book = Book("BTC/USDT:USDT", ((D("49999.9"), depth),), ((D("50000.1"), depth),), NOW)
    return SymbolView("BTC/USDT:USDT", btc(), book, D(50000), position, live, None, D(2), "isolated")


qtys = st.decimals(min_value=D("-3"), max_value=D("3"), places=4)


@given(position=qtys, target=qtys, state=st.sampled_from([RiskState.COOLDOWN, RiskState.REDUCE_ONLY,
                                                           RiskState.FUSE]))
@settings(max_examples=200, deadline=None)
def test_reducing_states_only_shrink_exposure_and_never_flip(position, target, state):
    plan = plan_symbol(view(position), target, RiskSnapshot(state=state), RiskConfig(), ExecConfig(min_interval_ms=0),
                       NOW)
    if plan.order is None:
        return
    signed = plan.order.qty if plan.order.side == "buy" else -plan.order.qty
    after = position + signed
    assert abs(after) < abs(position) and after * position >= 0
    assert plan.order.reduce_only and not plan.order.opens


@given(position=qtys, target=qtys, depth=st.decimals(min_value=D("0.01"), max_value=D(10), places=2))
@settings(max_examples=200, deadline=None)
def test_orders_are_on_the_lot_and_tick_and_within_the_depth_share(position, target, depth):
    cfg = ExecConfig(min_interval_ms=0, max_depth_share=D("0.5"))
    plan = plan_symbol(view(position, depth=depth), target, RiskSnapshot(), RiskConfig(), cfg, NOW)
    if plan.order is None:
        return
    m = btc()
    assert plan.order.qty > 0 and (plan.order.qty / m.qty_step) % 1 == 0
    assert plan.order.price is not None and (plan.order.price / m.tick) % 1 == 0
    assert plan.order.target is not None  # the target after the venue minimum (an undersized one is 0)
    assert plan.order.qty <= abs(plan.order.target - position)
    assert plan.order.qty <= depth * cfg.max_depth_share  # one child: a share of the visible depth


def test_a_working_order_blocks_a_second_one_until_it_is_old():
    working = LiveOrder("c1", "i1", "BTC/USDT:USDT", "buy", D("0.1"), "limit", "target", price=D("49999.9"),
                        state=OrderState.ACK, created_ms=NOW - 1000)
    cfg = ExecConfig(min_interval_ms=0, max_order_age_ms=30_000)
    plan = plan_symbol(view(D(0), (working,)), D(1), RiskSnapshot(), RiskConfig(), cfg, NOW)
    assert plan.order is None and plan.cancels == () and plan.reason == "WORKING"
    old = plan_symbol(view(D(0), (working,)), D(1), RiskSnapshot(), RiskConfig(), cfg, NOW + 30_000)
    assert old.order is None and old.cancels == (("c1", "REPOST_AGE"),)


reports = st.lists(st.tuples(st.sampled_from(["open", "closed", "canceled", "rejected", "expired"]),
                             st.integers(min_value=0, max_value=10)), min_size=1, max_size=12)


@given(reports)
@settings(max_examples=300, deadline=None)
def test_folding_reports_never_shrinks_fills_and_counts_each_fill_once(seq):
    order = LiveOrder("c", "i", "BTC/USDT:USDT", "buy", D(10), "limit", "target", price=D(1),
                      state=OrderState.SENT)
    total = D(0)
    for status, filled in seq:
        report = VenueOrder("v", "c", "BTC/USDT:USDT", "buy", "limit", D(10), D(filled), D(1), D(1), status)  # type: ignore[arg-type]
        before = order.filled
        folded = fold_report(order, report, NOW)
        assert folded.order.filled >= before and folded.fill_delta == folded.order.filled - before
        if folded.order.state.is_terminal and order.state.is_terminal:
            assert folded.order.state is order.state  # nothing leaves a terminal state
        total += folded.fill_delta
        order = folded.order
    assert total == order.filled == max(D(f) for _, f in seq)
