"""The Binance portfolio-margin dialect against the unmodified ``ccxt.binance`` (portfolioMargin option)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
import pytest
import requests

from crypto.fakex.server import FakeExchange

D = Decimal


def client(fx: FakeExchange, **config: object) -> ccxt.binance:
    creds = fx.credentials
    ex = ccxt.binance({"apiKey": creds.api_key, "secret": creds.secret, "enableRateLimit": False,
                       "options": {"portfolioMargin": True}, **config})
    for key, value in list(ex.urls["api"].items()):
        if isinstance(value, str):
            ex.urls["api"][key] = fx.url + urlsplit(value).path
    return ex


@pytest.fixture(scope="module")
def fx() -> Iterator[FakeExchange]:
    with FakeExchange.start(seed=11, scenario="calm", dialects=("binance",)) as handle:
        yield handle


@pytest.fixture(scope="module")
def bn(fx: FakeExchange) -> ccxt.binance:
    ex = client(fx)
    ex.load_markets()
    return ex


def body_code(exc: BaseException) -> int:
    text = str(exc)
    return int(json.loads(text[text.index("{"):])["code"])


def test_markets_carry_binance_filters(bn: ccxt.binance) -> None:
    um = bn.market("BTC/USDT:USDT")
    assert um["swap"] and um["linear"] and um["id"] == "BTCUSDT"
    assert um["precision"]["amount"] == 0.001 and um["limits"]["amount"]["min"] == 0.001
    assert um["limits"]["cost"]["min"] == 100
    assert bn.market("ETH/USDT:USDT")["limits"]["cost"]["min"] == 20
    spot = bn.market("BTC/USDT")
    assert spot["spot"] and spot["limits"]["cost"]["min"] == 5 and spot["precision"]["amount"] == 0.00001


def test_plain_ccxt_defaults_also_load(fx: FakeExchange) -> None:
    # No fetchMarkets override: ccxt also asks COIN-M (dapi) and the margin pair lists (sapi).
    ex = client(fx)
    assert "BTC/USDT:USDT" in ex.load_markets()


def test_mark_price_and_funding_from_premium_index(bn: ccxt.binance, fx: FakeExchange) -> None:
    mark = bn.fetch_mark_price("BTC/USDT:USDT")
    assert D(str(mark["markPrice"])) == fx.exchange.mark_price("BTC-USDT-SWAP")
    rate = bn.fetch_funding_rate("BTC/USDT:USDT")
    assert rate["fundingTimestamp"] == fx.exchange.funding("BTC-USDT-SWAP").funding_time_ms


def test_margin_and_um_orders_query_cancel_open(bn: ccxt.binance, fx: FakeExchange) -> None:
    m = bn.create_order("BTC/USDT", "market", "buy", 0.003, None, {"clientOrderId": "t-m1"})
    assert m["status"] == "closed" and m["filled"] == 0.003
    u = bn.create_order("BTC/USDT:USDT", "market", "sell", 0.003, None, {"clientOrderId": "t-u1"})
    assert u["status"] == "closed" and u["filled"] == 0.003
    assert bn.fetch_order(None, "BTC/USDT:USDT", {"clientOrderId": "t-u1"})["id"] == u["id"]
    assert bn.fetch_order(None, "BTC/USDT", {"clientOrderId": "t-m1"})["filled"] == 0.003
    ask = bn.fetch_ticker("BTC/USDT:USDT")["ask"]
    rest = bn.create_order("BTC/USDT:USDT", "limit", "sell", 0.002, ask + 500, {"clientOrderId": "t-u2",
                                                                                "postOnly": True})
    assert rest["status"] == "open" and rest["timeInForce"] == "PO"
    assert [o["clientOrderId"] for o in bn.fetch_open_orders("BTC/USDT:USDT")] == ["t-u2"]
    assert bn.cancel_order(None, "BTC/USDT:USDT", {"clientOrderId": "t-u2"})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        bn.fetch_order(None, "BTC/USDT:USDT", {"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.BaseError) as info:
        bn.cancel_order(None, "BTC/USDT:USDT", {"clientOrderId": "t-u2"})
    assert body_code(info.value) == -2011
    pos = [p for p in bn.fetch_positions() if p["symbol"] == "BTC/USDT:USDT"]
    assert pos and pos[0]["side"] == "short" and pos[0]["contracts"] == 0.003
    bal = bn.fetch_balance()
    assert bal["info"][0]["asset"] and "umWalletBalance" in bal["info"][0]
    assert len(bn.fetch_my_trades("BTC/USDT:USDT")) >= 1 and len(bn.fetch_my_trades("BTC/USDT")) >= 1


def test_gtx_that_would_take_is_rejected_and_not_recorded(bn: ccxt.binance) -> None:
    bid = bn.fetch_ticker("BTC/USDT:USDT")["bid"]
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT:USDT", "limit", "sell", 0.002, bid, {"clientOrderId": "t-gtx", "postOnly": True})
    assert body_code(info.value) == -5022
    with pytest.raises(ccxt.OrderNotFound):
        bn.fetch_order(None, "BTC/USDT:USDT", {"clientOrderId": "t-gtx"})
    ask = bn.fetch_ticker("BTC/USDT")["ask"]
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # margin LIMIT_MAKER: -2010 "would immediately match"
        bn.create_order("BTC/USDT", "limit", "buy", 0.001, ask, {"clientOrderId": "t-lm", "postOnly": True})


def test_minimums_and_reduce_only_exemption(bn: ccxt.binance) -> None:
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT:USDT", "market", "sell", 0.001, None, {"clientOrderId": "t-mn"})
    assert body_code(info.value) == -4164 and "unless you choose reduce only" in str(info.value)
    bn.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None, {"clientOrderId": "t-short"})
    closed = bn.create_order("BTC/USDT:USDT", "market", "buy", 0.001, None, {"clientOrderId": "t-ro",
                                                                              "reduceOnly": True})
    assert closed["status"] == "closed"  # 0.001 x ~60,000 < 100 USDT, allowed because reduce-only
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT", "market", "buy", 0.00005, None, {"clientOrderId": "t-spot-mn"})
    assert body_code(info.value) == -1013 and "NOTIONAL" in str(info.value)


def test_duplicate_client_ids_and_insufficient_funds(bn: ccxt.binance) -> None:
    ask = bn.fetch_ticker("BTC/USDT:USDT")["ask"]
    bn.create_order("BTC/USDT:USDT", "limit", "sell", 0.002, ask + 800, {"clientOrderId": "t-dup"})
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT:USDT", "limit", "sell", 0.002, ask + 800, {"clientOrderId": "t-dup"})
    assert body_code(info.value) == -4116
    bn.cancel_order(None, "BTC/USDT:USDT", {"clientOrderId": "t-dup"})
    spot_ask = bn.fetch_ticker("BTC/USDT")["ask"]
    bn.create_order("BTC/USDT", "limit", "sell", 0.001, spot_ask + 900, {"clientOrderId": "t-mdup"})
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT", "limit", "sell", 0.001, spot_ask + 900, {"clientOrderId": "t-mdup"})
    assert body_code(info.value) == -2010 and "Duplicate order sent." in str(info.value)
    with pytest.raises(ccxt.BaseError) as info:
        bn.create_order("BTC/USDT:USDT", "market", "sell", 50, None, {"clientOrderId": "t-big"})
    assert body_code(info.value) == -2019
    with pytest.raises(ccxt.InsufficientFunds):
        bn.create_order("BTC/USDT", "market", "buy", 10, None, {"clientOrderId": "t-mbig"})


def test_signature_key_and_timestamp_checked(fx: FakeExchange) -> None:
    wrong = client(fx)
    wrong.secret = "not-the-secret"
    with pytest.raises(ccxt.BaseError) as info:
        wrong.fetch_balance()
    assert body_code(info.value) == -1022
    bad_key = client(fx)
    bad_key.apiKey = "nobody"
    with pytest.raises(ccxt.AuthenticationError):
        bad_key.fetch_balance()
    late = client(fx)
    late.options["timeDifference"] = 120_000  # our clock two minutes behind: outside recvWindow
    with pytest.raises(ccxt.BaseError) as info:
        late.fetch_balance()
    assert body_code(info.value) == -1021
    raw = requests.get(fx.url + "/papi/v1/balance?timestamp=1", headers={"X-MBX-APIKEY": fx.credentials.api_key},
                       timeout=10)
    assert raw.status_code == 400 and raw.json()["code"] == -1102


def test_rate_limit_answers_429_with_1003(fx: FakeExchange) -> None:
    ex = client(fx)
    ex.load_markets()
    fx.set_rate_limit("binance:orders", 1, 60_000)
    try:
        ex.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None, {"clientOrderId": "t-rl1"})
        with pytest.raises(ccxt.DDoSProtection) as info:
            ex.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None, {"clientOrderId": "t-rl2"})
        assert "-1003" in str(info.value)
    finally:
        fx.set_rate_limit("binance:orders", 1200, 60_000)


def test_um_stop_market_is_an_algo_order_that_fires(bn: ccxt.binance, fx: FakeExchange) -> None:
    bn.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None, {"clientOrderId": "t-stop-pos"})
    mark = fx.exchange.mark_price("BTC-USDT-SWAP")
    trigger = float(mark + 300)
    stop = bn.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None,
                           {"clientOrderId": "t-stop", "triggerPrice": trigger, "reduceOnly": True})
    assert stop["status"] == "open" and stop["clientOrderId"] == "t-stop"
    raw = bn.papiGetUmAlgoAlgoOrder({"symbol": "BTCUSDT", "clientAlgoId": "t-stop"})
    assert raw["algoStatus"] == "NEW" and raw["orderType"] == "STOP_MARKET"
    with pytest.raises(ccxt.BaseError) as info:
        bn.papiGetUmAlgoAlgoOrder({"symbol": "BTCUSDT", "clientAlgoId": "no-such-stop"})
    assert body_code(info.value) == -2013
    fx.exchange.set_price("BTC-USDT-SWAP", mark + 1000)
    fx.advance(60_000)
    fired = bn.papiGetUmAlgoAlgoOrder({"symbol": "BTCUSDT", "clientAlgoId": "t-stop"})
    assert fired["algoStatus"] == "FINISHED" and fired["actualOrderId"]
    fx.exchange.set_price("BTC-USDT-SWAP", mark)
