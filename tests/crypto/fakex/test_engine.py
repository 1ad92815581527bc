"""The exchange model on its own: formulas, fills, funding, liquidation, state (no HTTP)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.fakex.engine import funding as fnd
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import DEFAULT_START_MS, AlgoSpec, Exchange, OrderSpec
from crypto.fakex.engine.margin import liquidation_price
from crypto.fakex.engine.paths import PricePath

HOUR = 3_600_000
BTC_SWAP = "BTC-USDT-SWAP"


def swap_order(side: str, qty: str, ord_type: str = "market", price: str | None = None, **kw: object) -> OrderSpec:
    return OrderSpec(inst_id=BTC_SWAP, side=side, ord_type=ord_type, qty=D(qty),
                     price=D(price) if price else None, margin_mode=str(kw.pop("margin_mode", "isolated")),
                     **kw)  # type: ignore[arg-type]


def usdt_cash_and_margin(ex: Exchange) -> D:
    iso = sum((p.margin for p in ex.state.positions.values()), D(0))
    return ex.state.balances["trading"]["USDT"] + iso


def test_liquidation_price_is_the_documented_formula() -> None:
    # long = (entry - margin/amount) / (1 - mmr - fee); short = (entry + margin/amount) / (1 + mmr + fee)
    assert liquidation_price(D(2), D(100), D(50), D("0.004"), D("0.0005")) == (D(100) - D(25)) / D("0.9955")
    assert liquidation_price(D(-2), D(100), D(50), D("0.004"), D("0.0005")) == (D(100) + D(25)) / D("1.0045")
    assert liquidation_price(D(0), D(100), D(50), D("0.004"), D("0.0005")) is None


def test_isolated_long_is_liquidated_at_its_stated_price_and_loses_its_margin() -> None:
    ex = Exchange.create(seed=3, scenario="calm")
    ex.set_leverage(BTC_SWAP, D(10), "isolated")
    ex.place_order(swap_order("buy", "0.5"))
    [view] = ex.positions()
    liq = view.liq_price
    assert liq is not None
    expected = liquidation_price(view.rec.qty, view.rec.entry, view.rec.margin, D("0.004"), D("0.0005"))
    assert expected is not None and abs(liq - expected) <= D("0.05")
    before = ex.state.balances["trading"]["USDT"]
    margin = view.rec.margin
    ex.set_price(BTC_SWAP, liq + D(5))
    assert ex.positions()[0].rec.qty == D("0.5"), "above its liquidation price the position lives"
    ex.set_price(BTC_SWAP, liq - D(5))
    assert ex.positions() == []
    assert ex.state.balances["trading"]["USDT"] == before, "isolated: only the posted margin is lost"
    liq_orders = [o for o in ex.orders(BTC_SWAP) if o.category == "full_liquidation"]
    assert len(liq_orders) == 1 and liq_orders[0].avg_price == liq
    [bill] = ex.bills(kind="liquidation")
    assert bill.pos_bal_chg == -margin


def test_short_is_liquidated_when_mark_rises_to_its_price() -> None:
    ex = Exchange.create(seed=3, scenario="calm")
    ex.set_leverage(BTC_SWAP, D(20), "isolated")
    ex.place_order(swap_order("sell", "0.2"))
    liq = ex.positions()[0].liq_price
    assert liq is not None and liq > ex.mark_price(BTC_SWAP)
    ex.set_price(BTC_SWAP, liq + D(1))
    assert ex.positions() == []


def test_funding_settles_at_00_08_16_utc_and_a_long_pays_a_positive_rate() -> None:
    ex = Exchange.create(seed=5, scenario="calm", start_ms=DEFAULT_START_MS + 3 * HOUR)
    ex.place_order(swap_order("buy", "1", margin_mode="cross"))
    ex.clock.advance(30 * HOUR)  # type: ignore[attr-defined]
    times = [r.funding_time_ms for r in ex.funding_history(BTC_SWAP)]
    assert [(t - DEFAULT_START_MS) // HOUR for t in times] == [8, 16, 24, 32]
    bills = ex.bills(kind="funding")
    assert len(bills) == 4
    for bill, rec in zip(bills, ex.funding_history(BTC_SWAP), strict=True):
        assert bill.bal_chg == (-D(1) * rec.mark * rec.rate).quantize(D("1e-12"))
        assert rec.rate > 0 and bill.bal_chg < 0


def test_funding_interval_halves_while_the_rate_sits_at_the_cap_and_returns_to_8h() -> None:
    ex = Exchange.create(seed=5, scenario="calm")
    cap = ex.instruments[BTC_SWAP].funding_cap
    ex.set_funding_rate(BTC_SWAP, cap)
    ex.clock.advance(8 * HOUR + 1)  # type: ignore[attr-defined]
    view = ex.funding(BTC_SWAP)
    assert view.interval_h == 4 and view.next_funding_time_ms - view.funding_time_ms == 4 * HOUR
    ex.clock.advance(4 * HOUR)  # type: ignore[attr-defined]
    assert ex.funding(BTC_SWAP).interval_h == 2
    ex.set_funding_rate(BTC_SWAP, D("0.0001"))
    ex.clock.advance(2 * HOUR)  # type: ignore[attr-defined]
    view = ex.funding(BTC_SWAP)
    assert view.interval_h == 8 and (view.funding_time_ms // HOUR) % 8 == 0


def test_squeeze_holds_the_formula_rate_at_its_cap() -> None:
    ex = Exchange.create(seed=2, scenario="squeeze")
    ex.clock.advance(12 * HOUR)  # type: ignore[attr-defined]
    cap = ex.instruments[BTC_SWAP].funding_cap
    rates = [r.rate for r in ex.funding_history(BTC_SWAP)]
    assert rates[-1] == cap
    assert ex.funding(BTC_SWAP).interval_h < 8


@given(st.decimals(min_value=D("-0.02"), max_value=D("0.02"), places=6), st.sampled_from([1, 2, 4, 8]))
def test_funding_rate_stays_within_its_cap(premium: D, interval: int) -> None:
    cap = D("0.00375")
    rate = fnd.funding_rate(premium, interval, cap)
    assert -cap <= rate <= cap
    if abs(D("0.0001") - premium) <= D("0.0005"):  # the premium clamp leaves the interest rate alone
        assert rate == (D("0.0001") / (D(8) / interval)).quantize(fnd.RATE_QUANTUM)


def test_resting_limit_fills_partially_as_maker_while_the_path_crosses_it() -> None:
    ex = Exchange.create(seed=11, scenario="crash")
    mark = ex.mark_price("BTC-USDT")
    price = (mark * D("0.9")).quantize(D("0.1"))
    # 1.5 BTC against 0.5 BTC at the best level per 10-second path step: three steps of crossing to fill.
    order = ex.place_order(OrderSpec("BTC-USDT", "buy", "limit", D("1.5"), price, client_id="rest1"))
    assert order.state == "live" and order.frozen == D("1.5") * price
    states = []
    for _ in range(12 * 360):
        ex.clock.advance(10_000)  # type: ignore[attr-defined]
        current = ex.get_order("BTC-USDT", cl_ord_id="rest1")
        states.append(current.state)
        if current.state == "filled":
            break
    assert "partially_filled" in states and states[-1] == "filled"
    fills = ex.fills("BTC-USDT")
    assert [f.qty for f in fills] == [D("0.5")] * 3
    assert all(f.liquidity == "maker" and f.price == price for f in fills)
    # Spot buy: the maker fee (0.08%) is taken from the base received.
    assert all(f.fee == f.qty * D("0.0008") and f.fee_ccy == "BTC" for f in fills)
    assert ex.state.balances["trading"]["BTC"] == D(1) + D("1.5") * (1 - D("0.0008"))


def test_taker_walks_the_book_and_pays_the_taker_fee() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    book = ex.book(BTC_SWAP, 5)
    order = ex.place_order(swap_order("buy", "1.2"))
    fills = ex.fills(BTC_SWAP)
    assert [f.price for f in fills] == [book.asks[0][0], book.asks[1][0]]
    assert sum((f.qty for f in fills), D(0)) == D("1.2")
    assert order.fee == sum(((f.qty * f.price * D("0.0005")).quantize(D("1e-12")) for f in fills), D(0))


def test_post_only_that_would_cross_is_cancelled_not_filled() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ask = ex.book(BTC_SWAP, 1).best_ask
    order = ex.place_order(swap_order("buy", "0.1", "post_only", str(ask)))
    assert order.state == "canceled" and order.cancel_source == "post_only" and order.filled == 0


@pytest.mark.parametrize(("spec", "reason"), [
    (swap_order("buy", "0.00015"), Reason.LOT_SIZE),  # 0.015 contracts: the lot is 0.01 contract
    (swap_order("buy", "0.00005"), Reason.LOT_SIZE),
    (swap_order("buy", "0.01", "limit", "60000.05"), Reason.TICK_SIZE),
    (swap_order("buy", "100"), Reason.INSUFFICIENT_FUNDS),
    (swap_order("sell", "0.1", reduce_only=True), Reason.REDUCE_ONLY_NO_POSITION),
    (OrderSpec("BTC-USDT", "buy", "market", D("0.000001")), Reason.MIN_SIZE),
    (OrderSpec("BTC-USDT", "sell", "market", D("0.1"), reduce_only=True), Reason.REDUCE_ONLY_SPOT),
    (OrderSpec("XRP-USDT", "sell", "market", D("1")), Reason.UNKNOWN_INSTRUMENT),
])
def test_venue_rules_refuse_with_a_reason(spec: OrderSpec, reason: Reason) -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    with pytest.raises(Reject) as exc:
        ex.place_order(spec)
    assert exc.value.reason == reason
    assert ex.orders() == []


def test_duplicate_live_client_id_refused_and_free_again_once_done() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ex.place_order(swap_order("buy", "0.1", "limit", "50000", client_id="dup1"))
    with pytest.raises(Reject) as exc:
        ex.place_order(swap_order("buy", "0.1", "limit", "50000", client_id="dup1"))
    assert exc.value.reason == Reason.DUPLICATE_CLIENT_ID
    ex.cancel_order(BTC_SWAP, cl_ord_id="dup1")
    ex.place_order(swap_order("buy", "0.1", "limit", "50000", client_id="dup1"))
    assert len(ex.orders(BTC_SWAP)) == 2


def test_reduce_only_never_flips_the_position() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ex.place_order(swap_order("buy", "0.3"))
    with pytest.raises(Reject) as exc:
        ex.place_order(swap_order("buy", "0.1", reduce_only=True))
    assert exc.value.reason == Reason.REDUCE_ONLY_SAME_SIDE
    ex.place_order(swap_order("sell", "0.5", reduce_only=True))
    assert ex.positions() == []


def test_stop_market_triggers_on_mark_and_closes_reduce_only() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ex.place_order(swap_order("buy", "0.2"))
    mark = ex.mark_price(BTC_SWAP)
    stop = (mark * D("0.95")).quantize(D("0.1"))
    algo = ex.place_algo(AlgoSpec(BTC_SWAP, "sell", "conditional", D("0.2"), sl_trigger_px=stop,
                                  trigger_px_type="mark", reduce_only=True, margin_mode="isolated", client_id="sl1"))
    ex.set_price(BTC_SWAP, stop + D(10))
    assert ex.get_algo(algo.algo_id).state == "live"
    ex.set_price(BTC_SWAP, stop - D(10))
    fired = ex.get_algo(algo_cl_ord_id="sl1")
    assert fired.state == "effective" and ex.get_order(BTC_SWAP, fired.ord_id).reduce_only
    assert ex.positions() == []


def test_transfer_is_idempotent_by_client_id() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    first = ex.transfer("USDT", D(250), "funding", "trading", client_id="tr1")
    again = ex.transfer("USDT", D(250), "funding", "trading", client_id="tr1")
    assert first == again
    assert ex.state.balances["funding"]["USDT"] == D(9750)
    with pytest.raises(Reject) as exc:
        ex.transfer("USDT", D(10**9), "funding", "trading", client_id="tr2")
    assert exc.value.reason == Reason.INSUFFICIENT_FUNDS


def test_isolated_margin_add_and_reduce_move_the_liquidation_price() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ex.place_order(swap_order("buy", "0.5"))
    liq0 = ex.positions()[0].liq_price
    assert liq0 is not None
    view = ex.adjust_margin(BTC_SWAP, D(1000), add=True)
    assert view.liq_price is not None and view.liq_price < liq0
    with pytest.raises(Reject) as exc:
        ex.adjust_margin(BTC_SWAP, D(10**6), add=False)
    assert exc.value.reason == Reason.MARGIN_REDUCE_TOO_LARGE


def test_state_round_trips_through_the_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "state.json"
    ex = Exchange.create(seed=9, scenario="trend")
    ex.place_order(swap_order("buy", "0.3"))
    ex.place_order(swap_order("sell", "0.1", "limit", "90000", client_id="keep"))
    ex.clock.advance(9 * HOUR)  # type: ignore[attr-defined]
    ex.save(path)
    again = Exchange.load(path)
    assert again.state == ex.state
    assert again.mark_price(BTC_SWAP) == ex.mark_price(BTC_SWAP)
    assert again.get_order(BTC_SWAP, cl_ord_id="keep").state == "live"


def test_paths_are_deterministic_and_the_crash_falls_about_30_percent() -> None:
    a = PricePath(4, "crash", "BTC", D(60000), 0)
    b = PricePath(4, "crash", "BTC", D(60000), 0)
    assert [a.index(t * 600_000) for t in range(50)] == [b.index(t * 600_000) for t in range(50)]
    trough = a.index(7 * HOUR) / a.index(HOUR)
    rebound = a.index(20 * HOUR) / a.index(8 * HOUR)
    assert D("0.6") < trough < D("0.8") and D("1.25") < rebound < D("1.6")


trade = st.tuples(st.sampled_from(["buy", "sell"]), st.integers(min_value=1, max_value=40),
                  st.integers(min_value=-3000, max_value=3000))


@settings(max_examples=40)
@given(st.lists(trade, min_size=1, max_size=12), st.sampled_from(["isolated", "cross"]))
def test_money_is_conserved_cash_plus_margin_moves_by_pnl_minus_fees(trades: list[tuple[str, int, int]],
                                                                       mode: str) -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    start = usdt_cash_and_margin(ex)
    for side, lots, move in trades:
        ex.set_price(BTC_SWAP, D(60000 + move))
        try:
            ex.place_order(swap_order(side, str(D(lots) / 100), margin_mode=mode))
        except Reject as exc:
            assert exc.reason == Reason.INSUFFICIENT_FUNDS
    realised = sum((f.pnl for f in ex.fills(BTC_SWAP)), D(0))
    fees = sum((f.fee for f in ex.fills(BTC_SWAP)), D(0))
    assert usdt_cash_and_margin(ex) - start == realised - fees
    net = sum((f.qty if f.side == "buy" else -f.qty for f in ex.fills(BTC_SWAP)), D(0))
    held = ex.positions()
    assert (held[0].rec.qty if held else D(0)) == net


def test_cross_positions_liquidate_when_cash_and_pnl_reach_maintenance() -> None:
    ex = Exchange.create(seed=1, scenario="calm", balances={"trading": {"USDT": D(3000)}, "funding": {}})
    ex.set_leverage(BTC_SWAP, D(50), "cross")
    ex.place_order(swap_order("buy", "1", margin_mode="cross"))
    [view] = ex.positions()
    assert view.liq_price is not None and view.liq_price < view.mark
    ex.set_price(BTC_SWAP, view.liq_price + D(50))
    assert ex.positions(), "above the cross liquidation price the position lives"
    ex.set_price(BTC_SWAP, view.liq_price - D(50))
    assert ex.positions() == []
    assert ex.state.balances["trading"]["USDT"] >= 0, "cross: the cash never goes under zero"


op = st.one_of(
    st.tuples(st.just("limit"), st.sampled_from(["buy", "sell"]), st.integers(-40, 40), st.integers(1, 30)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.integers(1, 120)),
    st.tuples(st.just("price"), st.integers(-2000, 2000)),
)


@settings(max_examples=30)
@given(st.lists(op, min_size=1, max_size=25))
def test_live_indexes_always_match_a_full_scan(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    ex = Exchange.create(seed=2, scenario="trend")
    for item in ops:
        try:
            if item[0] == "limit":
                _, side, offset_bp, lots = item
                px = (ex.mark_price(BTC_SWAP) * (1 + D(offset_bp) / 10_000)).quantize(D("0.1"))
                ex.place_order(swap_order(side, str(D(lots) / 100), "limit", str(px), margin_mode="cross"))
            elif item[0] == "cancel":
                ids = sorted(ex.state.orders)
                if ids:
                    ex.cancel_order(BTC_SWAP, ord_id=ids[item[1] % len(ids)])
            elif item[0] == "advance":
                ex.clock.advance(item[1] * 10_000)  # type: ignore[attr-defined]
            else:
                ex.set_price(BTC_SWAP, D(60000 + item[1]))
        except Reject:
            pass
        assert set(ex._live) == {o.ord_id for o in ex.state.orders.values() if o.is_live}
        assert all(o.frozen >= 0 for o in ex.state.orders.values())
        assert all(o.frozen == 0 for o in ex.state.orders.values() if not o.is_live)


def test_taker_depth_is_consumed_within_a_step_and_refills_at_the_next() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    asks = ex.book(BTC_SWAP, 5).asks
    ex.place_order(swap_order("buy", "0.5"))  # takes the whole best level
    assert ex.book(BTC_SWAP, 5).asks[0] == asks[1]
    ex.place_order(swap_order("buy", "0.2"))
    assert ex.fills(BTC_SWAP)[-1].price == asks[1][0]
    assert ex.book(BTC_SWAP, 5).asks[0] == (asks[1][0], asks[1][1] - D("0.2"))
    ex.clock.advance(10_000)  # type: ignore[attr-defined]
    refilled = ex.book(BTC_SWAP, 5)
    assert refilled.asks[0][1] == asks[0][1]


@settings(max_examples=25)
@given(st.sampled_from(["buy", "sell"]), st.integers(min_value=2, max_value=50), st.integers(min_value=1, max_value=90))
def test_liquidation_happens_exactly_at_the_stated_price(side: str, leverage: int, lots: int) -> None:
    ex = Exchange.create(seed=8, scenario="calm")
    ex.set_leverage(BTC_SWAP, D(leverage), "isolated")
    ex.place_order(swap_order(side, str(D(lots) / 100)))
    [view] = ex.positions()
    liq = view.liq_price
    assert liq is not None
    tick = D("0.1")
    safe, through = (liq + tick, liq) if side == "buy" else (liq - tick, liq)
    ex.set_price(BTC_SWAP, safe)
    assert len(ex.positions()) == 1
    ex.set_price(BTC_SWAP, through)
    assert ex.positions() == []


def test_the_engine_never_reads_the_wall_clock() -> None:
    import ast
    from pathlib import Path

    import crypto.fakex.engine as engine

    for path in Path(engine.__file__).parent.glob("*.py"):
        if path.name == "clock.py":  # the one place wall time enters, as the serve-mode clock
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"time", "datetime"}, path.name


def test_lowering_isolated_leverage_draws_margin_and_moves_the_liquidation_price() -> None:
    ex = Exchange.create(seed=1, scenario="calm")
    ex.set_leverage(BTC_SWAP, D(5), "isolated")
    ex.place_order(swap_order("buy", "0.5"))
    [at5] = ex.positions()
    cash5 = ex.state.balances["trading"]["USDT"]
    ex.set_leverage(BTC_SWAP, D(1), "isolated")
    [at1] = ex.positions()
    drawn = at1.rec.margin - at5.rec.margin
    assert drawn == (D("0.5") * at5.rec.entry * (1 - D(1) / 5)).quantize(D("1e-12"))
    assert ex.state.balances["trading"]["USDT"] == cash5 - drawn
    assert at1.liq_price is not None and at5.liq_price is not None and at1.liq_price < at5.liq_price
    ex.set_leverage(BTC_SWAP, D(5), "isolated")
    assert ex.positions()[0].rec.margin == at5.rec.margin
    poor = Exchange.create(seed=1, scenario="calm", balances={"trading": {"USDT": D(7000)}, "funding": {}})
    poor.set_leverage(BTC_SWAP, D(5), "isolated")
    poor.place_order(swap_order("buy", "0.5"))
    with pytest.raises(Reject) as exc:
        poor.set_leverage(BTC_SWAP, D(1), "isolated")
    assert exc.value.reason == Reason.INSUFFICIENT_FUNDS
