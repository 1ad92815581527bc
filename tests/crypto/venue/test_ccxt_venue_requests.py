"""CcxtVenue on an unmodified ccxt okx with canned OKX answers: what it sends, how it reads the answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.oms.reasons import VenueReason
from crypto.venue.ccxt_venue import CcxtVenue
from crypto.venue.factory import VenueCredentials, make_exchange
from crypto.venue.types import OrderRequest, VenueError
from tests.crypto.venue.okx_canned import CannedOkx, ok

D = Decimal
R = VenueReason
SWAP = "BTC/USDT:USDT"


@pytest.fixture
def venue() -> CcxtVenue:
    exchange = make_exchange("okx-fake", "http://127.0.0.1:1", VenueCredentials(api_key="k", secret="s",
                                                                                   passphrase="p"))
    exchange.fetch = CannedOkx(exchange)
    return CcxtVenue(exchange, name="okx")


@pytest.fixture
def canned(venue: CcxtVenue) -> CannedOkx:
    hook = venue.exchange.fetch
    assert isinstance(hook, CannedOkx)
    return hook


def order_row(**over: Any) -> dict[str, Any]:
    row = {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "ordId": "77", "clOrdId": "c1", "px": "50000",
           "sz": "150", "ordType": "limit", "side": "buy", "posSide": "net", "tdMode": "isolated",
           "accFillSz": "50", "avgPx": "50000", "state": "partially_filled", "fee": "-0.1", "feeCcy": "USDT",
           "reduceOnly": "false", "cTime": "1700000000000", "uTime": "1700000000000"}
    row.update(over)
    return row


def test_markets_are_in_base_units(venue: CcxtVenue) -> None:
    markets = venue.markets()
    btc = markets[SWAP]
    assert (btc.contract_size, btc.qty_step, btc.min_qty, btc.tick) == (D("0.01"), D("0.0001"), D("0.0001"), D("0.1"))
    assert btc.max_leverage == D(100) and btc.settle == "USDT" and btc.is_swap
    eth = markets["ETH/USDT:USDT"]
    assert (eth.contract_size, eth.qty_step) == (D("0.1"), D("0.001"))
    spot = markets["BTC/USDT"]
    assert (spot.contract_size, spot.qty_step, spot.min_qty) == (D(1), D("0.00000001"), D("0.00001"))
    # the account's fee rates: makerU/takerU for USDT-margined swaps, sign turned to "positive = paid"
    assert (btc.maker_fee, btc.taker_fee) == (D("0.0002"), D("0.0005"))
    assert (spot.maker_fee, spot.taker_fee) == (D("0.0008"), D("0.001"))


def test_limit_order_sends_contracts_isolated_net_and_reads_back_base(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "trade/order", ok([{"ordId": "77", "clOrdId": "c1", "sCode": "0", "sMsg": ""}]))
    canned.route("GET", "trade/order", ok([order_row()]))
    order = venue.place_order(OrderRequest(symbol=SWAP, side="buy", qty=D("1.50009"), type="limit",
                                           client_order_id="c1", price=D("50000")))
    (sent,) = canned.sent("POST", "trade/order")
    assert sent["sz"] == "150"  # 1.50009 BTC rounds down to 150 contracts of 0.01
    assert (sent["tdMode"], sent["posSide"], sent["clOrdId"], sent["ordType"]) == ("isolated", "net", "c1", "limit")
    assert (order.qty, order.filled, order.remaining) == (D("1.5"), D("0.5"), D("1.0"))
    assert order.status == "open" and order.fee == D("0.1") and order.venue_order_id == "77"


def test_stop_market_is_an_algo_trigger_with_reduce_only(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "trade/order-algo", ok([{"algoId": "9", "algoClOrdId": "s1", "clOrdId": "s1",
                                                  "sCode": "0", "sMsg": ""}]))
    canned.route("GET", "trade/order", {"code": "51603", "msg": "Order does not exist", "data": []})
    canned.route("GET", "trade/order-algo", ok([{
        "instType": "SWAP", "instId": "BTC-USDT-SWAP", "algoId": "9", "algoClOrdId": "s1", "clOrdId": "",
        "ordType": "trigger", "side": "sell", "sz": "100", "triggerPx": "45000", "ordPx": "-1",
        "state": "live", "reduceOnly": "true", "tdMode": "isolated", "cTime": "1700000000000"}]))
    order = venue.place_order(OrderRequest(symbol=SWAP, side="sell", qty=D(1), type="stop_market",
                                           client_order_id="s1", trigger_price=D("45000"), reduce_only=True))
    (sent,) = canned.sent("POST", "trade/order-algo")
    assert sent["ordType"] == "trigger" and sent["orderPx"] == "-1" and sent["triggerPx"] == "45000"
    assert sent["algoClOrdId"] == "s1" and sent["reduceOnly"] is True and sent["sz"] == "100"
    assert order.type == "stop_market" and order.client_order_id == "s1" and order.reduce_only
    assert order.trigger_price == D(45000) and order.price is None and order.qty == D(1)


def test_post_only_cancelled_by_the_venue_is_post_only_would_take(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "trade/order", ok([{"ordId": "5", "clOrdId": "p1", "sCode": "0", "sMsg": ""}]))
    canned.route("GET", "trade/order", ok([order_row(ordId="5", clOrdId="p1", ordType="post_only",
                                                     accFillSz="0", avgPx="", state="canceled",
                                                     cancelSource="31", fee="0")]))
    with pytest.raises(VenueError) as info:
        venue.place_order(OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="limit", client_order_id="p1",
                                       price=D("50000"), post_only=True))
    assert info.value.reason is R.POST_ONLY_WOULD_TAKE
    assert canned.sent("POST", "trade/order")[0]["ordType"] == "post_only"


@pytest.mark.parametrize(("request_", "reason"), [
    (OrderRequest(symbol=SWAP, side="buy", qty=D("0.00009"), type="limit", client_order_id="a", price=D(1)),
     R.MIN_QTY),
    (OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="limit", client_order_id="a", price=D("50000.05")),
     R.TICK_SIZE),
    (OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="limit", client_order_id="has-dash", price=D(1)),
     R.INVALID_ORDER),
    (OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="limit", client_order_id="x" * 33, price=D(1)),
     R.INVALID_ORDER),
    (OrderRequest(symbol="BTC/USDT", side="sell", qty=D(1), type="market", client_order_id="a",
                  reduce_only=True), R.INVALID_ORDER),
    (OrderRequest(symbol="NOPE/USDT", side="buy", qty=D(1), type="market", client_order_id="a"),
     R.INVALID_ORDER),
    (OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="market", client_order_id="a", post_only=True),
     R.INVALID_ORDER),
])
def test_refused_before_sending(venue: CcxtVenue, canned: CannedOkx, request_: OrderRequest,
                                reason: VenueReason) -> None:
    with pytest.raises(VenueError) as info:
        venue.place_order(request_)
    assert info.value.reason is reason
    assert not canned.sent("POST", "trade/order")


def test_duplicate_client_id_from_the_venue(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "trade/order", {"code": "1", "msg": "", "data": [
        {"ordId": "", "clOrdId": "c1", "sCode": "51016", "sMsg": "Duplicated clOrdId"}]})
    with pytest.raises(VenueError) as info:
        venue.place_order(OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="limit", client_order_id="c1",
                                       price=D("50000")))
    assert info.value.reason is R.DUPLICATE_CLIENT_ID and info.value.venue_code == "51016"


def test_positions_signed_in_base_units(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("GET", "account/positions", ok([{
        "instType": "SWAP", "instId": "BTC-USDT-SWAP", "pos": "-250", "posSide": "net", "avgPx": "50000",
        "markPx": "49000", "liqPx": "60000", "margin": "1250", "mgnMode": "isolated", "lever": "10",
        "upl": "25", "notionalUsd": "122500", "mmr": "12", "imr": "", "cTime": "1", "uTime": "1"},
        {"instType": "SWAP", "instId": "ETH-USDT-SWAP", "pos": "0", "posSide": "net", "avgPx": "",
         "markPx": "3000", "mgnMode": "isolated", "lever": "3", "upl": "0", "notionalUsd": "0"}]))
    (pos,) = venue.positions()
    assert pos.qty == D("-2.5") and pos.entry_price == D(50000) and pos.mark_price == D(49000)
    assert pos.margin == D(1250) and pos.margin_mode == "isolated" and pos.liq_price == D(60000)
    assert pos.unrealized_pnl == D(25) and pos.leverage == D(10)


def test_funding_rate_interval_is_read_from_the_venue(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("GET", "public/funding-rate", ok([{
        "instId": "BTC-USDT-SWAP", "instType": "SWAP", "fundingRate": "0.0075", "nextFundingRate": "",
        "fundingTime": "1700006400000", "nextFundingTime": "1700020800000"}]))
    rate = venue.funding_rate(SWAP)
    assert rate.rate == D("0.0075") and rate.interval_ms == 4 * 3_600_000


def test_funding_payments_signed_by_rate(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("GET", "account/bills-archive", ok([{
        "billId": "b1", "ccy": "USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP", "type": "8",
        "subType": "174", "balChg": "5", "bal": "1005", "sz": "100", "px": "50000", "ts": "1700006400000"}]))
    canned.route("GET", "public/funding-rate-history", ok([
        {"instId": "BTC-USDT-SWAP", "fundingRate": "0.0001", "realizedRate": "0.0001",
         "fundingTime": "1700006400000"}]))
    (payment,) = venue.funding_payments(SWAP)
    # received 5 USDT at a positive rate: the position was short 1 BTC (100 contracts of 0.01)
    assert payment.amount == D(5) and payment.rate == D("0.0001") and payment.position_qty == D(-1)


def test_cancel_falls_back_to_the_algo_book(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "trade/cancel-order", {"code": "1", "msg": "", "data": [
        {"ordId": "", "clOrdId": "s1", "sCode": "51400", "sMsg": "Order does not exist"}]})
    canned.route("POST", "trade/cancel-algos", ok([{"algoId": "9", "algoClOrdId": "s1", "sCode": "0"}]))
    canned.route("GET", "trade/order", {"code": "51603", "msg": "Order does not exist", "data": []})
    canned.route("GET", "trade/order-algo", ok([{
        "instType": "SWAP", "instId": "BTC-USDT-SWAP", "algoId": "9", "algoClOrdId": "s1", "ordType": "trigger",
        "side": "sell", "sz": "100", "triggerPx": "45000", "ordPx": "-1", "state": "canceled",
        "reduceOnly": "true", "cTime": "1700000000000"}]))
    order = venue.cancel_order(SWAP, "s1")
    assert order is not None and order.status == "canceled" and order.type == "stop_market"
    assert canned.sent("POST", "trade/cancel-algos") == [[{"instId": "BTC-USDT-SWAP", "algoClOrdId": "s1"}]]


def test_fetch_unknown_order_is_none(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("GET", "trade/order", {"code": "51603", "msg": "Order does not exist", "data": []})
    canned.route("GET", "trade/order-algo", {"code": "51603", "msg": "Order does not exist", "data": []})
    assert venue.fetch_order(SWAP, "ghost") is None


def test_transfer_sends_exact_amount_and_client_id(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "asset/transfer", ok([{"transId": "t9", "ccy": "USDT", "clientId": "tr1",
                                                "from": "6", "amt": "100.25", "to": "18"}]))
    transfer = venue.transfer("USDT", D("100.25"), "funding", "trading", "tr1")
    (sent,) = canned.sent("POST", "asset/transfer")
    assert sent == {"ccy": "USDT", "amt": "100.25", "type": "0", "from": "6", "to": "18", "clientId": "tr1"}
    assert transfer.status == "ok" and transfer.venue_transfer_id == "t9"


def test_set_leverage_isolated_net(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "account/set-leverage", ok([{"lever": "3", "mgnMode": "isolated",
                                                      "instId": "BTC-USDT-SWAP", "posSide": "net"}]))
    venue.set_leverage(SWAP, D(3))
    (sent,) = canned.sent("POST", "account/set-leverage")
    assert sent == {"lever": 3, "mgnMode": "isolated", "instId": "BTC-USDT-SWAP", "posSide": "net"}
    with pytest.raises(VenueError) as info:
        venue.set_leverage(SWAP, D(101))
    assert info.value.reason is R.LEVERAGE_REFUSED


def test_add_margin_is_exact(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "account/position/margin-balance", ok([{"instId": "BTC-USDT-SWAP", "amt": "12.5",
                                                                 "type": "add", "posSide": "net"}]))
    venue.add_margin(SWAP, D("12.5"))
    (sent,) = canned.sent("POST", "account/position/margin-balance")
    assert sent["amt"] == "12.5" and sent["type"] == "add" and sent["posSide"] == "net"


def test_transfer_key_outside_okx_rule_is_hashed_stably(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("POST", "asset/transfer", ok([{"transId": "t10", "ccy": "USDT", "from": "18", "amt": "1",
                                                "to": "6"}]))
    first = venue.transfer("USDT", D(1), "trading", "funding", "tr-trading-funding-42")
    venue.transfer("USDT", D(1), "trading", "funding", "tr-trading-funding-42")
    ids = [sent["clientId"] for sent in canned.sent("POST", "asset/transfer")]
    assert ids[0] == ids[1] and len(ids[0]) == 32 and ids[0].isalnum()
    assert first.transfer_id == "tr-trading-funding-42"  # the caller's key comes back unchanged


def test_long_short_position_mode_is_refused_then_switched(venue: CcxtVenue, canned: CannedOkx) -> None:
    canned.route("GET", "account/config", ok([{"uid": "1", "acctLv": "2", "posMode": "long_short_mode"}]))
    request = OrderRequest(symbol=SWAP, side="buy", qty=D(1), type="market", client_order_id="m1")
    with pytest.raises(VenueError) as info:
        venue.place_order(request)
    assert info.value.reason is R.INVALID_ORDER and info.value.details["posMode"] == "long_short_mode"
    assert not canned.sent("POST", "trade/order")
    canned.route("POST", "account/set-position-mode", ok([{"posMode": "net_mode"}]))
    venue.set_net_mode()
    assert canned.sent("POST", "account/set-position-mode") == [{"posMode": "net_mode"}]
    canned.route("POST", "trade/order", ok([{"ordId": "8", "clOrdId": "m1", "sCode": "0", "sMsg": ""}]))
    canned.route("GET", "trade/order", ok([order_row(ordId="8", clOrdId="m1", ordType="market", px="",
                                                     sz="100", accFillSz="100", state="filled")]))
    assert venue.place_order(request).status == "closed"
