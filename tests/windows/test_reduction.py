"""The forced-reduction planner on its own: which lots COOLDOWN and Force Reduce sell, at what price."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.risk.snapshot import CAUSE_MANUAL, RiskSnapshot
from core.risk.state import RiskState
from settings.config import MarketConfig
from tests.kit.stubs import SESSION_TIME
from windows.reduction import (
    Attempt,
    Book,
    GridLot,
    Holding,
    ReductionMode,
    is_reduction_id,
    marketable_sell_price,
    next_attempt,
    plan_reduction,
    reduction_id,
    reduction_mode,
    reduction_signal,
)

MARKET = MarketConfig()
SH, SZ = "512890.SH", "159201.SZ"
BOOKS = {SH: Book(Decimal("1.099"), Decimal("1.100")), SZ: Book(Decimal("1.299"), Decimal("1.300"))}


def lot(coid: str, shares: int = 10_000, cost: int = 1_100_000, code: str = SH) -> GridLot:
    return GridLot(coid, code, shares, cost)


def holdings(base: int = 20_000, grid: int = 40_000, sellable: int | None = None) -> dict[str, Holding]:
    volume = base + grid
    return {code: Holding(volume, volume if sellable is None else sellable, base) for code in (SH, SZ)}


def plan(mode: ReductionMode, lots: list[GridLot], **kw):
    kw.setdefault("now", SESSION_TIME)
    kw.setdefault("market", MARKET)
    kw.setdefault("books", BOOKS)
    kw.setdefault("holdings", holdings())
    return plan_reduction(mode, lots, **kw)


FOUR = [lot("L1"), lot("L2"), lot("L3"), lot("L4")]  # 4 x 11,000 yuan


def test_cooldown_sells_oldest_lots_down_to_the_target_share():
    result = plan(ReductionMode.COOLDOWN, FOUR, target_fen=2_200_000)  # 50 % of 44,000
    assert [s.lot.client_order_id for s in result.sells] == ["L1", "L2"]
    assert result.exposure_fen == 4_400_000 and result.after_fen == 2_200_000


def test_cooldown_counts_lots_already_in_a_sell_as_gone_and_stops_at_the_target():
    result = plan(ReductionMode.COOLDOWN, FOUR, target_fen=2_200_000, in_sell=frozenset({"L1"}))
    assert [s.lot.client_order_id for s in result.sells] == ["L2"]
    done = plan(ReductionMode.COOLDOWN, FOUR[2:], target_fen=2_200_000)
    assert done.sells == () and done.is_done


def test_cooldown_without_a_known_target_sells_nothing():
    assert plan(ReductionMode.COOLDOWN, FOUR, target_fen=None).sells == ()


def test_force_reduce_sells_every_sellable_lot():
    result = plan(ReductionMode.FORCE_REDUCE, FOUR + [lot("Z1", code=SZ, cost=1_300_000)])
    assert [s.lot.client_order_id for s in result.sells] == ["L1", "L2", "L3", "L4", "Z1"]
    assert result.after_fen == 0


@pytest.mark.parametrize("mode", list(ReductionMode))
def test_the_base_position_is_never_sold(mode):
    # Only 25,000 shares above the 20,000 base: two 10,000 lots fit, the third would dip into the base.
    result = plan(mode, FOUR, holdings=holdings(base=20_000, grid=25_000), target_fen=0)
    assert [s.lot.client_order_id for s in result.sells] == ["L1", "L2"]
    assert dict(result.held_back) == {"L3": "NOT_SELLABLE_T1", "L4": "NOT_SELLABLE_T1"}
    assert sum(s.lot.shares for s in result.sells) <= 25_000


def test_t_plus_one_bounds_the_sells_and_a_smaller_later_lot_still_goes():
    lots = [lot("L1"), lot("L2", shares=3_000, cost=330_000)]
    result = plan(ReductionMode.FORCE_REDUCE, lots, holdings=holdings(grid=13_000, sellable=5_000))
    assert [s.lot.client_order_id for s in result.sells] == ["L2"]
    assert dict(result.held_back) == {"L1": "NOT_SELLABLE_T1"}


def test_no_quote_unknown_positions_outside_session_and_cooling_hold_lots_back():
    lots = [lot("A"), lot("B", code=SZ), lot("C")]
    result = plan(ReductionMode.FORCE_REDUCE, lots, books={SZ: BOOKS[SZ]}, cooling=frozenset({"C"}),
                  holdings={SH: holdings()[SH]})
    assert dict(result.held_back) == {"A": "NO_QUOTE", "B": "POSITIONS_UNKNOWN", "C": "RETRY_WAIT"}
    closed = plan(ReductionMode.FORCE_REDUCE, lots, now=SESSION_TIME.replace(hour=12))
    assert {why for _, why in closed.held_back} == {"OUTSIDE_SESSION"} and closed.sells == ()


@pytest.mark.parametrize(
    ("bid", "prev_close", "expected"),
    [
        ("1.099", "1.100", "1.099"),  # the best bid
        (None, "1.100", "0.990"),  # nobody bids: the lower limit
        ("0", "1.100", "0.990"),
        ("1.0996", "1.100", "1.099"),  # off tick: floored (a sell that rounds up may not fill)
        ("0.950", "1.100", "0.990"),  # a bid under the limit: the limit
        ("1.300", "1.100", "1.210"),  # a bid over the upper limit: the upper limit
    ],
)
def test_the_marketable_limit_is_the_bid_or_the_lower_limit_on_tick(bid, prev_close, expected):
    book = Book(None if bid is None else Decimal(bid), Decimal(prev_close))
    assert marketable_sell_price(book, MARKET) == Decimal(expected)


def test_reduction_mode_follows_the_snapshot():
    normal = RiskSnapshot()
    assert reduction_mode(normal) is None
    assert reduction_mode(replace(normal, state=RiskState.COOLDOWN)) is ReductionMode.COOLDOWN
    forced = replace(normal, state=RiskState.REDUCE_ONLY, reduce_only_causes=frozenset({CAUSE_MANUAL}))
    assert reduction_mode(forced) is ReductionMode.FORCE_REDUCE
    assert reduction_mode(replace(forced, halted=True)) is None
    assert reduction_mode(replace(forced, data_ok=False)) is None  # never sells on stale prices
    assert reduction_mode(replace(normal, state=RiskState.REDUCE_ONLY)) is None  # trade/data: no selling


def test_ids_are_deterministic_distinct_and_valid_client_order_ids():
    from shared_schema.models import CLIENT_ORDER_ID_PATTERN

    ids = {reduction_id(f"G9201B{n}", a) for n in range(200) for a in range(3)}
    assert len(ids) == 600
    assert reduction_id("G1", 0) == reduction_id("G1", 0)
    assert all(CLIENT_ORDER_ID_PATTERN.match(i) and is_reduction_id(i) for i in ids)


def test_next_attempt_waits_while_open_and_for_the_retry_after_a_failure():
    retry = timedelta(seconds=60)
    assert next_attempt("L", None, SESSION_TIME, retry) == (0, False)
    assert next_attempt("L", Attempt(0, False, None), SESSION_TIME, retry) == (None, False)
    ended = Attempt(0, True, SESSION_TIME)
    assert next_attempt("L", ended, SESSION_TIME + timedelta(seconds=59), retry) == (None, True)
    assert next_attempt("L", ended, SESSION_TIME + timedelta(seconds=60), retry) == (1, False)
    # Each further failure doubles the wait, up to 32 x: a lot the venue keeps refusing is not retried every minute.
    assert next_attempt("L", Attempt(1, True, SESSION_TIME), SESSION_TIME + timedelta(seconds=119), retry) == (None, True)
    assert next_attempt("L", Attempt(1, True, SESSION_TIME), SESSION_TIME + timedelta(seconds=120), retry) == (2, False)
    late = SESSION_TIME + timedelta(minutes=32)
    assert next_attempt("L", Attempt(40, True, SESSION_TIME), late - timedelta(seconds=1), retry) == (None, True)
    assert next_attempt("L", Attempt(40, True, SESSION_TIME), late, retry) == (41, False)


def test_a_reduction_signal_is_a_valid_sell_naming_its_lot():
    from shared_schema.models import Signal

    sell = plan(ReductionMode.FORCE_REDUCE, FOUR[:1]).sells[0]
    payload = reduction_signal(sell, ReductionMode.FORCE_REDUCE, 0, SESSION_TIME, timedelta(seconds=120))
    signal = Signal.model_validate(payload)
    assert signal.release_client_order_ids == ["L1"] and signal.shares == 10_000
    assert signal.price == Decimal("1.099") and signal.source == "executor:FORCE_REDUCE"


# --- one sell-budget rule with the grid core (shared_schema.ledger_math.sell_budget) ---------------------


def test_resting_sells_count_against_the_room_above_the_base():
    # 30,000 held, base 20,000; the node's sell of L1 (5,000) rests at the venue, so can_use_volume is
    # already 25,000. Only 5,000 more may go: L2 fits, L3 would take the position to 15,000.
    lots = [lot("L1", shares=5_000, cost=550_000), lot("L2", shares=5_000, cost=550_000),
            lot("L3", shares=5_000, cost=550_000)]
    held = {SH: Holding(30_000, 25_000, 20_000, unfilled_sells=5_000)}
    result = plan(ReductionMode.FORCE_REDUCE, lots, holdings=held, in_sell=frozenset({"L1"}))
    assert [s.lot.client_order_id for s in result.sells] == ["L2"]
    assert dict(result.held_back) == {"L3": "NOT_SELLABLE_T1"}


def test_sells_the_venue_has_not_seen_come_out_of_can_use_volume():
    # A sell journaled but not yet at the venue (or of unknown outcome): can_use_volume still counts it.
    held = {SH: Holding(40_000, 20_000, 10_000, unfilled_sells=10_000, unplaced_sells=10_000)}
    assert held[SH].sell_budget == 10_000
    result = plan(ReductionMode.FORCE_REDUCE, FOUR, holdings=held)
    assert [s.lot.client_order_id for s in result.sells] == ["L1"]


def test_the_reduction_and_the_grid_core_share_one_budget_function():
    from mac.grid import core
    from shared_schema import ledger_math
    from windows import reduction

    assert core.ledger_sell_budget is ledger_math.sell_budget
    assert reduction.ledger_sell_budget is ledger_math.sell_budget


@settings(max_examples=300, deadline=None)
@given(
    base=st.integers(0, 30).map(lambda n: n * 1_000),
    extra=st.integers(0, 40).map(lambda n: n * 1_000),
    today=st.integers(0, 40).map(lambda n: n * 1_000),
    resting=st.integers(0, 40).map(lambda n: n * 1_000),
    unplaced=st.integers(0, 40).map(lambda n: n * 1_000),
    sizes=st.lists(st.integers(1, 15).map(lambda n: n * 1_000), min_size=1, max_size=8),
)
def test_a_reduction_never_plans_below_the_base_with_resting_sells(base, extra, today, resting, unplaced, sizes):
    volume = base + extra
    resting = min(resting, volume)
    unplaced = min(unplaced, resting)
    placed = resting - unplaced
    # can_use_volume: shares held since yesterday, less the sells the venue has (placed ones)
    can_use = max(0, volume - min(today, volume) - placed)
    held = {SH: Holding(volume, can_use, base, unfilled_sells=resting, unplaced_sells=unplaced)}
    lots = [lot(f"L{i}", shares=s, cost=s * 110) for i, s in enumerate(sizes)]
    result = plan(ReductionMode.FORCE_REDUCE, lots, holdings=held)
    sold = sum(s.lot.shares for s in result.sells)
    assert volume - resting - sold >= base or sold == 0
    assert sold <= max(0, can_use - unplaced)
