"""The OKX v5 dialect: the REST paths, fields, error codes and HTTP behaviour that the unmodified
``ccxt.okx`` class reads, translated to the venue-neutral engine.

Sizes: a swap's ``sz`` is in contracts (``ctVal`` base units each), a spot ``sz`` in base units (or quote
for a market buy with ``tgtCcy=quote_ccy``); the engine works in base units and this module converts, in
``_to_base``/``_to_venue`` only. Business errors answer HTTP 200 with ``code`` (and per-order ``sCode``)
as OKX does; authentication errors HTTP 401; the rate limit HTTP 429 with code 50011.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import AlgoSpec, Exchange, OrderSpec
from crypto.fakex.engine.instruments import Instrument, round_down
from crypto.fakex.engine.state import AlgoRec, BillRec, FillRec, OrderRec
from crypto.fakex.server import Credentials, Request, Response, ServerContext

PREFIX = "/api/v5/"
ZERO = Decimal(0)
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
TIMESTAMP_SKEW_MS = 30_000
ACCOUNT_IDS = {"6": "funding", "18": "trading"}
# Candle bars: 1m..30m, 1H..12H, 1D, 1W, with or without OKX's "utc" suffix (the fake aligns every bar on UTC).
BAR = re.compile(r"^(1|3|5|15|30|2|4|6|12)([mHDW])(?:utc)?$")
BAR_UNITS = {"m": 60_000, "H": 3_600_000, "D": 86_400_000, "W": 7 * 86_400_000}
ACCOUNT_NUMBERS = {v: k for k, v in ACCOUNT_IDS.items()}
BILL_TYPES = {"transfer": "1", "trade": "2", "liquidation": "5", "margin": "6", "funding": "8", "deposit": "1"}

# Neutral reason -> (OKX code, message). Codes and messages follow ccxt's okx.py map and OKX's error list;
# 51169/51170 (reduce-only) are not in ccxt's map and could not be confirmed in the stored docs. The ccxt class
# each one raises is in docs/crypto.md (tests hold them).
REASON_CODES: dict[Reason, tuple[str, str]] = {
    Reason.UNKNOWN_INSTRUMENT: ("51001", "Instrument ID does not exist"),
    Reason.BAD_PARAM: ("51000", "Parameter error"),
    Reason.TICK_SIZE: ("51000", "Parameter px error"),
    Reason.LOT_SIZE: ("51121", "Order quantity must be a multiple of the lot size."),
    Reason.MIN_SIZE: ("51020", "Your order should meet or exceed the minimum order amount."),
    Reason.MIN_NOTIONAL: ("51020", "Your order should meet or exceed the minimum order amount."),
    Reason.INSUFFICIENT_FUNDS: ("51008", "Order failed. Insufficient USDT balance in account."),
    Reason.DUPLICATE_CLIENT_ID: ("51016", "Duplicated clOrdId"),
    Reason.ORDER_NOT_FOUND: ("51400", "Cancellation failed as the order has been filled, canceled or does not exist."),
    Reason.ORDER_ALREADY_CANCELED: ("51401", "Cancellation failed as the order has been canceled."),
    Reason.ORDER_ALREADY_FILLED: ("51402", "Cancellation failed as the order has been completed."),
    Reason.REDUCE_ONLY_NO_POSITION: ("51169", "Order failed because you don't have any positions in this direction "
                                              "for this contract."),
    Reason.REDUCE_ONLY_SAME_SIDE: ("51170", "Failed to place order. A reduce-only order can't be the same as your "
                                            "current position direction."),
    Reason.REDUCE_ONLY_SPOT: ("51139", "Reduce-only feature is unavailable for spot transactions by simple account"),
    Reason.MARGIN_MODE_MISMATCH: ("51000", "Parameter tdMode error"),
    Reason.LEVERAGE_INVALID: ("59102", "Leverage exceeds the maximum leverage. Please adjust the leverage."),
    Reason.LEVERAGE_WITH_ORDERS: ("59000", "Settings failed. Close any open positions or pending orders before "
                                           "adjusting settings."),
    Reason.NO_POSITION: ("59300", "Margin call failed. Position does not exist."),
    Reason.MARGIN_REDUCE_TOO_LARGE: ("59301", "Margin adjustment failed for exceeding the max limit."),
    Reason.UNKNOWN_ACCOUNT: ("51000", "Parameter from error"),
    Reason.POST_ONLY_WOULD_TAKE: ("51511", "Modification failed as the order price did not meet the requirement "
                                           "for Post Only."),
}
AMEND_CODES: dict[Reason, tuple[str, str]] = {
    Reason.ORDER_NOT_FOUND: ("51503", "Order modification failed as the order does not exist."),
    Reason.ORDER_ALREADY_CANCELED: ("51509", "Modification failed as the order has been canceled."),
    Reason.ORDER_ALREADY_FILLED: ("51510", "Modification failed as the order has been completed."),
    Reason.INSUFFICIENT_FUNDS: ("51502", "Order modification failed for insufficient margin or balance."),
}


class OkxError(Exception):
    """An OKX error answer: ``code``, ``msg`` and the HTTP status (200 for business errors)."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def reject_code(exc: Reject, context: str = "") -> tuple[str, str]:
    if exc.reason == Reason.ORDER_NOT_FOUND and context == "query":
        return "51603", "Order does not exist"
    if exc.reason == Reason.INSUFFICIENT_FUNDS and context == "transfer":
        return "58350", "Insufficient balance"
    if context == "amend" and exc.reason in AMEND_CODES:
        return AMEND_CODES[exc.reason]
    code, msg = REASON_CODES[exc.reason]
    if exc.reason in (Reason.BAD_PARAM, Reason.TICK_SIZE) and exc.detail:
        msg = f"{msg}: {exc.detail}"
    return code, msg


