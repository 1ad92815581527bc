"""The venue contract: behaviours every ``Venue`` shows, run through real ccxt against the local exchange.

Parametrized over the venue fixtures in conftest.py (OKX v5; Binance portfolio margin). Quantities are
base units throughout: a test never sees a contract count.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.oms.reasons import VenueReason
from crypto.venue.factory import make_venue
from crypto.venue.types import Market, OrderRequest, VenueError
from tests.crypto.venue.conftest import VenueCase, new_client_id

D = Decimal
R = VenueReason


def resting_buy(case: VenueCase, market: Market, qty: Decimal, cid: str | None = None) -> OrderRequest:
    """A limit buy 5% under the bid, rounded down to the tick: rests, does not fill."""
    bid = case.venue.ticker(market.symbol).bid
    price = (bid * D("0.95") / market.tick).to_integral_value(rounding="ROUND_DOWN") * market.tick
    return OrderRequest(symbol=market.symbol, side="buy", qty=qty, type="limit", price=price,
                        client_order_id=cid or new_client_id(), margin_mode="isolated" if market.is_swap else None,
                        account=case.swap_account if market.is_swap else case.spot_account)


def tradable_qty(case: VenueCase, market: Market, factor: int = 2) -> Decimal:
    """``factor`` x the smallest on-lot quantity that passes min size and min notional at 95% of the bid."""
    price = case.venue.ticker(market.symbol).bid * D("0.95")
    lots = max(market.min_qty / market.qty_step, (market.min_notional / price / market.qty_step)
               .to_integral_value(rounding="ROUND_UP"))
    return market.qty_step * lots * factor


def live_ids(case: VenueCase, symbol: str, cid: str) -> list[str]:
    return [o.venue_order_id for o in case.venue.open_orders(symbol) if o.client_order_id == cid]


def test_markets_speak_base_units(case: VenueCase) -> None:
    swap = case.venue.market(case.swap)
    assert swap.is_swap and swap.contract_size > 0 and swap.settle == "USDT"
    assert swap.qty_step == swap.qty_step.normalize() and swap.min_qty >= swap.qty_step
    assert case.venue.market(case.spot).contract_size == 1


def test_prices_are_positive_and_ordered(case: VenueCase) -> None:
    ticker = case.venue.ticker(case.swap)
    assert D(0) < ticker.bid <= ticker.ask
    book = case.venue.order_book(case.swap, depth=5)
    assert book.bids and book.asks and book.bids[0][0] < book.asks[0][0]
    assert all(qty > 0 for _, qty in book.bids + book.asks)
    assert case.venue.mark_price(case.swap) > 0
    assert case.venue.index_price(case.swap) > 0
    assert case.venue.index_price(case.spot) == case.venue.index_price(case.swap)  # one index per pair
    assert case.venue.mark_price(case.spot) > 0


def test_place_fetch_cancel_round_trip_by_client_id(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, market.qty_step * 3)
    placed = case.venue.place_order(request)
    assert placed.client_order_id == request.client_order_id and placed.status == "open"
    assert placed.qty == market.qty_step * 3 and placed.filled == 0
    fetched = case.venue.fetch_order(case.swap, request.client_order_id)
    assert fetched is not None and fetched.venue_order_id == placed.venue_order_id and fetched.is_live
    assert live_ids(case, case.swap, request.client_order_id) == [placed.venue_order_id]
    canceled = case.venue.cancel_order(case.swap, request.client_order_id)
    assert canceled is not None and canceled.status == "canceled"
    assert live_ids(case, case.swap, request.client_order_id) == []
    again = case.venue.fetch_order(case.swap, request.client_order_id)
    assert again is not None and again.status == "canceled"


def test_unknown_client_id_is_none(case: VenueCase) -> None:
    assert case.venue.fetch_order(case.swap, new_client_id()) is None
    assert case.venue.cancel_order(case.swap, new_client_id()) is None


def test_duplicate_client_id_refused_and_one_order_stays(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, market.qty_step * 2)
    first = case.venue.place_order(request)
    with pytest.raises(VenueError) as info:
        case.venue.place_order(request)
    assert info.value.reason is R.DUPLICATE_CLIENT_ID
    assert live_ids(case, case.swap, request.client_order_id) == [first.venue_order_id]


def test_off_lot_quantity_rounds_down_to_the_lot(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    meant = market.qty_step * D("2.7")
    placed = case.raw.place_order(resting_buy(case, market, meant))
    assert placed.qty == market.qty_step * 2  # never more than meant
    fetched = case.venue.fetch_order(case.swap, placed.client_order_id)
    assert fetched is not None and fetched.qty == market.qty_step * 2


def test_less_than_one_lot_is_min_qty(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    with pytest.raises(VenueError) as info:
        case.raw.place_order(resting_buy(case, market, market.qty_step / 2))
    assert info.value.reason is R.MIN_QTY


def test_too_small_is_refused_by_precheck_and_by_the_venue(case: VenueCase) -> None:
    market = case.venue.market(case.spot)
    if market.min_notional > 0:
        price_ref = case.venue.ticker(case.spot).bid
        qty = max(market.min_qty, (market.min_notional / price_ref / 2 / market.qty_step).to_integral_value()
                  * market.qty_step)
        expected = {R.MIN_NOTIONAL}
    else:
        qty = market.min_qty - market.qty_step  # on the lot, under the venue's minimum size
        expected = {R.MIN_QTY}
    assert qty >= market.qty_step
    for venue in (case.venue, case.raw):  # refused locally, then by the venue's own code
        with pytest.raises(VenueError) as info:
            venue.place_order(resting_buy(case, market, qty))
        assert info.value.reason in expected, (venue.precheck, info.value)
    assert info.value.venue_code not in ("", "LOCAL")


def test_partial_fill_shows_in_order_position_fills_and_balance(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    before = case.venue.balances(case.swap_account or "trading")["USDT"]
    book = case.venue.order_book(case.swap, depth=5)
    best_ask, best_qty = book.asks[0]
    wanted = best_qty + market.qty_step * 10
    request = OrderRequest(symbol=case.swap, side="buy", qty=wanted, type="limit", price=best_ask,
                           client_order_id=new_client_id(), margin_mode="isolated", account=case.swap_account)
    case.venue.set_leverage(case.swap, D(3))
    case.venue.place_order(request)
    order = case.venue.fetch_order(case.swap, request.client_order_id)
    assert order is not None and 0 < order.filled < order.qty and order.status == "open"
    assert order.remaining == order.qty - order.filled
    (position,) = case.venue.positions([case.swap])
    assert position.qty == order.filled  # base units, signed long
    fills = [f for f in case.venue.fills(case.swap) if f.client_order_id == request.client_order_id]
    assert sum(f.qty for f in fills) == order.filled
    assert all(f.price == best_ask and f.qty > 0 for f in fills)
    after = case.venue.balances(case.swap_account or "trading")["USDT"]
    assert after.free < before.free  # margin and the taker fee came out of the free balance
    assert after.used > before.used and after.total == after.free + after.used


def test_funding_rate_interval_is_read_from_the_venue(case: VenueCase) -> None:
    rate = case.venue.funding_rate(case.swap)
    assert rate.interval_ms in (3_600_000, 2 * 3_600_000, 4 * 3_600_000, 8 * 3_600_000)
    assert rate.next_funding_time_ms is not None and rate.next_funding_time_ms > rate.funding_time_ms
    assert abs(rate.rate) < D("0.05")


def test_stop_market_reduce_only_is_accepted_and_listed(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    case.venue.set_leverage(case.swap, D(2))
    opened = OrderRequest(symbol=case.swap, side="buy", qty=market.qty_step * 10, type="market",
                          client_order_id=new_client_id(), margin_mode="isolated", account=case.swap_account)
    case.venue.place_order(opened)
    (position,) = case.venue.positions([case.swap])
    mark = case.venue.mark_price(case.swap)
    trigger = (mark * D("0.9") / market.tick).to_integral_value() * market.tick
    stop = OrderRequest(symbol=case.swap, side="sell", qty=position.qty, type="stop_market",
                        trigger_price=trigger, reduce_only=True, client_order_id=new_client_id(),
                        margin_mode="isolated", account=case.swap_account)
    placed = case.venue.place_order(stop)
    assert placed.type == "stop_market" and placed.reduce_only and placed.trigger_price == trigger
    listed = [o for o in case.venue.open_orders(case.swap) if o.client_order_id == stop.client_order_id]
    assert len(listed) == 1 and listed[0].type == "stop_market" and listed[0].reduce_only
    assert listed[0].qty == position.qty
    canceled = case.venue.cancel_order(case.swap, stop.client_order_id)
    assert canceled is not None and canceled.status == "canceled"


@pytest.mark.parametrize("kind", ["swap", "spot"])
def test_post_only_that_would_take_is_refused(case: VenueCase, kind: str) -> None:
    symbol = case.swap if kind == "swap" else case.spot
    market = case.venue.market(symbol)
    ask = case.venue.ticker(symbol).ask
    request = OrderRequest(symbol=symbol, side="buy", qty=tradable_qty(case, market), type="limit", price=ask,
                           post_only=True, client_order_id=new_client_id(),
                           margin_mode="isolated" if market.is_swap else None,
                           account=case.swap_account if market.is_swap else case.spot_account)
    with pytest.raises(VenueError) as info:
        case.venue.place_order(request)
    assert info.value.reason is R.POST_ONLY_WOULD_TAKE
    assert live_ids(case, symbol, request.client_order_id) == []
    assert case.venue.positions([case.swap]) == []


def test_post_only_that_rests_is_accepted(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, tradable_qty(case, market))
    placed = case.venue.place_order(OrderRequest(**{**request.__dict__, "post_only": True}))
    assert placed.post_only and placed.is_live and placed.filled == 0


def test_lost_response_is_unknown_outcome_then_found_by_client_id(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, market.qty_step * 4)
    case.fx.inject("lose_response", path=case.order_path, method="POST")  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as info:
        case.venue.place_order(request)
    assert info.value.reason is R.UNKNOWN_OUTCOME
    found = case.venue.fetch_order(case.swap, request.client_order_id)
    assert found is not None and found.is_live and found.qty == request.qty
    with pytest.raises(VenueError) as retry:  # the same id again: the venue keeps one order
        case.venue.place_order(request)
    assert retry.value.reason is R.DUPLICATE_CLIENT_ID
    assert live_ids(case, case.swap, request.client_order_id) == [found.venue_order_id]


def test_refused_connection_is_network(case: VenueCase) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    venue = make_venue(f"{'okx' if case.name == 'okx' else 'binance-pm'}-fake", f"http://127.0.0.1:{port}", None)
    with pytest.raises(VenueError) as info:
        venue.markets()
    assert info.value.reason is R.NETWORK


def test_bad_signature_is_auth(case: VenueCase) -> None:
    from crypto.venue.factory import VenueCredentials

    creds = case.fx.credentials  # type: ignore[attr-defined]
    wrong = VenueCredentials(api_key=creds.api_key, secret="not-the-secret", passphrase=creds.passphrase)
    venue = make_venue(f"{'okx' if case.name == 'okx' else 'binance-pm'}-fake", case.fx.url, wrong)  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as info:
        venue.markets()  # public on OKX; Binance also loads the margin pairs, a signed request
        venue.balances(case.swap_account or "trading")
    assert info.value.reason is R.AUTH


# --- account behaviours -----------------------------------------------------------------------------------

def engine_id(market: Market) -> str:
    """The local exchange's instrument key (its engine uses OKX-style ids for every dialect)."""
    return f"{market.base}-{market.quote}-SWAP" if market.is_swap else f"{market.base}-{market.quote}"


