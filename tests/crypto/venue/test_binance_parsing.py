"""Binance PM specifics of CcxtVenue that the local exchange does not exercise, on ccxt's own parsers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt

from crypto.venue.ccxt_venue import CcxtVenue, order_from_ccxt, position_from_ccxt
from crypto.venue.factory import make_exchange

D = Decimal
_UM_FIELDS: dict[str, Any] = {
    "id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT", "type": "swap",
    "spot": False, "swap": True, "linear": True, "contract": True, "contractSize": 1.0, "maker": 0.0002,
    "taker": 0.0005, "precision": {"amount": 0.001, "price": 0.1},
    "limits": {"amount": {"min": 0.001}, "cost": {"min": 100.0}, "leverage": {"max": None}},
    "inverse": False, "future": False, "option": False, "margin": False, "active": True,
}
UM_MARKET: dict[str, Any] = ccxt.binance().safe_market_structure(_UM_FIELDS)


def venue_with(exchange: ccxt.Exchange) -> CcxtVenue:
    exchange.load_markets = lambda reload=False, params={}: {"BTC/USDT:USDT": UM_MARKET}  # type: ignore[method-assign]
    exchange.fetch_leverage_tiers = lambda symbols=None, params={}: {  # type: ignore[method-assign]
        "BTC/USDT:USDT": [{"maxLeverage": 125.0}, {"maxLeverage": 100.0}]}
    return CcxtVenue(exchange, name="binance")


def test_um_ticker_takes_bid_and_ask_from_the_book_ticker() -> None:
    # Binance USD-M /fapi/v1/ticker/24hr carries no bidPrice/askPrice.
    exchange = make_exchange("binance-pm-fake", "http://127.0.0.1:1", None)
    exchange.fetch_ticker = lambda symbol, params={}: exchange.parse_ticker(  # type: ignore[method-assign]
        {"symbol": "BTCUSDT", "lastPrice": "60000.5", "closeTime": 1}, exchange.market(symbol))
    exchange.fetch_bids_asks = lambda symbols=None, params={}: {  # type: ignore[method-assign]
        "BTC/USDT:USDT": {"bid": 59999.9, "ask": 60000.1}}
    venue = venue_with(exchange)
    exchange.markets = {"BTC/USDT:USDT": UM_MARKET}
    exchange.markets_by_id = {"BTCUSDT": [UM_MARKET]}
    ticker = venue.ticker("BTC/USDT:USDT")
    assert (ticker.bid, ticker.ask, ticker.last) == (D("59999.9"), D("60000.1"), D("60000.5"))


def test_um_leverage_cap_comes_from_the_brackets() -> None:
    exchange = make_exchange("binance-pm-fake", "http://127.0.0.1:1", None)
    market = venue_with(exchange).market("BTC/USDT:USDT")
    assert market.max_leverage == D(125) and market.min_notional == D(100) and market.qty_step == D("0.001")


def test_papi_um_order_parsed_in_base_units() -> None:
    exchange = ccxt.binance({"options": {"portfolioMargin": True}})
    exchange.markets = {"BTC/USDT:USDT": UM_MARKET}
    exchange.markets_by_id = {"BTCUSDT": [UM_MARKET]}
    raw = exchange.parse_order({
        "orderId": 42, "clientOrderId": "h1", "symbol": "BTCUSDT", "price": "60000", "origQty": "0.010",
        "executedQty": "0.004", "avgPrice": "60000", "status": "PARTIALLY_FILLED", "timeInForce": "GTX",
        "type": "LIMIT", "side": "BUY", "reduceOnly": False, "updateTime": 1700000000000}, UM_MARKET)
    market = venue_with(exchange).market("BTC/USDT:USDT")
    order = order_from_ccxt(raw, market)
    assert (order.qty, order.filled, order.status, order.client_order_id) == (D("0.01"), D("0.004"), "open", "h1")
    assert order.post_only  # GTX


def test_papi_um_short_position_is_negative() -> None:
    exchange = ccxt.binance({"options": {"portfolioMargin": True}})
    exchange.markets = {"BTC/USDT:USDT": UM_MARKET}
    exchange.markets_by_id = {"BTCUSDT": [UM_MARKET]}
    raw = exchange.parse_position_risk({
        "symbol": "BTCUSDT", "positionAmt": "-0.250", "entryPrice": "60000", "markPrice": "59000",
        "unRealizedProfit": "250", "liquidationPrice": "80000", "leverage": "3", "positionSide": "BOTH",
        "notional": "-14750", "updateTime": 1700000000000}, UM_MARKET)
    market = venue_with(exchange).market("BTC/USDT:USDT")
    position = position_from_ccxt(raw, market, "cross")
    assert position is not None and position.qty == D("-0.25") and position.margin_mode == "cross"
    assert raw["marginMode"] is None  # PM positionRisk states no margin type: the venue default says cross
    assert position.unrealized_pnl == D(250) and position.liq_price == D(80000)