def fmt(value: Decimal | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _ok(data: list[Any]) -> Response:
    return Response.json(200, {"code": "0", "msg": "", "data": data})


def _fail(code: str, msg: str, status: int = 200, data: list[Any] | None = None) -> Response:
    return Response.json(status, {"code": code, "msg": msg, "data": data or []})


@dataclass(frozen=True)
class Route:
    fn: Callable[[OkxDialect, Request, ServerContext], Response]
    private: bool
    limit: int  # requests per window, OKX's published figure for the endpoint (approximately)
    window_ms: int = 2000


def _dec(params: dict[str, Any], key: str, required: bool = True) -> Decimal | None:
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise OkxError("50014", f"Parameter {key} can not be empty")
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise OkxError("51000", f"Parameter {key} error") from None
    if not value.is_finite() or (value != 0 and not -30 <= value.adjusted() <= 30):
        raise OkxError("51000", f"Parameter {key} error")  # also keeps Decimal arithmetic far from overflow
    return value


def _str(params: dict[str, Any], key: str, required: bool = True) -> str:
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise OkxError("50014", f"Parameter {key} can not be empty")
        return ""
    return str(raw)


def _object(req: Request) -> dict[str, Any]:
    """The JSON body of an endpoint that takes one object (not a batch)."""
    body = req.json()
    if not isinstance(body, dict):
        raise OkxError("50002", "Json data format error: an object is expected")
    return body


def _batch(req: Request) -> list[Any]:
    """The JSON body of a batch endpoint: a non-empty list (each item is checked by the one-item handler)."""
    body = req.json()
    if not isinstance(body, list) or not body:
        raise OkxError("50002", "Json data format error")
    return body


def _bool(params: dict[str, Any], key: str) -> bool:
    raw = params.get(key, False)
    if isinstance(raw, bool):
        return raw
    return str(raw).lower() == "true"


class OkxDialect:
    name = "okx"
    prefixes = (PREFIX,)

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.routes: dict[tuple[str, str], Route] = _ROUTES

    # ------------------------------------------------------------------ dispatch
    def handle(self, req: Request, ctx: ServerContext) -> Response:
        endpoint = req.path[len(PREFIX):]
        route = self.routes.get((req.method, endpoint))
        if route is None:
            return _fail("404", "Not Found", 404)
        try:
            if route.private:
                self._authenticate(req, ctx)
            if not ctx.limiter.allow(endpoint, route.limit, route.window_ms, ctx.wall_ms()):
                return _fail("50011", "Too Many Requests", 429)
            return route.fn(self, req, ctx)
        except OkxError as exc:
            return _fail(exc.code, exc.msg, exc.status)
        except Reject as exc:
            code, msg = reject_code(exc)
            return _fail(code, msg)
        except ValueError:
            return _fail("50002", "Json data format error")

    def _authenticate(self, req: Request, ctx: ServerContext) -> None:
        h = req.headers
        key, sign = h.get("ok-access-key", ""), h.get("ok-access-sign", "")
        stamp, phrase = h.get("ok-access-timestamp", ""), h.get("ok-access-passphrase", "")
        if not key:
            raise OkxError("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', 401)
        if not sign:
            raise OkxError("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', 401)
        if not stamp:
            raise OkxError("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', 401)
        if not phrase:
            raise OkxError("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.', 401)
        if not hmac.compare_digest(key.encode(), self.credentials.api_key.encode()):
            raise OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)
        if not hmac.compare_digest(phrase.encode(), self.credentials.passphrase.encode()):
            raise OkxError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', 401)
        try:
            sent_ms = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            raise OkxError("50112", 'Invalid "OK-ACCESS-TIMESTAMP".', 401) from None
        if ctx.check_timestamp and abs(sent_ms - ctx.wall_ms()) > TIMESTAMP_SKEW_MS:
            raise OkxError("50102", "Timestamp request expired.", 401)
        # OKX signs timestamp + method + requestPath (with the query string for a GET) + body.
        prehash = stamp + req.method + req.target + req.body.decode("utf-8")
        digest = hmac.new(self.credentials.secret.encode(), prehash.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            raise OkxError("50113", "Invalid Sign.", 401)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _inst(ex: Exchange, inst_id: str) -> Instrument:
        inst = ex.instruments.get(inst_id)
        if inst is None:
            raise OkxError("51001", f"Instrument ID {inst_id} does not exist")
        return inst

    @staticmethod
    def _to_venue(inst: Instrument, qty: Decimal) -> Decimal:
        return qty / inst.contract_size if inst.is_swap else qty

    @staticmethod
    def _to_base(inst: Instrument, sz: Decimal) -> Decimal:
        return sz * inst.contract_size if inst.is_swap else sz

    @staticmethod
    def _inst_type(inst: Instrument) -> str:
        return "SWAP" if inst.is_swap else "SPOT"

    def _instruments_of(self, ex: Exchange, inst_type: str) -> list[Instrument]:
        return [i for i in ex.instruments.values() if self._inst_type(i) == inst_type.upper()]

    def _order_json(self, ex: Exchange, o: OrderRec) -> dict[str, Any]:
        inst = ex.instruments[o.inst_id]
        cancel_source = {"": "1", "post_only": "31", "ioc": "14", "fok": "14", "market_depth": "14",
                         "liquidation": "6", "reduce_only": "20"}.get(o.cancel_source, "0")
        return {
            "instType": self._inst_type(inst), "instId": o.inst_id, "ccy": "", "ordId": o.ord_id,
            "clOrdId": o.cl_ord_id, "tag": o.tag, "px": fmt(o.price), "pxUsd": "", "pxVol": "", "pxType": "",
            "sz": fmt(self._to_venue(inst, o.qty)), "pnl": "0", "ordType": o.ord_type, "side": o.side,
            "posSide": "net" if inst.is_swap else "", "tdMode": o.margin_mode,
            "accFillSz": fmt(self._to_venue(inst, o.filled)), "fillPx": fmt(o.last_fill_px),
            "tradeId": o.last_trade_id, "fillSz": fmt(self._to_venue(inst, o.last_fill_qty)),
            "fillTime": fmt(o.fill_ms) if o.fill_ms else "", "avgPx": fmt(o.avg_price), "state": o.state,
            "lever": fmt(o.leverage) if inst.is_swap else "", "attachAlgoClOrdId": "", "tpTriggerPx": "",
            "tpTriggerPxType": "", "tpOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "", "slOrdPx": "",
            "attachAlgoOrds": [], "stpId": "", "stpMode": "cancel_maker", "feeCcy": o.fee_ccy,
            "fee": fmt(-o.fee), "rebateCcy": o.fee_ccy, "rebate": "0", "source": "", "category": o.category,
            "reduceOnly": "true" if o.reduce_only else "false", "isTpLimit": "false",
            "cancelSource": cancel_source if o.state == "canceled" else "", "cancelSourceReason": o.cancel_source,
            "quickMgnType": "", "algoClOrdId": "", "algoId": o.algo_id,
            "tgtCcy": "" if inst.is_swap else "base_ccy", "uTime": fmt(o.updated_ms), "cTime": fmt(o.created_ms),
        }

    def _algo_json(self, ex: Exchange, a: AlgoRec) -> dict[str, Any]:
        inst = ex.instruments[a.inst_id]
        placed = ex.state.orders.get(a.ord_id) if a.ord_id else None
        return {
            "instType": self._inst_type(inst), "instId": a.inst_id, "ccy": "", "ordId": a.ord_id,
            "ordIdList": [a.ord_id] if a.ord_id else [], "algoId": a.algo_id, "clOrdId": a.algo_cl_ord_id,
            "algoClOrdId": a.algo_cl_ord_id, "sz": fmt(self._to_venue(inst, a.qty)), "closeFraction": "",
            "ordType": a.ord_type, "side": a.side, "posSide": "net" if inst.is_swap else "", "tdMode": a.margin_mode,
            "tgtCcy": "", "state": a.state, "lever": "", "tpTriggerPx": fmt(a.tp_trigger_px),
            "tpTriggerPxType": a.trigger_px_type if a.tp_trigger_px is not None else "",
            "tpOrdPx": ("-1" if a.tp_ord_px is None else fmt(a.tp_ord_px)) if a.tp_trigger_px is not None else "",
            "slTriggerPx": fmt(a.sl_trigger_px),
            "slTriggerPxType": a.trigger_px_type if a.sl_trigger_px is not None else "",
            "slOrdPx": ("-1" if a.sl_ord_px is None else fmt(a.sl_ord_px)) if a.sl_trigger_px is not None else "",
            "triggerPx": fmt(a.trigger_px), "triggerPxType": a.trigger_px_type if a.trigger_px is not None else "",
            "ordPx": ("-1" if a.order_px is None else fmt(a.order_px)) if a.ord_type == "trigger" else "",
            "actualSz": fmt(self._to_venue(inst, placed.qty)) if placed else "",
            "actualPx": fmt(placed.avg_price) if placed else "", "actualSide": a.side if placed else "",
            "triggerTime": fmt(a.triggered_ms) if a.triggered_ms else "",
            "reduceOnly": "true" if a.reduce_only else "false", "tag": a.tag, "failCode": a.fail_reason,
            "cTime": fmt(a.created_ms), "uTime": fmt(a.updated_ms), "last": fmt(ex.state.orders[a.ord_id].avg_price)
            if placed else "",
        }

    def _fill_json(self, ex: Exchange, f: FillRec) -> dict[str, Any]:
        inst = ex.instruments[f.inst_id]
        return {
            "instType": self._inst_type(inst), "instId": f.inst_id, "tradeId": f.trade_id, "ordId": f.ord_id,
            "clOrdId": f.cl_ord_id, "billId": f.bill_id, "subType": "1" if f.side == "buy" else "2", "tag": "",
            "fillPx": fmt(f.price), "fillSz": fmt(self._to_venue(inst, f.qty)), "fillIdxPx": "", "fillPnl": fmt(f.pnl),
            "fillPxVol": "", "fillPxUsd": "", "fillMarkVol": "", "fillFwdPx": "", "fillMarkPx": "",
            "side": f.side, "posSide": "net" if inst.is_swap else "", "execType": "M" if f.liquidity == "maker" else "T",
            "feeCcy": f.fee_ccy, "fee": fmt(-f.fee), "ts": fmt(f.ts_ms), "fillTime": fmt(f.ts_ms),
        }

    def _bill_json(self, ex: Exchange, b: BillRec) -> dict[str, Any]:
        inst = ex.instruments.get(b.inst_id)
        sub = {"trade": "1" if b.qty >= 0 else "2", "funding": "174" if (b.bal_chg + b.pos_bal_chg) >= 0 else "173",
               "transfer": "11" if b.bal_chg >= 0 else "12", "margin": "160" if b.sub_kind == "add" else "161",
               "liquidation": "100" if b.qty < 0 else "101", "deposit": "11"}.get(b.kind, "")
        pos = ex.state.positions.get(b.inst_id) if b.inst_id else None
        return {
            "bal": fmt(b.bal), "balChg": fmt(b.bal_chg), "billId": b.bill_id, "ccy": b.ccy, "clOrdId": "",
            "execType": "", "fee": fmt(-b.fee), "fillTime": fmt(b.ts_ms), "from": "", "instId": b.inst_id,
            "instType": self._inst_type(inst) if inst else "", "interest": "0",
            "mgnMode": (pos.margin_mode if pos else "") if inst and inst.is_swap else ("cash" if inst else ""),
            "notes": "", "ordId": b.ord_id, "pnl": fmt(b.pnl), "posBal": fmt(pos.margin) if pos else "0",
            "posBalChg": fmt(b.pos_bal_chg), "px": fmt(b.price) if b.price else "",
            "subType": sub, "sz": fmt(self._to_venue(inst, abs(b.qty))) if inst else fmt(abs(b.bal_chg)),
            "tag": "", "to": "", "tradeId": "", "ts": fmt(b.ts_ms), "type": BILL_TYPES.get(b.kind, "1"),
        }

    # ------------------------------------------------------------------ public
    def r_time(self, req: Request, ctx: ServerContext) -> Response:
        return _ok([{"ts": fmt(ctx.exchange.now_ms())}])

    def r_status(self, req: Request, ctx: ServerContext) -> Response:
        return _ok([])

    def r_instruments(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        inst_type = _str(dict(req.query), "instType").upper()
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise OkxError("51000", "Parameter instType error")
        inst_id = req.query.get("instId", "")
        data = []
        for inst in self._instruments_of(ex, inst_type):
            if inst_id and inst.inst_id != inst_id:
                continue
            family = f"{inst.base}-{inst.quote}"
            data.append({
                "instType": inst_type, "instId": inst.inst_id, "uly": family if inst.is_swap else "",
                "instFamily": family if inst.is_swap else "", "category": "1",
                "baseCcy": "" if inst.is_swap else inst.base, "quoteCcy": "" if inst.is_swap else inst.quote,
                "settleCcy": inst.settle or "", "ctVal": fmt(inst.contract_size) if inst.is_swap else "",
                "ctMult": "1" if inst.is_swap else "", "ctValCcy": inst.base if inst.is_swap else "",
                "optType": "", "stk": "", "listTime": fmt(ex.state.start_ms - 86_400_000 * 365), "expTime": "",
                "lever": fmt(inst.max_leverage) if inst.is_swap else "1", "tickSz": fmt(inst.tick),
                "lotSz": fmt(inst.lot), "minSz": fmt(inst.min_size), "ctType": "linear" if inst.is_swap else "",
                "alias": "", "state": "live", "ruleType": "normal", "maxLmtSz": "100000000",
                "maxMktSz": "1000000" if inst.is_swap else "1000000", "maxLmtAmt": "20000000",
                "maxMktAmt": "1000000", "maxTwapSz": "", "maxIcebergSz": "", "maxTriggerSz": "100000000",
                "maxStopSz": "1000000", "futureSettlement": False, "instIdCode": None,
            })
        return _ok(data)

    def r_ticker(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        inst = self._inst(ex, _str(dict(req.query), "instId"))
        return _ok([self._ticker_json(ex, inst)])

    def r_tickers(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        inst_type = _str(dict(req.query), "instType")
        return _ok([self._ticker_json(ex, i) for i in self._instruments_of(ex, inst_type)])

    def _ticker_json(self, ex: Exchange, inst: Instrument) -> dict[str, Any]:
        t = ex.ticker(inst.inst_id)
        vol = self._to_venue(inst, t.vol_24h)
        vol_ccy = t.vol_24h if inst.is_swap else t.vol_24h * t.last
        return {
            "instType": self._inst_type(inst), "instId": inst.inst_id, "last": fmt(t.last), "lastSz": "0",
            "askPx": fmt(t.ask), "askSz": fmt(self._to_venue(inst, t.ask_qty)), "bidPx": fmt(t.bid),
            "bidSz": fmt(self._to_venue(inst, t.bid_qty)), "open24h": fmt(t.open_24h), "high24h": fmt(t.high_24h),
            "low24h": fmt(t.low_24h), "volCcy24h": fmt(vol_ccy), "vol24h": fmt(vol), "ts": fmt(t.ts_ms),
            "sodUtc0": fmt(t.open_24h), "sodUtc8": fmt(t.open_24h),
        }

    def r_index_tickers(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        inst_id = req.query.get("instId", "")
        quote = req.query.get("quoteCcy", "")
        if not inst_id and not quote:
            raise OkxError("50014", "Parameter instId can not be empty")
        data = []
        seen: set[str] = set()
        for inst in ex.instruments.values():
            family = f"{inst.base}-{inst.quote}"
            if family in seen or (inst_id and family != inst_id) or (quote and inst.quote != quote):
                continue
            seen.add(family)
            px = ex.index_price(inst.inst_id)
            data.append({"instId": family, "idxPx": fmt(px), "high24h": fmt(px), "low24h": fmt(px),
                         "open24h": fmt(px), "sodUtc0": fmt(px), "sodUtc8": fmt(px), "ts": fmt(ex.now_ms())})
        return _ok(data)

    def r_books(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst = self._inst(ex, _str(q, "instId"))
        depth = int(_dec(q, "sz", required=False) or 1)
        book = ex.book(inst.inst_id, max(1, min(depth, 400)))

        def side(levels: tuple[tuple[Decimal, Decimal], ...]) -> list[list[str]]:
            return [[fmt(p), fmt(self._to_venue(inst, s)), "0", "1"] for p, s in levels]

        return _ok([{"asks": side(book.asks), "bids": side(book.bids), "ts": fmt(ex.now_ms())}])

    def r_candles(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst = self._inst(ex, _str(q, "instId"))
        bar = q.get("bar", "1m")
        match = BAR.match(bar)
        if match is None:
            raise OkxError("51000", "Parameter bar error")
        bar_ms = int(match.group(1)) * BAR_UNITS[match.group(2)]
        max_limit = 100 if req.path.endswith("history-candles") else 300
        limit = max(1, min(int(_dec(q, "limit", required=False) or 100), max_limit))
        after = _dec(q, "after", required=False)  # bars older than this
        before = _dec(q, "before", required=False)  # bars newer than this
        end = int(after) - 1 if after is not None else None
        rows = []
        for c in ex.candles(inst.inst_id, bar_ms, end, limit):
            if before is not None and c.ts_ms <= before:
                continue
            quote_vol = c.volume * c.close
            rows.append([fmt(c.ts_ms), fmt(c.open), fmt(c.high), fmt(c.low), fmt(c.close),
                         fmt(self._to_venue(inst, c.volume)), fmt(c.volume if inst.is_swap else quote_vol),
                         fmt(quote_vol), "1" if c.confirmed else "0"])
        return _ok(rows)

    def r_position_tiers(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst_type = _str(q, "instType").upper()
        td_mode = _str(q, "tdMode")
        if td_mode not in ("cross", "isolated"):
            raise OkxError("51000", "Parameter tdMode error")
        family = q.get("instFamily") or q.get("uly") or ""
        inst_id = q.get("instId", "")
        rows = []
        for inst in self._instruments_of(ex, inst_type):
            if (family and f"{inst.base}-{inst.quote}" != family) or (inst_id and inst.inst_id != inst_id):
                continue
            # One tier per instrument: the fake does not model tiered maintenance margin.
            rows.append({"uly": f"{inst.base}-{inst.quote}", "instFamily": f"{inst.base}-{inst.quote}",
                         "instId": inst.inst_id if not inst.is_swap else "", "tier": "1", "minSz": "0",
                         "maxSz": "100000000", "mmr": fmt(inst.mmr), "imr": fmt(1 / inst.max_leverage),
                         "maxLever": fmt(inst.max_leverage), "optMgnFactor": "0", "quoteMaxLoan": "",
                         "baseMaxLoan": ""})
        return _ok(rows)

    def r_trades(self, req: Request, ctx: ServerContext) -> Response:
        # Public trades are the fake's own fills (no other traders are modelled), newest first.
        ex = ctx.exchange
        q = dict(req.query)
        inst = self._inst(ex, _str(q, "instId"))
        limit = max(1, min(int(_dec(q, "limit", required=False) or 100), 500))
        rows = [{"instId": f.inst_id, "side": f.side, "sz": fmt(self._to_venue(inst, f.qty)), "px": fmt(f.price),
                 "tradeId": f.trade_id, "ts": fmt(f.ts_ms), "source": "0"}
                for f in reversed(ex.fills(inst.inst_id))]
        return _ok(rows[:limit])

    def r_mark_price(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst_id = q.get("instId", "")
        inst_type = q.get("instType", "SWAP").upper()
        insts = [self._inst(ex, inst_id)] if inst_id else self._instruments_of(ex, inst_type)
        return _ok([{"instType": self._inst_type(i) if i.is_swap else "MARGIN", "instId": i.inst_id,
                     "markPx": fmt(ex.mark_price(i.inst_id)), "ts": fmt(ex.now_ms())} for i in insts])

    def _swap(self, ex: Exchange, inst_id: str) -> Instrument:
        inst = self._inst(ex, inst_id)
        if not inst.is_swap:
            raise OkxError("51000", "Parameter instId error")
        return inst

    def r_funding_rate(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        inst_id = _str(dict(req.query), "instId")
        insts = ([i for i in ex.instruments.values() if i.is_swap] if inst_id == "ANY"  # OKX: every swap
                 else [self._swap(ex, inst_id)])
        return _ok([self._funding_json(ex, i) for i in insts])

    def _funding_json(self, ex: Exchange, inst: Instrument) -> dict[str, Any]:
        f = ex.funding(inst.inst_id)
        return {
            "instType": "SWAP", "instId": inst.inst_id, "fundingRate": fmt(f.rate), "nextFundingRate": "",
            "fundingTime": fmt(f.funding_time_ms), "nextFundingTime": fmt(f.next_funding_time_ms),
            "minFundingRate": fmt(-f.cap), "maxFundingRate": fmt(f.cap), "interestRate": "0.0001",
            "impactValue": "", "method": "current_period", "formulaType": "withRate", "premium": fmt(f.premium),
            "settFundingRate": fmt(f.last_rate), "settState": "settled", "sign": "", "ts": fmt(f.ts_ms),
        }

    def r_funding_history(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst = self._swap(ex, _str(q, "instId"))
        after = _dec(q, "after", required=False)  # records older than this time
        before = _dec(q, "before", required=False)  # records newer than this time
        limit = int(_dec(q, "limit", required=False) or 100)
        rows = sorted(ex.funding_history(inst.inst_id), key=lambda r: -r.funding_time_ms)
        rows = [r for r in rows if (after is None or r.funding_time_ms < after)
                and (before is None or r.funding_time_ms > before)]
        return _ok([{"instType": "SWAP", "instId": r.inst_id, "fundingRate": fmt(r.rate), "realizedRate": fmt(r.rate),
                     "fundingTime": fmt(r.funding_time_ms), "method": "current_period", "formulaType": "withRate"}
                    for r in rows[: max(1, min(limit, 100))]])

    # ------------------------------------------------------------------ private: account
    def r_currencies(self, req: Request, ctx: ServerContext) -> Response:
        chains = {"USDT": "TRC20", "BTC": "Bitcoin", "ETH": "ERC20", "SOL": "Solana"}
        ccys = sorted({c for i in ctx.exchange.instruments.values() for c in (i.base, i.quote)})
        return _ok([{"ccy": c, "name": c, "chain": f"{c}-{chains.get(c, c)}", "canDep": True, "canWd": True,
                     "canInternal": True, "minWd": "0.0001", "maxWd": "100000000", "minFee": "0", "maxFee": "0",
                     "fee": "0", "wdTickSz": "8", "mainNet": True, "logoLink": "", "minDep": "0.00000001",
                     "minDepArrivalConfirm": "1", "minWdUnlockConfirm": "1", "depQuotaFixed": "",
                     "usedDepQuotaFixed": "", "wdQuota": "10000000", "usedWdQuota": "0", "needTag": False}
                    for c in ccys])

    def r_balance(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        wanted = {c for c in req.query.get("ccy", "").split(",") if c}
        t = ex.now_ms()
        details = []
        total_eq = ZERO
        iso_eq = ZERO
        upl = ZERO
        for ccy, b in ex.balances("trading").items():
            usd = self._usd(ex, ccy)
            total_eq += b.equity * usd
            iso_eq += b.iso_margin * usd
            upl += b.upl * usd
            if wanted and ccy not in wanted:
                continue
            details.append({
                "ccy": ccy, "eq": fmt(b.equity), "cashBal": fmt(b.cash), "availBal": fmt(b.available),
                "availEq": fmt(b.available), "frozenBal": fmt(b.frozen), "ordFrozen": fmt(b.ord_frozen),
                "isoEq": fmt(b.iso_margin), "upl": fmt(b.upl), "isoUpl": "0", "disEq": fmt(b.equity * usd),
                "eqUsd": fmt(b.equity * usd), "uTime": fmt(t), "liab": "0", "crossLiab": "0", "isoLiab": "0",
                "interest": "0", "maxLoan": "", "mgnRatio": "", "notionalLever": "", "stgyEq": "0", "twap": "0",
                "spotInUseAmt": "", "borrowFroz": "", "fixedBal": "0", "imr": "", "mmr": "",
            })
        return _ok([{"uTime": fmt(t), "totalEq": fmt(total_eq), "isoEq": fmt(iso_eq), "adjEq": fmt(total_eq),
                     "ordFroz": "", "imr": "", "mmr": "", "mgnRatio": "", "notionalUsd": "", "upl": fmt(upl),
                     "borrowFroz": "", "details": details}])

    def _usd(self, ex: Exchange, ccy: str) -> Decimal:
        if ccy in ("USDT", "USDC", "USD"):
            return Decimal(1)
        spot = f"{ccy}-USDT"
        return ex.mark_price(spot) if spot in ex.instruments else ZERO

    def r_asset_balances(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        wanted = {c for c in req.query.get("ccy", "").split(",") if c}
        return _ok([{"ccy": c, "bal": fmt(b.cash), "availBal": fmt(b.available), "frozenBal": fmt(b.frozen)}
                    for c, b in ex.balances("funding").items() if not wanted or c in wanted])

    def r_positions(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        ids = [i for i in req.query.get("instId", "").split(",") if i]
        inst_type = req.query.get("instType", "")
        for i in ids:
            self._inst(ex, i)
        data = []
        for v in ex.positions(ids or None):
            inst = ex.instruments[v.rec.inst_id]
            if inst_type and self._inst_type(inst) != inst_type.upper():
                continue
            p = v.rec
            collateral = (p.margin if p.margin_mode == "isolated" else v.initial) + v.upl
            data.append({
                "instType": "SWAP", "instId": p.inst_id, "posId": p.pos_id, "posSide": "net",
                "pos": fmt(self._to_venue(inst, p.qty)), "availPos": fmt(self._to_venue(inst, abs(p.qty))),
                "posCcy": "", "ccy": inst.margin_ccy, "avgPx": fmt(p.entry), "markPx": fmt(v.mark),
                "upl": fmt(v.upl), "uplRatio": fmt(v.upl / v.initial) if v.initial else "0",
                "uplLastPx": fmt(v.upl), "lever": fmt(p.leverage), "liqPx": fmt(v.liq_price),
                "imr": fmt(v.initial) if p.margin_mode == "cross" else "",
                "margin": fmt(p.margin) if p.margin_mode == "isolated" else "", "mgnMode": p.margin_mode,
                "mgnRatio": fmt(collateral / v.maintenance) if v.maintenance else "", "mmr": fmt(v.maintenance),
                "notionalUsd": fmt(v.notional), "adl": "1", "last": fmt(v.mark),
                "idxPx": fmt(ex.index_price(p.inst_id)), "interest": "0", "realizedPnl": fmt(p.realized_pnl),
                "pnl": fmt(p.realized_pnl), "fee": "0", "fundingFee": fmt(p.funding_paid), "liqPenalty": "0",
                "cTime": fmt(p.created_ms), "uTime": fmt(p.updated_ms), "tradeId": "", "bizRefId": "",
                "bizRefType": "", "closeOrderAlgo": [], "deltaBS": "", "gammaBS": "", "thetaBS": "", "vegaBS": "",
            })
        return _ok(data)

    def r_config(self, req: Request, ctx: ServerContext) -> Response:
        return _ok([{"uid": "1", "mainUid": "1", "acctLv": "2", "posMode": "net_mode", "autoLoan": False,
                     "greeksType": "PA", "level": "Lv1", "levelTmp": "", "ctIsoMode": "automatic",
                     "mgnIsoMode": "automatic", "spotOffsetType": "", "roleType": "0", "traderInsts": [],
                     "opAuth": "0", "kycLv": "2", "label": "fakex", "ip": "127.0.0.1", "perm": "read_only,trade"}])

    def r_set_position_mode(self, req: Request, ctx: ServerContext) -> Response:
        mode = _str(_object(req), "posMode")
        if mode != "net_mode":
            raise OkxError("51000", "Parameter posMode error: fakex models one-way (net) mode only")
        return _ok([{"posMode": mode}])

    def r_set_leverage(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        p = _object(req)
        inst = self._inst(ex, _str(p, "instId"))
        lever = _dec(p, "lever")
        mode = _str(p, "mgnMode")
        pos_side = str(p.get("posSide") or "net")
        if pos_side != "net":
            raise OkxError("51000", "Parameter posSide error")
        if not inst.is_swap:
            raise OkxError("51000", "Parameter instId error: spot margin is not modelled")
        assert lever is not None
        ex.set_leverage(inst.inst_id, lever, mode)
        return _ok([{"instId": inst.inst_id, "lever": fmt(lever), "mgnMode": mode, "posSide": pos_side}])

    def r_leverage_info(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        mode = _str(q, "mgnMode")
        ids = [i for i in _str(q, "instId").split(",") if i]
        return _ok([{"instId": i, "mgnMode": mode, "posSide": "net", "lever": fmt(ex.leverage(self._inst(ex, i).inst_id,
                                                                                            mode))}
                    for i in ids])

    def r_margin_balance(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        p = _object(req)
        inst = self._inst(ex, _str(p, "instId"))
        kind = _str(p, "type")
        if kind not in ("add", "reduce"):
            raise OkxError("51000", "Parameter type error")
        amt = _dec(p, "amt")
        assert amt is not None
        view = ex.adjust_margin(inst.inst_id, amt, kind == "add")
        return _ok([{"instId": inst.inst_id, "posSide": "net", "amt": fmt(amt), "type": kind,
                     "leverage": fmt(view.rec.leverage), "ccy": inst.margin_ccy}])

    def r_trade_fee(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst_type = _str(q, "instType").upper()
        inst_id = q.get("instId", "")
        insts = [self._inst(ex, inst_id)] if inst_id else self._instruments_of(ex, inst_type)
        if not insts:
            raise OkxError("51000", "Parameter instType error")
        i = insts[0]
        return _ok([{"category": "1", "delivery": "", "exercise": "", "instType": inst_type, "level": "Lv1",
                     "maker": fmt(-i.maker_fee), "taker": fmt(-i.taker_fee), "makerU": fmt(-i.maker_fee),
                     "takerU": fmt(-i.taker_fee), "makerUSDC": "", "takerUSDC": "", "ruleType": "normal",
                     "ts": fmt(ex.now_ms()), "fiat": []}])

    def r_bills(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        kind = q.get("type", "")
        inst_type = q.get("instType", "").upper()
        ccy = q.get("ccy", "")
        inst_id = q.get("instId", "")
        limit = int(_dec(q, "limit", required=False) or 100)
        after = q.get("after", "")
        before = q.get("before", "")
        rows = []
        for b in reversed(ex.bills("trading")):
            if b.kind == "deposit":
                continue
            if kind and BILL_TYPES.get(b.kind) != kind:
                continue
            inst = ex.instruments.get(b.inst_id)
            if inst_type and (inst is None or self._inst_type(inst) != inst_type):
                continue
            if (ccy and b.ccy != ccy) or (inst_id and b.inst_id != inst_id):
                continue
            if (after and int(b.bill_id) >= int(after)) or (before and int(b.bill_id) <= int(before)):
                continue
            rows.append(self._bill_json(ex, b))
            if len(rows) >= max(1, min(limit, 100)):
                break
        return _ok(rows)

    # ------------------------------------------------------------------ private: orders
    def _order_spec(self, ex: Exchange, p: dict[str, Any]) -> OrderSpec:
        inst = self._inst(ex, _str(p, "instId"))
        td_mode = _str(p, "tdMode")
        side = _str(p, "side")
        ord_type = _str(p, "ordType")
        if side not in ("buy", "sell"):
            raise OkxError("51000", "Parameter side error")
        if ord_type == "optimal_limit_ioc":
            ord_type = "market"
        if ord_type not in ("limit", "market", "post_only", "ioc", "fok"):
            raise OkxError("51000", f"Parameter ordType error: {ord_type} is not modelled")
        if inst.is_swap:
            if td_mode not in ("cross", "isolated"):
                raise OkxError("51000", "Parameter tdMode error")
            if str(p.get("posSide") or "net") != "net":
                raise OkxError("51000", "Parameter posSide error: the account is in net (one-way) mode")
        elif td_mode != "cash":
            raise OkxError("51000", "Parameter tdMode error: spot margin trading is not modelled")
        if p.get("attachAlgoOrds"):
            raise OkxError("51000", "Parameter attachAlgoOrds error: place the stop as an algo order")
        cl = str(p.get("clOrdId") or "")
        if cl and not CLIENT_ID.match(cl):
            raise OkxError("51000", "Parameter clOrdId error")
        sz = _dec(p, "sz")
        assert sz is not None
        if sz <= 0:
            raise OkxError("51000", "Parameter sz error")
        price = _dec(p, "px", required=ord_type != "market") if ord_type != "market" else None
        qty = self._to_base(inst, sz)
        if not inst.is_swap and ord_type == "market" and side == "buy" and p.get("tgtCcy", "quote_ccy") != "base_ccy":
            # OKX's default for a spot market buy: sz is the quote amount to spend.
            qty = round_down(sz / ex.book(inst.inst_id, 1).best_ask, inst.qty_step)
            if qty <= 0:
                raise OkxError("51020", "Your order should meet or exceed the minimum order amount.")
        return OrderSpec(inst_id=inst.inst_id, side=side, ord_type=ord_type, qty=qty, price=price, client_id=cl,
                         reduce_only=_bool(p, "reduceOnly"), margin_mode=td_mode, tag=str(p.get("tag") or ""))

    def _place_one(self, ex: Exchange, p: Any) -> dict[str, Any]:
        cl = str(p.get("clOrdId") or "") if isinstance(p, dict) else ""
        tag = str(p.get("tag") or "") if isinstance(p, dict) else ""
        ts = fmt(ex.now_ms())
        try:
            if not isinstance(p, dict):
                raise OkxError("50002", "Json data format error")
            order = ex.place_order(self._order_spec(ex, p))
        except OkxError as exc:
            return {"clOrdId": cl, "ordId": "", "tag": tag, "ts": ts, "sCode": exc.code, "sMsg": exc.msg}
        except Reject as exc:
            code, msg = reject_code(exc)
            return {"clOrdId": cl, "ordId": "", "tag": tag, "ts": ts, "sCode": code, "sMsg": msg}
        return {"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "tag": order.tag, "ts": ts, "sCode": "0",
                "sMsg": "Order placed"}

    @staticmethod
    def _batch_answer(rows: list[dict[str, Any]]) -> Response:
        failed = sum(1 for r in rows if r["sCode"] != "0")
        if failed == 0:
            return _ok(rows)
        if failed == len(rows):
            return _fail("1", "All operations failed", data=rows)
        return _fail("2", "Batch operation partially succeeded", data=rows)

    def r_order(self, req: Request, ctx: ServerContext) -> Response:
        return self._batch_answer([self._place_one(ctx.exchange, req.json())])

    def r_batch_orders(self, req: Request, ctx: ServerContext) -> Response:
        body = _batch(req)
        if len(body) > 20:
            raise OkxError("51111", "Maximum 20 orders can be placed in bulk")
        return self._batch_answer([self._place_one(ctx.exchange, p) for p in body])

    def r_close_position(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        p = _object(req)
        inst = self._swap(ex, _str(p, "instId"))
        mode = _str(p, "mgnMode")
        if str(p.get("posSide") or "net") != "net":
            raise OkxError("51000", "Parameter posSide error: the account is in net (one-way) mode")
        cl = str(p.get("clOrdId") or "")
        if cl and not CLIENT_ID.match(cl):
            raise OkxError("51000", "Parameter clOrdId error")
        views = ex.positions([inst.inst_id])
        if not views or views[0].rec.margin_mode != mode:
            raise OkxError("51023", "Position does not exist")
        pos = views[0].rec
        # OKX closes the whole position at market; here a reduce-only market order in its margin mode.
        ex.place_order(OrderSpec(inst_id=inst.inst_id, side="sell" if pos.qty > 0 else "buy", ord_type="market",
                                 qty=abs(pos.qty), client_id=cl, reduce_only=True, margin_mode=mode,
                                 tag=str(p.get("tag") or "")))
        return _ok([{"instId": inst.inst_id, "posSide": "net", "clOrdId": cl, "tag": str(p.get("tag") or "")}])

    def _cancel_one(self, ex: Exchange, p: Any) -> dict[str, Any]:
        cl = str(p.get("clOrdId") or "") if isinstance(p, dict) else ""
        oid = str(p.get("ordId") or "") if isinstance(p, dict) else ""
        ts = fmt(ex.now_ms())
        try:
            if not isinstance(p, dict):
                raise OkxError("50002", "Json data format error")
            inst = self._inst(ex, _str(p, "instId"))
            if not oid and not cl:
                raise OkxError("51003", "Either client order ID or order ID is required.")
            order = ex.cancel_order(inst.inst_id, ord_id=oid or None, cl_ord_id=None if oid else cl)
        except OkxError as exc:
            return {"clOrdId": cl, "ordId": oid, "ts": ts, "sCode": exc.code, "sMsg": exc.msg}
        except Reject as exc:
            code, msg = reject_code(exc)
            return {"clOrdId": cl, "ordId": oid, "ts": ts, "sCode": code, "sMsg": msg}
        return {"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "ts": ts, "sCode": "0", "sMsg": ""}

    def _amend_one(self, ex: Exchange, p: Any) -> dict[str, Any]:
        cl = str(p.get("clOrdId") or "") if isinstance(p, dict) else ""
        oid = str(p.get("ordId") or "") if isinstance(p, dict) else ""
        req_id = str(p.get("reqId") or "") if isinstance(p, dict) else ""
        ts = fmt(ex.now_ms())
        try:
            if not isinstance(p, dict):
                raise OkxError("50002", "Json data format error")
            inst = self._inst(ex, _str(p, "instId"))
            if not oid and not cl:
                raise OkxError("51003", "Either client order ID or order ID is required.")
            new_sz = _dec(p, "newSz", required=False)
            new_px = _dec(p, "newPx", required=False)
            if new_sz is None and new_px is None:
                raise OkxError("51500", "Either order price or amount is required")
            try:
                order = ex.amend_order(inst.inst_id, ord_id=oid or None, cl_ord_id=None if oid else cl,
                                       new_qty=self._to_base(inst, new_sz) if new_sz is not None else None,
                                       new_price=new_px)
            except Reject as exc:
                if _bool(p, "cxlOnFail") and exc.reason not in (Reason.ORDER_NOT_FOUND, Reason.ORDER_ALREADY_CANCELED,
                                                                Reason.ORDER_ALREADY_FILLED):
                    ex.cancel_order(inst.inst_id, ord_id=oid or None, cl_ord_id=None if oid else cl)
                raise
        except OkxError as exc:
            return {"clOrdId": cl, "ordId": oid, "reqId": req_id, "ts": ts, "sCode": exc.code, "sMsg": exc.msg}
        except Reject as exc:
            code, msg = reject_code(exc, "amend")
            return {"clOrdId": cl, "ordId": oid, "reqId": req_id, "ts": ts, "sCode": code, "sMsg": msg}
        return {"clOrdId": order.cl_ord_id, "ordId": order.ord_id, "reqId": req_id, "ts": ts, "sCode": "0",
                "sMsg": ""}

    def r_amend_order(self, req: Request, ctx: ServerContext) -> Response:
        return self._batch_answer([self._amend_one(ctx.exchange, req.json())])

    def r_amend_batch(self, req: Request, ctx: ServerContext) -> Response:
        body = _batch(req)
        return self._batch_answer([self._amend_one(ctx.exchange, p) for p in body])

    def r_cancel_order(self, req: Request, ctx: ServerContext) -> Response:
        return self._batch_answer([self._cancel_one(ctx.exchange, req.json())])

    def r_cancel_batch(self, req: Request, ctx: ServerContext) -> Response:
        body = _batch(req)
        return self._batch_answer([self._cancel_one(ctx.exchange, p) for p in body])

    def r_get_order(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst = self._inst(ex, _str(q, "instId"))
        oid, cl = q.get("ordId", ""), q.get("clOrdId", "")
        if not oid and not cl:
            raise OkxError("51003", "Either client order ID or order ID is required.")
        try:
            order = ex.get_order(inst.inst_id, ord_id=oid or None, cl_ord_id=None if oid else cl)
        except Reject as exc:
            code, msg = reject_code(exc, "query")
            return _fail(code, msg)
        return _ok([self._order_json(ex, order)])

    def _filter_orders(self, ex: Exchange, q: dict[str, str], live: bool) -> list[dict[str, Any]]:
        inst_type = q.get("instType", "").upper()
        inst_id = q.get("instId", "")
        ord_type = q.get("ordType", "")
        state = q.get("state", "")
        limit = int(_dec(q, "limit", required=False) or 100)
        rows = []
        for o in sorted(ex.orders(inst_id or None, live=live), key=lambda o: -int(o.ord_id)):
            inst = ex.instruments[o.inst_id]
            if inst_type and self._inst_type(inst) != inst_type:
                continue
            if (ord_type and o.ord_type not in ord_type.split(",")) or (state and o.state != state):
                continue
            rows.append(self._order_json(ex, o))
        return rows[: max(1, min(limit, 100))]

    def r_orders_pending(self, req: Request, ctx: ServerContext) -> Response:
        return _ok(self._filter_orders(ctx.exchange, dict(req.query), live=True))

    def r_orders_history(self, req: Request, ctx: ServerContext) -> Response:
        q = dict(req.query)
        _str(q, "instType")
        return _ok(self._filter_orders(ctx.exchange, q, live=False))

    def r_fills(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        inst_type = q.get("instType", "").upper()
        inst_id = q.get("instId", "")
        oid = q.get("ordId", "")
        begin = _dec(q, "begin", required=False)
        end = _dec(q, "end", required=False)
        limit = int(_dec(q, "limit", required=False) or 100)
        rows = []
        for f in reversed(ex.fills(inst_id or None)):
            inst = ex.instruments[f.inst_id]
            if (inst_type and self._inst_type(inst) != inst_type) or (oid and f.ord_id != oid):
                continue
            if (begin is not None and f.ts_ms < begin) or (end is not None and f.ts_ms > end):
                continue
            rows.append(self._fill_json(ex, f))
        return _ok(rows[: max(1, min(limit, 100))])

    # ------------------------------------------------------------------ private: algo orders
    def r_order_algo(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        p = req.json()
        if not isinstance(p, dict):
            raise OkxError("50002", "Json data format error")
        cl = str(p.get("algoClOrdId") or p.get("clOrdId") or "")
        try:
            spec = self._algo_spec(ex, p, cl)
            algo = ex.place_algo(spec)
        except OkxError as exc:
            return _fail("1", "Operation failed.", data=[{"algoId": "", "algoClOrdId": cl, "clOrdId": cl,
                                                          "sCode": exc.code, "sMsg": exc.msg, "tag": ""}])
        except Reject as exc:
            code, msg = reject_code(exc)
            return _fail("1", "Operation failed.", data=[{"algoId": "", "algoClOrdId": cl, "clOrdId": cl,
                                                          "sCode": code, "sMsg": msg, "tag": ""}])
        return _ok([{"algoId": algo.algo_id, "algoClOrdId": algo.algo_cl_ord_id, "clOrdId": algo.algo_cl_ord_id,
                     "sCode": "0", "sMsg": "", "tag": algo.tag}])

    def _algo_spec(self, ex: Exchange, p: dict[str, Any], cl: str) -> AlgoSpec:
        inst = self._inst(ex, _str(p, "instId"))
        side = _str(p, "side")
        ord_type = _str(p, "ordType")
        td_mode = _str(p, "tdMode")
        if side not in ("buy", "sell"):
            raise OkxError("51000", "Parameter side error")
        if ord_type not in ("conditional", "oco", "trigger"):
            raise OkxError("51000", f"Parameter ordType error: {ord_type} is not modelled")
        if cl and not CLIENT_ID.match(cl):
            raise OkxError("51000", "Parameter algoClOrdId error")
        if inst.is_swap and td_mode not in ("cross", "isolated"):
            raise OkxError("51000", "Parameter tdMode error")
        sz = _dec(p, "sz")
        assert sz is not None

        def px(key: str) -> Decimal | None:
            value = _dec(p, key, required=False)
            return None if value is None or value == -1 else value

        kinds = {p.get(k) for k in ("triggerPxType", "slTriggerPxType", "tpTriggerPxType") if p.get(k)}
        if len(kinds) > 1:
            raise OkxError("51000", "Parameter triggerPxType error: one trigger price type per order in fakex")
        return AlgoSpec(inst_id=inst.inst_id, side=side, ord_type=ord_type, qty=self._to_base(inst, sz),
                        trigger_px=px("triggerPx"), order_px=px("orderPx"), sl_trigger_px=px("slTriggerPx"),
                        sl_ord_px=px("slOrdPx"), tp_trigger_px=px("tpTriggerPx"), tp_ord_px=px("tpOrdPx"),
                        trigger_px_type=str(kinds.pop()) if kinds else "last", reduce_only=_bool(p, "reduceOnly"),
                        margin_mode=td_mode if inst.is_swap else "cash", client_id=cl, tag=str(p.get("tag") or ""))

    def r_cancel_algos(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        body = _batch(req)
        rows = []
        for p in body:
            aid = str(p.get("algoId") or "") if isinstance(p, dict) else ""
            cl = str(p.get("algoClOrdId") or "") if isinstance(p, dict) else ""
            try:
                algo = ex.cancel_algo(aid or None, None if aid else cl)
                rows.append({"algoId": algo.algo_id, "algoClOrdId": algo.algo_cl_ord_id, "sCode": "0", "sMsg": ""})
            except Reject as exc:
                code, msg = reject_code(exc)
                rows.append({"algoId": aid, "algoClOrdId": cl, "sCode": code, "sMsg": msg})
        return self._batch_answer(rows)

    def r_get_algo(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        aid, cl = q.get("algoId", ""), q.get("algoClOrdId", "")
        if not aid and not cl:
            raise OkxError("51000", "Parameter algoId error")
        try:
            algo = ex.get_algo(aid or None, None if aid else cl)
        except Reject as exc:
            code, msg = reject_code(exc, "query")
            return _fail(code, msg)
        return _ok([self._algo_json(ex, algo)])

    def _filter_algos(self, ex: Exchange, q: dict[str, str], live: bool) -> list[dict[str, Any]]:
        kinds = [k for k in q.get("ordType", "").split(",") if k]
        if not kinds and not q.get("algoId"):
            raise OkxError("50014", "Parameter ordType can not be empty")
        inst_id = q.get("instId", "")
        state = q.get("state", "")
        rows = []
        for a in sorted(ex.algos(inst_id or None, live=live), key=lambda a: -int(a.algo_id)):
            if (kinds and a.ord_type not in kinds) or (state and a.state != state):
                continue
            if q.get("algoId") and a.algo_id != q["algoId"]:
                continue
            rows.append(self._algo_json(ex, a))
        return rows[:100]

    def r_algos_pending(self, req: Request, ctx: ServerContext) -> Response:
        return _ok(self._filter_algos(ctx.exchange, dict(req.query), live=True))

    def r_algos_history(self, req: Request, ctx: ServerContext) -> Response:
        return _ok(self._filter_algos(ctx.exchange, dict(req.query), live=False))

    # ------------------------------------------------------------------ private: transfers
    def r_transfer(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        p = _object(req)
        ccy = _str(p, "ccy")
        amt = _dec(p, "amt")
        assert amt is not None
        kind = str(p.get("type") or "0")
        if kind != "0":
            raise OkxError("51000", "Parameter type error: sub-account transfers are not modelled")
        src, dst = ACCOUNT_IDS.get(_str(p, "from")), ACCOUNT_IDS.get(_str(p, "to"))
        if src is None or dst is None:
            raise OkxError("51000", "Parameter from/to error: 6 (funding) or 18 (trading)")
        client_id = str(p.get("clientId") or "")
        if client_id and not CLIENT_ID.match(client_id):
            raise OkxError("51000", "Parameter clientId error")
        try:
            rec = ex.transfer(ccy, amt, src, dst, client_id)
        except Reject as exc:
            code, msg = reject_code(exc, "transfer")
            return _fail(code, msg)
        return _ok([{"transId": rec.trans_id, "ccy": rec.ccy, "clientId": rec.client_id,
                     "from": ACCOUNT_NUMBERS[rec.from_account], "amt": fmt(rec.amount),
                     "to": ACCOUNT_NUMBERS[rec.to_account]}])

    def r_transfer_state(self, req: Request, ctx: ServerContext) -> Response:
        ex = ctx.exchange
        q = dict(req.query)
        tid, cid = q.get("transId", ""), q.get("clientId", "")
        if not tid and not cid:
            raise OkxError("50014", "Parameter transId can not be empty")
        try:
            rec = ex.get_transfer(tid or None, None if tid else cid)
        except Reject:
            return _fail("58129", "Parameter transId error")
        return _ok([{"transId": rec.trans_id, "clientId": rec.client_id, "ccy": rec.ccy, "amt": fmt(rec.amount),
                     "type": "0", "from": ACCOUNT_NUMBERS[rec.from_account], "to": ACCOUNT_NUMBERS[rec.to_account],
                     "subAcct": "", "instId": "", "toInstId": "", "state": rec.state, "ts": fmt(rec.ts_ms)}])


def _r(name: str, private: bool, limit: int, window_ms: int = 2000) -> Route:
    return Route(getattr(OkxDialect, name), private, limit, window_ms)


# (method, path under /api/v5/) -> handler, whether it is signed, and OKX's published rate limit.
_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "public/time"): _r("r_time", False, 10),
    ("GET", "system/status"): _r("r_status", False, 1, 5000),
    ("GET", "public/instruments"): _r("r_instruments", False, 20),
    ("GET", "market/ticker"): _r("r_ticker", False, 20),
    ("GET", "market/tickers"): _r("r_tickers", False, 20),
    ("GET", "market/index-tickers"): _r("r_index_tickers", False, 20),
    ("GET", "market/books"): _r("r_books", False, 40),
    ("GET", "market/trades"): _r("r_trades", False, 100),
    ("GET", "market/candles"): _r("r_candles", False, 40),
    ("GET", "market/history-candles"): _r("r_candles", False, 20),
    ("GET", "public/mark-price"): _r("r_mark_price", False, 10),
    ("GET", "public/position-tiers"): _r("r_position_tiers", False, 10),
    ("GET", "public/funding-rate"): _r("r_funding_rate", False, 20),
    ("GET", "public/funding-rate-history"): _r("r_funding_history", False, 10),
    ("GET", "asset/currencies"): _r("r_currencies", True, 6, 1000),
    ("GET", "asset/balances"): _r("r_asset_balances", True, 6, 1000),
    ("POST", "asset/transfer"): _r("r_transfer", True, 2, 1000),
    ("GET", "asset/transfer-state"): _r("r_transfer_state", True, 10, 1000),
    ("GET", "account/balance"): _r("r_balance", True, 10),
    ("GET", "account/positions"): _r("r_positions", True, 10),
    ("GET", "account/config"): _r("r_config", True, 5),
    ("POST", "account/set-position-mode"): _r("r_set_position_mode", True, 5),
    ("POST", "account/set-leverage"): _r("r_set_leverage", True, 20),
    ("GET", "account/leverage-info"): _r("r_leverage_info", True, 20),
    ("POST", "account/position/margin-balance"): _r("r_margin_balance", True, 20),
    ("GET", "account/trade-fee"): _r("r_trade_fee", True, 5),
    ("GET", "account/bills"): _r("r_bills", True, 6, 1000),
    ("GET", "account/bills-archive"): _r("r_bills", True, 5),
    ("POST", "trade/order"): _r("r_order", True, 60),
    ("POST", "trade/batch-orders"): _r("r_batch_orders", True, 300),
    ("POST", "trade/cancel-order"): _r("r_cancel_order", True, 60),
    ("POST", "trade/close-position"): _r("r_close_position", True, 20),
    ("POST", "trade/amend-order"): _r("r_amend_order", True, 60),
    ("POST", "trade/amend-batch-orders"): _r("r_amend_batch", True, 300),
    ("POST", "trade/cancel-batch-orders"): _r("r_cancel_batch", True, 300),
    ("GET", "trade/order"): _r("r_get_order", True, 60),
    ("GET", "trade/orders-pending"): _r("r_orders_pending", True, 60),
    ("GET", "trade/orders-history"): _r("r_orders_history", True, 40),
    ("GET", "trade/orders-history-archive"): _r("r_orders_history", True, 20),
    ("GET", "trade/fills"): _r("r_fills", True, 60),
    ("GET", "trade/fills-history"): _r("r_fills", True, 10),
    ("POST", "trade/order-algo"): _r("r_order_algo", True, 20),
    ("POST", "trade/cancel-algos"): _r("r_cancel_algos", True, 20),
    ("GET", "trade/order-algo"): _r("r_get_algo", True, 20),
    ("GET", "trade/orders-algo-pending"): _r("r_algos_pending", True, 20),
    ("GET", "trade/orders-algo-history"): _r("r_algos_history", True, 20),
}