def open_position(case: VenueCase, side: str, lots: int, leverage: str = "3") -> Market:
    market = case.venue.market(case.swap)
    case.venue.set_leverage(case.swap, D(leverage))
    case.venue.place_order(OrderRequest(symbol=case.swap, side=side, qty=market.qty_step * lots,  # type: ignore[arg-type]
                                        type="market", client_order_id=new_client_id(), margin_mode="isolated",
                                        account=case.swap_account))
    return market


def test_venue_clock_is_the_exchange_clock(case: VenueCase) -> None:
    assert case.venue.now_ms() == case.fx.now_ms()  # type: ignore[attr-defined]


def test_short_position_is_negative_base_units(case: VenueCase) -> None:
    market = open_position(case, "sell", 20)
    (position,) = case.venue.positions([case.swap])
    assert position.qty == -(market.qty_step * 20)
    assert position.entry_price > 0 and position.leverage == D(3)
    assert position.notional == abs(position.qty) * position.mark_price


def test_funding_settles_and_the_payment_is_signed(case: VenueCase) -> None:
    market = open_position(case, "sell", 20)
    rate = case.venue.funding_rate(case.swap)
    case.fx.exchange.set_funding_rate(engine_id(market), D("0.0005"))  # type: ignore[attr-defined]
    case.fx.advance(rate.funding_time_ms - case.venue.now_ms() + 1_000)  # type: ignore[attr-defined]
    payments = [p for p in case.venue.funding_payments(case.swap) if p.ts_ms == rate.funding_time_ms]
    assert len(payments) == 1
    (payment,) = payments
    assert payment.rate == D("0.0005")
    assert payment.amount > 0  # a short receives a positive rate
    assert payment.position_qty == -(market.qty_step * 20)
    history = case.venue.funding_history(case.swap)
    assert history[-1].funding_time_ms == rate.funding_time_ms and history[-1].rate == D("0.0005")


