"""The local exchange's Binance portfolio-margin dialect: enough of Binance's REST API for the *unmodified*
``ccxt.binance`` class with ``options={'portfolioMargin': True}`` (its URL table pointed here).

What ccxt 4.5.90 calls, by API family (ccxt URL key -> path prefix served here):
- ``public`` ``/api/v3``: ``exchangeInfo`` (spot/margin symbols and filters), ``time``, ``ping``,
  ``ticker/24hr``, ``ticker/bookTicker``, ``depth``;
- ``fapiPublic`` ``/fapi/v1``: ``exchangeInfo`` (USD-M filters: stepSize, minQty, MIN_NOTIONAL per symbol),
  ``premiumIndex`` (mark, index, predicted funding), ``fundingRate`` (history), ``fundingInfo``, ``time``,
  ``ticker/24hr``, ``ticker/bookTicker``, ``depth``;
- ``dapiPublic`` ``/dapi/v1``: ``exchangeInfo`` answered empty (no COIN-M markets here);
- ``sapi`` ``/sapi/v1`` (signed): ``margin/allPairs``, ``margin/isolated/allPairs``,
  ``capital/config/getall`` (what ``load_markets`` asks when credentials are set);
- ``papi`` ``/papi/v1`` (signed): ``balance``, ``account``, ``um/positionRisk``, ``um/leverage``,
  ``um/leverageBracket``, ``um/income``, ``um/order`` (POST/GET/DELETE), ``um/openOrders``,
  ``um/allOrders``, ``um/userTrades``, ``margin/order`` (POST/GET/DELETE), ``margin/openOrders``,
  ``margin/allOrders``, ``margin/myTrades``, ``ping``.

Binance's rules kept here (the engine matches; the dialect speaks Binance):
- HMAC-SHA256 over the query string (GET/DELETE) or the form body (POST), key in ``X-MBX-APIKEY``;
  ``timestamp`` within ``recvWindow`` of the arrival time (-1021), bad signature -1022, bad key -2015.
- Filters per symbol from the tables below (``stepSize``/``minQty``/``minNotional``): UM quantities not on
  the step -4023, under minQty -4003... see ``_check_filters``; UM notional under ``MIN_NOTIONAL`` -4164
  "(unless you choose reduce only)" -- reduce-only orders are exempt, as on Binance; margin filters fail
  with -1013 "Filter failure: LOT_SIZE|NOTIONAL|PRICE_FILTER".
- UM GTX (post-only) that would take liquidity: -5022, and the order is not recorded (Binance: "will not
  be recorded in the order history"); margin ``LIMIT_MAKER`` that would take: -2010 "Order would
  immediately match and take.".
- A live order's client id again: UM -4116 "ClientOrderId is duplicated.", margin -2010 "Duplicate order
  sent."; insufficient margin: UM -2019 "Margin is insufficient.", margin -2010 "Account has insufficient
  balance for requested action."; unknown order: query -2013, cancel -2011.
- Rate limits: request weight per minute (``binance:weight``) and orders per minute (``binance:orders``);
  over the limit: HTTP 429 with -1003.

Accounts: portfolio margin is one margin for the whole portfolio; the fake keeps it in the engine's
``trading`` account (USDT backs both the margin and the UM books). Margin borrowing (``sideEffectType``) is
not modelled: a margin buy needs the quote, a margin sell the base, in the account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import AlgoSpec, Exchange, OrderSpec
from crypto.fakex.engine.instruments import Instrument, is_multiple
from crypto.fakex.engine.state import AlgoRec, OrderRec
from crypto.fakex.server import Credentials, Request, Response, ServerContext

D = Decimal
ZERO = D(0)
CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
WEIGHT_LIMIT = (6000, 60_000)  # papi: IP request weight 6,000 per minute
ORDER_LIMIT = (1200, 60_000)  # papi: 1,200 orders per minute


@dataclass(frozen=True)
class BinanceFilter:
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal


# Binance's published filters at the time of writing (UM BTCUSDT 0.001 / 100 USDT, ETHUSDT 0.001 / 20 USDT;
# spot LOT_SIZE steps and the 5 USDT NOTIONAL). A symbol not listed keeps the engine instrument's filters.
# Ticks are the engine's (a multiple of Binance's), so a price the dialect accepts the engine accepts too.
FILTERS: dict[tuple[str, str], BinanceFilter] = {
    ("um", "BTC"): BinanceFilter(D("0.001"), D("0.001"), D("100")),
    ("um", "ETH"): BinanceFilter(D("0.001"), D("0.001"), D("20")),
    ("um", "SOL"): BinanceFilter(D("1"), D("1"), D("5")),
    ("margin", "BTC"): BinanceFilter(D("0.00001"), D("0.00001"), D("5")),
    ("margin", "ETH"): BinanceFilter(D("0.0001"), D("0.0001"), D("5")),
    ("margin", "SOL"): BinanceFilter(D("0.001"), D("0.001"), D("5")),
}


@dataclass(frozen=True)
class Symbol:
    book: str  # "um" (USD-M perpetual) or "margin" (spot symbol traded on the cross-margin account)
    id: str  # BTCUSDT
    inst: Instrument
    filt: BinanceFilter

    @property
    def tick(self) -> Decimal:
        return self.inst.tick


class BinanceError(Exception):
    """A Binance error body ``{"code": -2010, "msg": ...}`` with its HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def s(value: Decimal | None) -> str:
    """Binance sends numbers as plain strings."""
    if value is None:
        return "0"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _dec(params: Mapping[str, str], name: str, required: bool = True) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return None
    try:
        value = D(raw)
    except InvalidOperation:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not value.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _symbols(exchange: Exchange) -> dict[tuple[str, str], Symbol]:
    out: dict[tuple[str, str], Symbol] = {}
    for inst in exchange.instruments.values():
        # Binance USD-M quantities are base units, as the engine's are: no contract conversion here.
        book = "um" if inst.is_swap else "margin"
        filt = FILTERS.get((book, inst.base), BinanceFilter(inst.qty_step, inst.min_qty, inst.min_notional))
        sym = Symbol(book, f"{inst.base}{inst.quote}", inst, filt)
        out[(book, sym.id)] = sym
    return out