def test_funding_interval_shortens_at_the_cap(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    rate = case.venue.funding_rate(case.swap)
    assert rate.interval_ms == 8 * 3_600_000
    case.fx.exchange.set_funding_rate(engine_id(market), D("0.00375"))  # type: ignore[attr-defined]  # at the cap
    case.fx.advance(rate.funding_time_ms - case.venue.now_ms() + 1_000)  # type: ignore[attr-defined]
    after = case.venue.funding_rate(case.swap)
    assert after.interval_ms == 4 * 3_600_000  # read from the venue, not assumed


def test_rate_limit_is_rate_limit_and_places_nothing(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    qty = tradable_qty(case, market)
    endpoint = "trade/order" if case.name == "okx" else "binance:orders"
    case.fx.set_rate_limit(endpoint, 1, 60_000)  # type: ignore[attr-defined]
    case.venue.place_order(resting_buy(case, market, qty))
    second = resting_buy(case, market, qty)
    with pytest.raises(VenueError) as info:
        case.venue.place_order(second)
    assert info.value.reason is R.RATE_LIMIT and info.value.reason.retryable
    case.fx.set_rate_limit(endpoint, 1000, 60_000)  # type: ignore[attr-defined]  # lookups may share the limit
    assert case.venue.fetch_order(case.swap, second.client_order_id) is None


def test_leverage_above_the_market_maximum_is_refused(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    assert market.max_leverage is not None
    with pytest.raises(VenueError) as info:
        case.venue.set_leverage(case.swap, market.max_leverage + 1)
    assert info.value.reason is R.LEVERAGE_REFUSED


def test_stop_triggers_and_closes_the_position(case: VenueCase) -> None:
    market = open_position(case, "buy", 10, leverage="2")
    mark = case.venue.mark_price(case.swap)
    trigger = (mark * D("0.97") / market.tick).to_integral_value() * market.tick
    stop = OrderRequest(symbol=case.swap, side="sell", qty=market.qty_step * 10, type="stop_market",
                        trigger_price=trigger, reduce_only=True, client_order_id=new_client_id(),
                        margin_mode="isolated", account=case.swap_account)
    case.venue.place_order(stop)
    case.fx.exchange.set_price(engine_id(market), mark * D("0.95"))  # type: ignore[attr-defined]
    case.fx.advance(1_000)  # type: ignore[attr-defined]
    assert case.venue.positions([case.swap]) == []
    done = case.venue.fetch_order(case.swap, stop.client_order_id)
    assert done is not None and done.status == "closed"


def test_insufficient_margin_is_insufficient_funds(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    case.venue.set_leverage(case.swap, D(1))
    free = case.venue.balances(case.swap_account or "trading")["USDT"].free
    price = case.venue.ticker(case.swap).bid
    lots = (free * 2 / price / market.qty_step).to_integral_value()
    with pytest.raises(VenueError) as info:
        case.venue.place_order(OrderRequest(symbol=case.swap, side="buy", qty=market.qty_step * lots, type="limit",
                                            price=(price * D("0.9") / market.tick).to_integral_value() * market.tick,
                                            client_order_id=new_client_id(), margin_mode="isolated",
                                            account=case.swap_account))
    assert info.value.reason is R.INSUFFICIENT_FUNDS


def test_spot_buy_shows_in_base_balance(case: VenueCase) -> None:
    market = case.venue.market(case.spot)
    before = case.venue.balances(case.spot_account or "trading").get(market.base)
    qty = max(market.min_qty * 10, (D(20) / case.venue.ticker(case.spot).ask / market.qty_step)
              .to_integral_value(rounding="ROUND_UP") * market.qty_step)
    request = OrderRequest(symbol=case.spot, side="buy", qty=qty, type="market", client_order_id=new_client_id(),
                           account=case.spot_account)
    case.venue.place_order(request)
    order = case.venue.fetch_order(case.spot, request.client_order_id)
    assert order is not None and order.status == "closed" and order.filled == qty
    after = case.venue.balances(case.spot_account or "trading")[market.base]
    gained = after.total - (before.total if before else D(0))
    fills = [f for f in case.venue.fills(case.spot) if f.client_order_id == request.client_order_id]
    fee_in_base = sum((f.fee for f in fills if f.fee_asset == market.base), D(0))
    assert gained == qty - fee_in_base


# --- OKX only: transfers and isolated margin ---------------------------------------------------------------

def test_okx_transfer_moves_exact_amount_once(case: VenueCase) -> None:
    if case.name != "okx":
        pytest.skip("portfolio margin shares one margin: no transfers")
    funding_before = case.venue.balances("funding").get("USDT")
    trading_before = case.venue.balances("trading")["USDT"].total
    amount = D("12.345678")
    if funding_before is None or funding_before.free < amount:
        case.fx.exchange.deposit("funding", "USDT", D(100))  # type: ignore[attr-defined]
        funding_before = case.venue.balances("funding")["USDT"]
    transfer = case.venue.transfer("USDT", amount, "funding", "trading", "tr" + new_client_id())
    assert transfer.status == "ok" and transfer.venue_transfer_id
    assert case.venue.balances("funding")["USDT"].total == funding_before.total - amount
    assert case.venue.balances("trading")["USDT"].total == trading_before + amount


def test_okx_add_margin_raises_isolated_margin_exactly(case: VenueCase) -> None:
    if case.name != "okx":
        pytest.skip("portfolio margin has no isolated margin")
    open_position(case, "buy", 10)
    (before,) = case.venue.positions([case.swap])
    case.venue.add_margin(case.swap, D("7.5"))
    (after,) = case.venue.positions([case.swap])
    assert after.margin == before.margin + D("7.5")
    assert after.liq_price is not None and before.liq_price is not None and after.liq_price < before.liq_price


def test_market_fees_are_the_accounts(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    engine = case.fx.exchange.instruments[engine_id(market)]  # type: ignore[attr-defined]
    if case.name != "okx":
        pytest.skip("Binance PM fees: ccxt's published table (the commission endpoint is not modelled)")
    assert (market.maker_fee, market.taker_fee) == (engine.maker_fee, engine.taker_fee)
    spot = case.venue.market(case.spot)
    spot_engine = case.fx.exchange.instruments[engine_id(spot)]  # type: ignore[attr-defined]
    assert (spot.maker_fee, spot.taker_fee) == (spot_engine.maker_fee, spot_engine.taker_fee)


def test_positions_state_their_margin_mode(case: VenueCase) -> None:
    open_position(case, "buy", 10)
    (position,) = case.venue.positions([case.swap])
    # OKX: the isolated tdMode the order asked for; Binance PM: UM positions are cross by construction.
    assert position.margin_mode == ("isolated" if case.name == "okx" else "cross")


def test_okx_lost_transfer_answer_is_found_by_its_key(case: VenueCase) -> None:
    if case.name != "okx":
        assert case.venue.fetch_transfer("anything") is None
        return
    key = "tr-funding-trading-" + new_client_id()  # outside OKX's clientId rule: sent hashed, found the same way
    assert case.venue.fetch_transfer(key) is None
    case.fx.exchange.deposit("funding", "USDT", D(50))  # type: ignore[attr-defined]
    case.fx.inject("lose_response", path="/api/v5/asset/transfer", method="POST")  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as info:
        case.venue.transfer("USDT", D("5.5"), "funding", "trading", key)
    assert info.value.reason is R.UNKNOWN_OUTCOME
    found = case.venue.fetch_transfer(key)
    assert found is not None and found.status == "ok" and found.amount == D("5.5")
    assert (found.from_account, found.to_account, found.transfer_id) == ("funding", "trading", key)


# --- faults: the venue's outcome is unknown until looked up ------------------------------------------------

def test_dropped_before_processing_is_unknown_then_absent_then_resent_once(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, tradable_qty(case, market))
    case.fx.inject("disconnect", path=case.order_path, method="POST")  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as info:
        case.venue.place_order(request)
    # the client cannot tell "dropped before" from "dropped after": unknown, not a refusal
    assert info.value.reason is R.UNKNOWN_OUTCOME
    assert case.venue.fetch_order(case.swap, request.client_order_id) is None
    placed = case.venue.place_order(request)  # same id, sent again
    assert live_ids(case, case.swap, request.client_order_id) == [placed.venue_order_id]


def test_answer_held_past_the_timeout_is_unknown_then_found(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    creds = case.fx.credentials  # type: ignore[attr-defined]
    from crypto.venue.factory import VenueCredentials

    impatient = make_venue(f"{'okx' if case.name == 'okx' else 'binance-pm'}-fake", case.fx.url,  # type: ignore[attr-defined]
                           VenueCredentials(api_key=creds.api_key, secret=creds.secret, passphrase=creds.passphrase),
                           timeout_ms=300)
    request = resting_buy(case, market, tradable_qty(case, market))
    case.fx.inject("timeout", path=case.order_path, method="POST", ms=1_500)  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as info:
        impatient.place_order(request)
    assert info.value.reason is R.UNKNOWN_OUTCOME and info.value.details["ccxt"] == "RequestTimeout"
    found = case.venue.fetch_order(case.swap, request.client_order_id)
    assert found is not None and found.is_live


def test_orders_survive_a_venue_restart(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    request = resting_buy(case, market, tradable_qty(case, market))
    placed = case.venue.place_order(request)
    case.fx.restart()  # type: ignore[attr-defined]
    found = case.venue.fetch_order(case.swap, request.client_order_id)
    assert found is not None and found.venue_order_id == placed.venue_order_id and found.is_live


def test_lost_answer_on_a_market_order_then_resend_fills_once(case: VenueCase) -> None:
    # The venue refuses only a live duplicate id; a market order that filled at once is not live any more.
    market = case.venue.market(case.swap)
    case.venue.set_leverage(case.swap, D(3))
    qty = tradable_qty(case, market)
    request = OrderRequest(symbol=case.swap, side="buy", qty=qty, type="market", client_order_id=new_client_id(),
                           margin_mode="isolated", account=case.swap_account)
    case.fx.inject("lose_response", path=case.order_path, method="POST")  # type: ignore[attr-defined]
    with pytest.raises(VenueError) as lost:
        case.venue.place_order(request)
    assert lost.value.reason is R.UNKNOWN_OUTCOME
    for _ in range(4):  # the same intent sent again and again
        with pytest.raises(VenueError) as again:
            case.venue.place_order(request)
        assert again.value.reason is R.DUPLICATE_CLIENT_ID
    (position,) = case.venue.positions([case.swap])
    assert position.qty == qty  # one fill, not five


def test_post_only_refused_id_may_be_reused_for_a_resting_order(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    qty = tradable_qty(case, market)
    crossing = OrderRequest(symbol=case.swap, side="buy", qty=qty, type="limit", price=case.venue.ticker(case.swap).ask,
                            post_only=True, client_order_id=new_client_id(), margin_mode="isolated",
                            account=case.swap_account)
    with pytest.raises(VenueError) as info:
        case.venue.place_order(crossing)
    assert info.value.reason is R.POST_ONLY_WOULD_TAKE
    resting = resting_buy(case, market, qty, cid=crossing.client_order_id)
    placed = case.venue.place_order(OrderRequest(**{**resting.__dict__, "post_only": True}))
    assert placed.is_live and placed.client_order_id == crossing.client_order_id


def test_one_venue_object_serves_several_threads(case: VenueCase) -> None:
    from concurrent.futures import ThreadPoolExecutor

    market = case.venue.market(case.swap)
    qty = tradable_qty(case, market)
    base = resting_buy(case, market, qty)

    def round_trip(_: int) -> str:
        request = OrderRequest(**{**base.__dict__, "client_order_id": new_client_id()})
        case.venue.place_order(request)
        canceled = case.venue.cancel_order(case.swap, request.client_order_id)
        assert canceled is not None
        return canceled.status

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(round_trip, range(12)))
    assert statuses == ["canceled"] * 12
    assert case.venue.open_orders(case.swap) == []


def test_margin_mode_set_for_a_symbol_is_used_by_its_orders(case: VenueCase) -> None:
    market = case.venue.market(case.swap)
    if case.name != "okx":
        with pytest.raises(VenueError) as info:
            case.venue.set_margin_mode(case.swap, "isolated")
        assert info.value.reason is R.MARGIN_MODE_CONFLICT
        case.venue.set_margin_mode(case.swap, "cross")  # what PM is: accepted, nothing to change
        return
    case.venue.set_margin_mode(case.swap, "isolated")  # keeps the venue's current leverage for the mode
    case.venue.set_margin_mode(case.swap, "cross", D(2))
    case.venue.place_order(OrderRequest(symbol=case.swap, side="buy", qty=market.qty_step * 10, type="market",
                                        client_order_id=new_client_id()))  # no margin_mode: the symbol's
    (position,) = case.venue.positions([case.swap])
    assert position.margin_mode == "cross" and position.leverage == D(2)