def _recorded(order: OrderRec) -> bool:
    """Binance does not record a post-only order refused as would-take (UM GTX -5022, margin LIMIT_MAKER
    -2010); the engine keeps it cancelled with ``cancel_source`` "post_only", so queries skip those. Stateless,
    so it holds across a restart of the exchange."""
    return order.cancel_source != "post_only"


class BinancePmDialect:
    """Mounted by ``crypto.fakex.server`` under Binance's path prefixes; see the module docstring."""

    name = "binance"
    prefixes = ("/papi/", "/fapi/", "/api/v3/", "/sapi/", "/dapi/")

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        Route = Callable[[ServerContext, dict[str, str]], Any]
        public: dict[tuple[str, str], Route] = {
            ("GET", "/api/v3/ping"): lambda ctx, p: {},
            ("GET", "/fapi/v1/ping"): lambda ctx, p: {},
            ("GET", "/papi/v1/ping"): lambda ctx, p: {},
            ("GET", "/api/v3/time"): self._time,
            ("GET", "/fapi/v1/time"): self._time,
            ("GET", "/api/v3/exchangeInfo"): lambda ctx, p: self._exchange_info(ctx, "margin", p),
            ("GET", "/fapi/v1/exchangeInfo"): lambda ctx, p: self._exchange_info(ctx, "um", p),
            ("GET", "/dapi/v1/exchangeInfo"): lambda ctx, p: {"timezone": "UTC", "serverTime": ctx.exchange.now_ms(),
                                                              "symbols": [], "rateLimits": [], "exchangeFilters": []},
            ("GET", "/api/v3/ticker/24hr"): lambda ctx, p: self._ticker(ctx, "margin", p),
            ("GET", "/fapi/v1/ticker/24hr"): lambda ctx, p: self._ticker(ctx, "um", p),
            ("GET", "/api/v3/ticker/bookTicker"): lambda ctx, p: self._book_ticker(ctx, "margin", p),
            ("GET", "/fapi/v1/ticker/bookTicker"): lambda ctx, p: self._book_ticker(ctx, "um", p),
            ("GET", "/api/v3/depth"): lambda ctx, p: self._depth(ctx, "margin", p),
            ("GET", "/fapi/v1/depth"): lambda ctx, p: self._depth(ctx, "um", p),
            ("GET", "/fapi/v1/premiumIndex"): self._premium_index,
            ("GET", "/fapi/v1/fundingRate"): self._funding_rate_history,
            ("GET", "/fapi/v1/fundingInfo"): self._funding_info,
        }
        signed: dict[tuple[str, str], Route] = {
            ("GET", "/sapi/v1/margin/allPairs"): self._margin_pairs,
            ("GET", "/sapi/v1/margin/isolated/allPairs"): lambda ctx, p: [],
            ("GET", "/sapi/v1/capital/config/getall"): lambda ctx, p: [],
            ("GET", "/papi/v1/balance"): self._balance,
            ("GET", "/papi/v1/account"): self._account,
            ("GET", "/papi/v1/um/positionRisk"): self._position_risk,
            ("POST", "/papi/v1/um/leverage"): self._set_leverage,
            ("GET", "/papi/v1/um/leverageBracket"): self._leverage_bracket,
            ("GET", "/papi/v1/um/income"): self._income,
            ("POST", "/papi/v1/um/order"): lambda ctx, p: self._new_order(ctx, "um", p),
            ("POST", "/papi/v1/margin/order"): lambda ctx, p: self._new_order(ctx, "margin", p),
            ("GET", "/papi/v1/um/order"): lambda ctx, p: self._query_order(ctx, "um", p),
            ("GET", "/papi/v1/margin/order"): lambda ctx, p: self._query_order(ctx, "margin", p),
            ("DELETE", "/papi/v1/um/order"): lambda ctx, p: self._cancel_order(ctx, "um", p),
            ("DELETE", "/papi/v1/margin/order"): lambda ctx, p: self._cancel_order(ctx, "margin", p),
            ("GET", "/papi/v1/um/openOrders"): lambda ctx, p: self._orders(ctx, "um", p, live=True),
            ("GET", "/papi/v1/margin/openOrders"): lambda ctx, p: self._orders(ctx, "margin", p, live=True),
            ("GET", "/papi/v1/um/allOrders"): lambda ctx, p: self._orders(ctx, "um", p, live=None),
            ("GET", "/papi/v1/margin/allOrders"): lambda ctx, p: self._orders(ctx, "margin", p, live=None),
            ("GET", "/papi/v1/um/userTrades"): lambda ctx, p: self._trades(ctx, "um", p),
            ("POST", "/papi/v1/um/algo/order"): self._new_algo,
            ("GET", "/papi/v1/um/algo/algoOrder"): self._query_algo,
            ("DELETE", "/papi/v1/um/algo/order"): self._cancel_algo,
            ("GET", "/papi/v1/um/algo/openAlgoOrders"): lambda ctx, p: self._algos(ctx, p, live=True),
            ("GET", "/papi/v1/um/algo/allAlgoOrders"): lambda ctx, p: self._algos(ctx, p, live=None),
            ("GET", "/papi/v1/margin/myTrades"): lambda ctx, p: self._trades(ctx, "margin", p),
        }
        self.routes: dict[tuple[str, str], tuple[bool, Route]] = {
            **{k: (False, v) for k, v in public.items()},
            **{k: (True, v) for k, v in signed.items()},
        }

    # ------------------------------------------------------------------ plumbing
    def handle(self, req: Request, ctx: ServerContext) -> Response:
        try:
            route = self.routes.get((req.method, req.path))
            if route is None:
                raise BinanceError(-1000 if req.path.startswith(self.prefixes) else -1121,
                                   f"Path {req.method} {req.path} is not served by the local exchange.", 404)
            wall = ctx.wall_ms()
            if not ctx.limiter.allow("binance:weight", *WEIGHT_LIMIT, wall):
                raise BinanceError(-1003, "Too many requests; current limit is 6000 requests per minute. Please "
                                          "use the websocket for live updates to avoid polling the API.", 429)
            is_signed, fn = route
            params = dict(req.query)
            body_text = req.body.decode("utf-8") if req.body else ""
            if body_text:
                params.update(dict(parse_qsl(body_text, keep_blank_values=True)))
            if is_signed:
                self._authenticate(req, ctx, params, body_text, wall)
            if req.method == "POST" and req.path.endswith("order") and not ctx.limiter.allow(
                    "binance:orders", *ORDER_LIMIT, wall):
                raise BinanceError(-1003, "Too many requests; current limit is 1200 orders per minute.", 429)
            return Response.json(200, fn(ctx, params))
        except BinanceError as exc:
            return Response.json(exc.status, {"code": exc.code, "msg": exc.msg})

    def _authenticate(self, req: Request, ctx: ServerContext, params: dict[str, str], body: str, wall: float) -> None:
        key = req.headers.get("x-mbx-apikey", "")
        if not hmac.compare_digest(key.encode(), self.credentials.api_key.encode()):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = req.target.split("?", 1)[1] if "?" in req.target else ""
        total = query + body  # Binance signs the query string followed by the body
        signed, sep, signature = total.rpartition("&signature=")
        if not sep or not signature:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self.credentials.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        timestamp = _dec(params, "timestamp")
        window = _dec(params, "recvWindow", required=False) or D(DEFAULT_RECV_WINDOW)
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        if ctx.check_timestamp and timestamp is not None and (
                timestamp >= D(wall) + 1000 or D(wall) - timestamp > window):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _symbol(self, ctx: ServerContext, book: str, params: Mapping[str, str], required: bool = True) -> Symbol | None:
        raw = params.get("symbol")
        if not raw:
            if required:
                raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        sym = _symbols(ctx.exchange).get((book, raw.upper()))
        if sym is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return sym

    def _by_inst(self, ctx: ServerContext) -> dict[str, Symbol]:
        return {sym.inst.inst_id: sym for sym in _symbols(ctx.exchange).values()}

    # ------------------------------------------------------------------ public
    def _time(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        return {"serverTime": ctx.exchange.now_ms()}

    def _exchange_info(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        rows = []
        for (b, _), sym in sorted(_symbols(ctx.exchange).items()):
            if b != book:
                continue
            inst = sym.inst
            price_filter = {"filterType": "PRICE_FILTER", "minPrice": s(inst.tick), "maxPrice": "10000000",
                            "tickSize": s(inst.tick)}
            lot = {"filterType": "LOT_SIZE", "minQty": s(sym.filt.min_qty), "maxQty": "100000",
                   "stepSize": s(sym.filt.step)}
            market_lot = {"filterType": "MARKET_LOT_SIZE", "minQty": s(sym.filt.min_qty), "maxQty": "1000",
                          "stepSize": s(sym.filt.step)}
            common = {"symbol": sym.id, "status": "TRADING", "baseAsset": inst.base, "quoteAsset": inst.quote,
                      "baseAssetPrecision": 8, "quotePrecision": 8}
            if book == "um":
                rows.append({**common, "pair": sym.id, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                             "onboardDate": 1569398400000, "marginAsset": inst.settle or inst.quote,
                             "pricePrecision": max(0, -inst.tick.normalize().as_tuple().exponent),  # type: ignore[operator]
                             "quantityPrecision": max(0, -sym.filt.step.normalize().as_tuple().exponent),  # type: ignore[operator]
                             "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
                             "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maintMarginPercent": "2.5000",
                             "requiredMarginPercent": "5.0000",
                             "filters": [price_filter, lot, market_lot,
                                         {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                                         {"filterType": "MIN_NOTIONAL", "notional": s(sym.filt.min_notional)},
                                         {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                                          "multiplierDown": "0.9500", "multiplierDecimal": "4"}],
                             "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                                            "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                             "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]})
            else:
                rows.append({**common, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                                                      "TAKE_PROFIT_LIMIT"],
                             "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
                             "isMarginTradingAllowed": True, "permissions": ["SPOT", "MARGIN"],
                             "filters": [price_filter, lot, market_lot,
                                         {"filterType": "NOTIONAL", "minNotional": s(sym.filt.min_notional),
                                          "applyMinToMarket": True, "maxNotional": "9000000",
                                          "applyMaxToMarket": False, "avgPriceMins": 5}]})
        return {"timezone": "UTC", "serverTime": ctx.exchange.now_ms(), "exchangeFilters": [],
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": WEIGHT_LIMIT[0]},
                               {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
                                "limit": ORDER_LIMIT[0]}],
                "symbols": rows}

    def _selected(self, ctx: ServerContext, book: str, params: Mapping[str, str]) -> list[Symbol]:
        one = self._symbol(ctx, book, params, required=False)
        if one is not None:
            return [one]
        return [sym for (b, _), sym in sorted(_symbols(ctx.exchange).items()) if b == book]

    def _ticker(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        rows = []
        for sym in self._selected(ctx, book, params):
            t = ctx.exchange.ticker(sym.inst.inst_id)
            change = t.last - t.open_24h
            rows.append({"symbol": sym.id, "priceChange": s(change),
                         "priceChangePercent": s((change / t.open_24h * 100).quantize(D("0.001"))),
                         "weightedAvgPrice": s(t.last), "lastPrice": s(t.last), "lastQty": "0",
                         "openPrice": s(t.open_24h), "highPrice": s(t.high_24h), "lowPrice": s(t.low_24h),
                         "volume": s(t.vol_24h), "quoteVolume": s(t.vol_24h * t.last),
                         "bidPrice": s(t.bid), "bidQty": s(t.bid_qty), "askPrice": s(t.ask), "askQty": s(t.ask_qty),
                         "openTime": t.ts_ms - 86_400_000, "closeTime": t.ts_ms, "count": 0})
        return rows[0] if params.get("symbol") else rows

    def _book_ticker(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        rows = []
        for sym in self._selected(ctx, book, params):
            t = ctx.exchange.ticker(sym.inst.inst_id)
            rows.append({"symbol": sym.id, "bidPrice": s(t.bid), "bidQty": s(t.bid_qty), "askPrice": s(t.ask),
                         "askQty": s(t.ask_qty), "time": t.ts_ms})
        return rows[0] if params.get("symbol") else rows

    def _depth(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, book, params)
        assert sym is not None
        limit = int(params.get("limit") or 100)
        b = ctx.exchange.book(sym.inst.inst_id, min(limit, 400))
        now = ctx.exchange.now_ms()
        return {"lastUpdateId": now, "E": now, "T": now,
                "bids": [[s(p), s(q)] for p, q in b.bids[:limit]], "asks": [[s(p), s(q)] for p, q in b.asks[:limit]]}

    def _premium_row(self, ctx: ServerContext, sym: Symbol) -> dict[str, Any]:
        ex = ctx.exchange
        f = ex.funding(sym.inst.inst_id)
        return {"symbol": sym.id, "markPrice": s(ex.mark_price(sym.inst.inst_id)),
                "indexPrice": s(ex.index_price(sym.inst.inst_id)),
                "estimatedSettlePrice": s(ex.index_price(sym.inst.inst_id)),
                # Binance's lastFundingRate is the rate of the coming settlement (nextFundingTime).
                "lastFundingRate": s(f.rate), "interestRate": "0.00010000",
                "nextFundingTime": f.funding_time_ms, "time": f.ts_ms}

    def _premium_index(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        rows = [self._premium_row(ctx, sym) for sym in self._selected(ctx, "um", params)]
        return rows[0] if params.get("symbol") else rows

    def _funding_info(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        out = []
        for sym in self._selected(ctx, "um", {}):
            f = ctx.exchange.funding(sym.inst.inst_id)
            out.append({"symbol": sym.id, "adjustedFundingRateCap": s(f.cap),
                        "adjustedFundingRateFloor": s(-f.cap), "fundingIntervalHours": f.interval_h,
                        "disclaimer": False})
        return out

    def _funding_rate_history(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        start = _dec(params, "startTime", required=False)
        end = _dec(params, "endTime", required=False)
        limit = int(params.get("limit") or 100)
        rows: list[dict[str, Any]] = []
        for sym in self._selected(ctx, "um", params):
            for rec in ctx.exchange.funding_history(sym.inst.inst_id):
                if (start is None or rec.funding_time_ms >= start) and (end is None or rec.funding_time_ms <= end):
                    rows.append({"symbol": sym.id, "fundingRate": s(rec.rate), "fundingTime": rec.funding_time_ms,
                                 "markPrice": s(rec.mark)})
        rows.sort(key=lambda r: int(r["fundingTime"]))
        return rows[:limit] if start is not None else rows[-limit:]

    # ------------------------------------------------------------------ account
    def _margin_pairs(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        return [{"id": i, "symbol": sym.id, "base": sym.inst.base, "quote": sym.inst.quote, "isMarginTrade": True,
                 "isBuyAllowed": True, "isSellAllowed": True}
                for i, ((b, _), sym) in enumerate(sorted(_symbols(ctx.exchange).items())) if b == "margin"]

    def _balance(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        ex = ctx.exchange
        now = ex.now_ms()
        settle = {sym.inst.margin_ccy for sym in _symbols(ex).values() if sym.book == "um"}
        rows = []
        for ccy, bal in ex.balances("trading").items():
            if params.get("asset") and params["asset"] != ccy:
                continue
            um_wallet = bal.cash if ccy in settle else ZERO
            rows.append({"asset": ccy, "totalWalletBalance": s(bal.cash), "crossMarginAsset": s(bal.cash),
                         "crossMarginBorrowed": "0", "crossMarginFree": s(bal.available),
                         "crossMarginInterest": "0", "crossMarginLocked": s(bal.ord_frozen),
                         "umWalletBalance": s(um_wallet), "umUnrealizedPNL": s(bal.upl), "cmWalletBalance": "0",
                         "cmUnrealizedPNL": "0", "updateTime": now, "negativeBalance": "0"})
        return rows[0] if params.get("asset") and rows else rows

    def _account(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        ex = ctx.exchange
        usdt = ex.balances("trading").get("USDT")
        equity = usdt.equity if usdt is not None else ZERO
        maint = sum((p.maintenance for p in ex.positions()), ZERO)
        return {"uniMMR": s(equity / maint if maint > 0 else D(999)), "accountEquity": s(equity),
                "actualEquity": s(equity), "accountInitialMargin": s(usdt.frozen if usdt else ZERO),
                "accountMaintMargin": s(maint), "accountStatus": "NORMAL",
                "virtualMaxWithdrawAmount": s(usdt.available if usdt else ZERO),
                "totalAvailableBalance": s(usdt.available if usdt else ZERO), "totalMarginOpenLoss": "0",
                "updateTime": ex.now_ms()}

    def _position_risk(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        ex = ctx.exchange
        wanted = self._selected(ctx, "um", params)
        views = {v.rec.inst_id: v for v in ex.positions([sym.inst.inst_id for sym in wanted])}
        rows = []
        for sym in wanted:
            v = views.get(sym.inst.inst_id)
            lev = ex.leverage(sym.inst.inst_id, "cross")
            if v is None:
                mark = ex.mark_price(sym.inst.inst_id)
                rows.append({"symbol": sym.id, "positionAmt": "0", "entryPrice": "0.0", "markPrice": s(mark),
                             "unRealizedProfit": "0", "liquidationPrice": "0", "leverage": s(lev),
                             "maxNotionalValue": "1000000", "positionSide": "BOTH", "notional": "0",
                             "updateTime": 0})
                continue
            rows.append({"symbol": sym.id, "positionAmt": s(v.rec.qty), "entryPrice": s(v.rec.entry),
                         "markPrice": s(v.mark), "unRealizedProfit": s(v.upl),
                         "liquidationPrice": s(v.liq_price or ZERO), "leverage": s(v.rec.leverage),
                         "maxNotionalValue": "1000000", "positionSide": "BOTH", "notional": s(v.rec.qty * v.mark),
                         "updateTime": v.rec.updated_ms})
        return rows

    def _set_leverage(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, "um", params)
        assert sym is not None
        lev = _dec(params, "leverage")
        assert lev is not None
        try:
            got = ctx.exchange.set_leverage(sym.inst.inst_id, lev, "cross")
        except Reject as exc:
            raise BinanceError(-4028, f"Leverage {s(lev)} is not valid") from exc
        return {"leverage": int(got), "maxNotionalValue": "1000000", "symbol": sym.id}

    def _leverage_bracket(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        return [{"symbol": sym.id, "notionalCoef": 1.0,
                 "brackets": [{"bracket": 1, "initialLeverage": int(sym.inst.max_leverage), "notionalCap": 1000000,
                               "notionalFloor": 0, "maintMarginRatio": float(sym.inst.mmr), "cum": 0.0}]}
                for sym in self._selected(ctx, "um", params)]

    def _income(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        by_inst = self._by_inst(ctx)
        want = params.get("symbol")
        kind = params.get("incomeType")
        start = _dec(params, "startTime", required=False)
        rows = []
        for bill in ctx.exchange.bills("trading", "funding"):
            sym = by_inst.get(bill.inst_id)
            if sym is None or (want and sym.id != want) or (kind and kind != "FUNDING_FEE"):
                continue
            if start is not None and bill.ts_ms < start:
                continue
            amount = bill.bal_chg or bill.pos_bal_chg  # cross: the cash moves; isolated: the position's margin
            rows.append({"symbol": sym.id, "incomeType": "FUNDING_FEE", "income": s(amount), "asset": bill.ccy,
                         "info": "FUNDING_FEE", "time": bill.ts_ms, "tranId": bill.bill_id, "tradeId": ""})
        return rows[: int(params.get("limit") or 100)]

    # ------------------------------------------------------------------ orders
    def _new_order(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, book, params)
        assert sym is not None
        side = (params.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        otype = (params.get("type") or "").upper()
        allowed = ("LIMIT", "MARKET") if book == "um" else ("LIMIT", "MARKET", "LIMIT_MAKER")
        if otype not in allowed:
            raise BinanceError(-1116, "Invalid orderType.")
        qty = _dec(params, "quantity")
        assert qty is not None
        price = _dec(params, "price", required=otype != "MARKET") if otype != "MARKET" else None
        tif = (params.get("timeInForce") or ("GTC" if otype == "LIMIT" else "")).upper()
        if otype == "LIMIT" and tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        if book == "margin" and tif == "GTX":
            raise BinanceError(-1115, "Invalid timeInForce.")
        client_id = params.get("newClientOrderId") or f"fakex{uuid.uuid4().hex[:22]}"  # Binance makes one up too
        if not CLIENT_ID.match(client_id):
            raise BinanceError(-4015 if book == "um" else -1100, "Client order id is not valid.")
        reduce_only = book == "um" and (params.get("reduceOnly") or "").lower() == "true"
        if book == "um" and params.get("positionSide", "BOTH").upper() != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        ex = ctx.exchange
        if any(o.is_live and o.cl_ord_id == client_id for o in ex.orders(sym.inst.inst_id)):
            raise (BinanceError(-4116, "ClientOrderId is duplicated.") if book == "um"
                   else BinanceError(-2010, "Duplicate order sent."))
        ref = price if price is not None else ex.mark_price(sym.inst.inst_id)
        self._check_filters(sym, qty, price, ref, reduce_only)
        post_only = (book == "um" and tif == "GTX") or otype == "LIMIT_MAKER"
        ord_type = "market" if otype == "MARKET" else "post_only" if post_only else \
            {"GTC": "limit", "IOC": "ioc", "FOK": "fok"}[tif]
        spec = OrderSpec(inst_id=sym.inst.inst_id, side=side.lower(), ord_type=ord_type, qty=qty, price=price,
                         client_id=client_id, reduce_only=reduce_only,
                         margin_mode="cross" if book == "um" else "cash",
                         extra={"binanceType": otype, "timeInForce": tif if otype != "MARKET" else "GTC",
                                "book": book})
        try:
            order = ex.place_order(spec)
        except Reject as exc:
            raise self._refusal(exc, book, sym) from exc
        if order.state == "canceled" and order.cancel_source == "post_only":
            if book == "um":
                raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order "
                                          "will be rejected. The order will not be recorded in the order history")
            raise BinanceError(-2010, "Order would immediately match and take.")
        return self._order_json(order, sym)

    def _check_filters(self, sym: Symbol, qty: Decimal, price: Decimal | None, ref: Decimal, reduce_only: bool) -> None:
        um = sym.book == "um"
        if qty <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.") if um else \
                BinanceError(-1013, "Filter failure: LOT_SIZE")
        if price is not None:
            if price <= 0:
                raise BinanceError(-4001, "Price less than 0.") if um else \
                    BinanceError(-1013, "Filter failure: PRICE_FILTER")
            if not is_multiple(price, sym.tick):
                raise BinanceError(-4014, "Price not increased by tick size.") if um else \
                    BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if not is_multiple(qty, sym.filt.step):
            raise BinanceError(-4023, "Qty not increased by step size.") if um else \
                BinanceError(-1013, "Filter failure: LOT_SIZE")
        if qty < sym.filt.min_qty:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        if sym.filt.min_notional > 0 and qty * ref < sym.filt.min_notional:
            if um and not reduce_only:
                raise BinanceError(-4164, f"Order's notional must be no smaller than {s(sym.filt.min_notional)} "
                                          "(unless you choose reduce only).")
            if not um:
                raise BinanceError(-1013, "Filter failure: NOTIONAL")

    def _refusal(self, exc: Reject, book: str, sym: Symbol) -> BinanceError:
        um = book == "um"
        r = exc.reason
        if r == Reason.INSUFFICIENT_FUNDS:
            return BinanceError(-2019, "Margin is insufficient.") if um else \
                BinanceError(-2010, "Account has insufficient balance for requested action.")
        if r == Reason.DUPLICATE_CLIENT_ID:
            return BinanceError(-4116, "ClientOrderId is duplicated.") if um else \
                BinanceError(-2010, "Duplicate order sent.")
        if r in (Reason.REDUCE_ONLY_NO_POSITION, Reason.REDUCE_ONLY_SAME_SIDE, Reason.REDUCE_ONLY_SPOT):
            return BinanceError(-2022, "ReduceOnly Order is rejected.")
        if r == Reason.TICK_SIZE:
            return BinanceError(-4014, "Price not increased by tick size.") if um else \
                BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if r in (Reason.LOT_SIZE, Reason.MIN_SIZE):
            return BinanceError(-1013, "Filter failure: LOT_SIZE")
        if r == Reason.MIN_NOTIONAL:
            return BinanceError(-4164, f"Order's notional must be no smaller than {s(sym.filt.min_notional)} "
                                       "(unless you choose reduce only).") if um else \
                BinanceError(-1013, "Filter failure: NOTIONAL")
        if r == Reason.UNKNOWN_INSTRUMENT:
            return BinanceError(-1121, "Invalid symbol.")
        if r == Reason.MARGIN_MODE_MISMATCH:
            return BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
        return BinanceError(-1102, exc.detail or r.value)

    def _find(self, ctx: ServerContext, sym: Symbol, params: Mapping[str, str]) -> OrderRec | None:
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        found = [o for o in ctx.exchange.orders(sym.inst.inst_id)
                 if _recorded(o) and (o.ord_id == order_id if order_id else o.cl_ord_id == client_id)]
        if not found:
            return None
        live = [o for o in found if o.is_live]
        return live[-1] if live else found[-1]

    def _query_order(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, book, params)
        assert sym is not None
        order = self._find(ctx, sym, params)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return self._order_json(order, sym)

    def _cancel_order(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, book, params)
        assert sym is not None
        order = self._find(ctx, sym, params)
        if order is None or not order.is_live:
            raise BinanceError(-2011, "Unknown order sent.")
        try:
            done = ctx.exchange.cancel_order(sym.inst.inst_id, ord_id=order.ord_id)
        except Reject as exc:
            raise BinanceError(-2011, "Unknown order sent.") from exc
        return self._order_json(done, sym)

    def _orders(self, ctx: ServerContext, book: str, params: dict[str, str], live: bool | None) -> Any:
        symbols = self._selected(ctx, book, params)
        out = []
        for sym in symbols:
            for o in ctx.exchange.orders(sym.inst.inst_id, live=live):
                if _recorded(o) and o.extra.get("book", book) == book:
                    out.append(self._order_json(o, sym))
        out.sort(key=lambda row: row["updateTime"])
        return out[-int(params.get("limit") or 500):]

    def _trades(self, ctx: ServerContext, book: str, params: dict[str, str]) -> Any:
        sym = self._symbol(ctx, book, params)
        assert sym is not None
        start = _dec(params, "startTime", required=False)
        orders = {o.ord_id: o for o in ctx.exchange.orders(sym.inst.inst_id)}
        rows = []
        for f in ctx.exchange.fills(sym.inst.inst_id, None if start is None else int(start)):
            o = orders.get(f.ord_id)
            base = {"symbol": sym.id, "id": int(f.trade_id), "orderId": int(f.ord_id), "price": s(f.price),
                    "qty": s(f.qty), "commission": s(f.fee), "commissionAsset": f.fee_ccy, "time": f.ts_ms}
            if book == "um":
                rows.append({**base, "side": f.side.upper(), "realizedPnl": s(f.pnl), "quoteQty": s(f.qty * f.price),
                             "buyer": f.side == "buy", "maker": f.liquidity == "maker", "positionSide": "BOTH"})
            else:
                rows.append({**base, "isBuyer": f.side == "buy", "isMaker": f.liquidity == "maker",
                             "isBestMatch": True, "orderListId": -1,
                             "clientOrderId": o.cl_ord_id if o is not None else ""})
        return rows[-int(params.get("limit") or 500):]

    def _order_json(self, o: OrderRec, sym: Symbol) -> dict[str, Any]:
        status = {"live": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED"}.get(o.state)
        if status is None:  # cancelled: by the user -> CANCELED, by the venue (IOC rest, market depth) -> EXPIRED
            status = "CANCELED" if o.cancel_source == "" else "EXPIRED"
        otype = o.extra.get("binanceType") or ("MARKET" if o.ord_type == "market" else "LIMIT")
        tif = o.extra.get("timeInForce") or "GTC"
        cum_quote = (o.avg_price or ZERO) * o.filled
        common = {"symbol": sym.id, "orderId": int(o.ord_id), "clientOrderId": o.cl_ord_id,
                  "price": s(o.price or ZERO), "origQty": s(o.qty), "executedQty": s(o.filled), "status": status,
                  "timeInForce": tif, "type": otype, "side": o.side.upper(), "updateTime": o.updated_ms}
        if sym.book == "um":
            return {**common, "avgPrice": s(o.avg_price or ZERO), "cumQty": s(o.filled), "cumQuote": s(cum_quote),
                    "reduceOnly": o.reduce_only, "positionSide": "BOTH", "origType": otype,
                    "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": o.created_ms,
                    "priceMatch": "NONE", "stopPrice": "0"}
        return {**common, "cummulativeQuoteQty": s(cum_quote), "transactTime": o.created_ms, "time": o.created_ms,
                "isWorking": o.is_live, "icebergQty": "0", "stopPrice": "0", "selfTradePreventionMode": "NONE",
                "accountId": 1}

    # ------------------------------------------------------------------ UM algo (conditional) orders
    ALGO_TYPES = {"STOP_MARKET": ("sl", False), "TAKE_PROFIT_MARKET": ("tp", False), "STOP": ("sl", True),
                  "TAKE_PROFIT": ("tp", True)}

    def _new_algo(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        """A UM stop or take-profit (``algoType=CONDITIONAL``): the engine's conditional order, fired on the
        contract (last) price or the mark (``workingType=MARK_PRICE``), then a market or limit order."""
        sym = self._symbol(ctx, "um", params)
        assert sym is not None
        if (params.get("algoType") or "").upper() != "CONDITIONAL":
            raise BinanceError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        otype = (params.get("type") or "").upper()
        if otype not in self.ALGO_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        leg, limit = self.ALGO_TYPES[otype]
        side = (params.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        qty = _dec(params, "quantity")
        trigger = _dec(params, "triggerPrice")
        price = _dec(params, "price") if limit else None
        assert qty is not None and trigger is not None
        client_id = params.get("clientAlgoId") or f"fakexalgo{ctx.exchange.now_ms()}"
        if not CLIENT_ID.match(client_id):
            raise BinanceError(-4015, "Client order id is not valid.")
        if any(a.state == "live" and a.algo_cl_ord_id == client_id for a in ctx.exchange.algos(sym.inst.inst_id)):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        if not is_multiple(trigger, sym.tick) or (price is not None and not is_multiple(price, sym.tick)):
            raise BinanceError(-4014, "Price not increased by tick size.")
        reduce_only = (params.get("reduceOnly") or "").lower() == "true"
        self._check_filters(sym, qty, price, price or trigger, reduce_only)
        working = (params.get("workingType") or "CONTRACT_PRICE").upper()
        spec = AlgoSpec(inst_id=sym.inst.inst_id, side=side.lower(), ord_type="conditional", qty=qty,
                        sl_trigger_px=trigger if leg == "sl" else None, sl_ord_px=price if leg == "sl" else None,
                        tp_trigger_px=trigger if leg == "tp" else None, tp_ord_px=price if leg == "tp" else None,
                        trigger_px_type="mark" if working == "MARK_PRICE" else "last", reduce_only=reduce_only,
                        margin_mode="cross", client_id=client_id,
                        extra={"binanceType": otype, "workingType": working})
        try:
            algo = ctx.exchange.place_algo(spec)
        except Reject as exc:
            raise self._refusal(exc, "um", sym) from exc
        return self._algo_json(algo, sym)

    def _find_algo(self, ctx: ServerContext, params: Mapping[str, str]) -> AlgoRec:
        algo_id = params.get("algoId")
        client_id = params.get("clientAlgoId")
        if not algo_id and not client_id:
            raise BinanceError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        try:
            return ctx.exchange.get_algo(algo_id=algo_id or None, algo_cl_ord_id=None if algo_id else client_id)
        except Reject:
            raise BinanceError(-2013, "Order does not exist.") from None

    def _query_algo(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        algo = self._find_algo(ctx, params)
        return self._algo_json(algo, self._by_inst(ctx)[algo.inst_id])

    def _cancel_algo(self, ctx: ServerContext, params: dict[str, str]) -> Any:
        algo = self._find_algo(ctx, params)
        try:
            done = ctx.exchange.cancel_algo(algo_id=algo.algo_id)
        except Reject:
            raise BinanceError(-2011, "Unknown order sent.") from None
        return {"algoId": int(done.algo_id), "clientAlgoId": done.algo_cl_ord_id, "code": "200", "msg": "success"}

    def _algos(self, ctx: ServerContext, params: dict[str, str], live: bool | None) -> Any:
        out = []
        for sym in self._selected(ctx, "um", params):
            out += [self._algo_json(a, sym) for a in ctx.exchange.algos(sym.inst.inst_id, live=live)]
        return out

    def _algo_json(self, a: AlgoRec, sym: Symbol) -> dict[str, Any]:
        status = {"live": "NEW", "effective": "FINISHED", "canceled": "CANCELED", "order_failed": "REJECTED"}.get(
            a.state, "EXPIRED")
        trigger = a.sl_trigger_px if a.sl_trigger_px is not None else a.tp_trigger_px
        price = a.sl_ord_px if a.sl_trigger_px is not None else a.tp_ord_px
        return {"algoId": int(a.algo_id), "clientAlgoId": a.algo_cl_ord_id, "algoType": "CONDITIONAL",
                "orderType": a.extra.get("binanceType", "STOP_MARKET"), "symbol": sym.id, "side": a.side.upper(),
                "positionSide": "BOTH", "timeInForce": "GTC", "quantity": s(a.qty), "algoStatus": status,
                "triggerPrice": s(trigger), "price": s(price or ZERO), "icebergQuantity": None,
                "selfTradePreventionMode": "NONE", "workingType": a.extra.get("workingType", "CONTRACT_PRICE"),
                "priceMatch": "NONE", "closePosition": False, "priceProtect": False, "reduceOnly": a.reduce_only,
                "createTime": a.created_ms, "updateTime": a.updated_ms, "triggerTime": a.triggered_ms,
                "goodTillDate": 0, "actualOrderId": a.ord_id}
