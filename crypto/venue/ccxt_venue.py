"""``CcxtVenue``: the ``Venue`` Protocol over an unmodified ccxt exchange object (OKX v5, Binance PM).

The adapter is the imperative shell around three pure pieces: ``units`` (contracts <-> base units),
``errors`` (ccxt exceptions -> ``VenueError``) and the ``*_from_ccxt`` parsers below, which turn ccxt's
unified structures into our records and can be tested with ccxt's own parsers and no server.

Rules the adapter applies on every order (they are the venue's, stated once here):

- the quantity is rounded **down** to the lot (``units.to_contracts``); less than one lot is ``MIN_QTY``;
- a price or trigger off the tick is refused (``TICK_SIZE``): a price is never silently moved;
- with ``precheck`` (the default) an order under the market's min size or min notional is refused
  before it is sent (``MIN_QTY`` / ``MIN_NOTIONAL``), saving a request and a rate-limit token;
- OKX swaps go in one-way mode (``posSide=net``) with ``tdMode`` = the order's margin mode (default: the
  mode last set for the symbol, else isolated); stops are OKX algo ``trigger`` orders whose client id is
  ``algoClOrdId``; a post-only order that would take is accepted by OKX and then cancelled, which the
  adapter reads back and reports as ``POST_ONLY_WOULD_TAKE``;
- a client id this object already sent is looked up before it is sent again: if that order is live or
  has filled anything, the resend is refused as ``DUPLICATE_CLIENT_ID`` (venues refuse only a *live*
  duplicate, so a resend after a lost answer on an order that filled at once would fill twice);
- Binance portfolio margin: ``account="margin"`` (spot symbols) goes to ``papi`` margin orders,
  ``account="um"`` (USDT perpetuals) to ``papi`` UM orders; post-only is ``LIMIT_MAKER`` on margin and
  ``GTX`` on UM.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from core.oms.reasons import VenueReason
from crypto.venue.errors import mapped_errors, reason_for_code
from crypto.venue.types import (
    ZERO,
    Account,
    Balance,
    Book,
    Fill,
    FundingPayment,
    FundingRate,
    MarginMode,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Ticker,
    Transfer,
    VenueError,
    VenueOrder,
)
from crypto.venue.units import is_multiple, to_base, to_contracts

T = TypeVar("T")
R = VenueReason

# Client order id rules. OKX clOrdId / algoClOrdId: 1-32 letters and digits. Binance
# newClientOrderId: ^[.A-Z:/a-z0-9_-]{1,36}$.
CLIENT_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    "okx": re.compile(r"^[A-Za-z0-9]{1,32}$"),
    "binance": re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$"),
}
# OKX asset/transfer-state for a key it does not know: 58129 "Parameter transId error" (58128/58117 kin).
OKX_TRANSFER_UNKNOWN = frozenset({"58129"})
# OKX cancelSource 31: "the post-only order would take liquidity" (order details, cancelSource).
OKX_POST_ONLY_CANCEL_SOURCE = "31"
_STATUSES: dict[str, OrderStatus] = {"open": "open", "closed": "closed", "canceled": "canceled",
                                     "cancelled": "canceled", "rejected": "rejected", "expired": "expired"}
SENT_MEMORY = 10_000  # client ids remembered per venue object for the resend check
_HOUR_MS = 3_600_000
_INTERVALS_MS = {"1h": _HOUR_MS, "2h": 2 * _HOUR_MS, "4h": 4 * _HOUR_MS, "8h": 8 * _HOUR_MS,
                 "16h": 16 * _HOUR_MS, "24h": 24 * _HOUR_MS}


def okx_transfer_client_id(transfer_id: str) -> str:
    """OKX's transfer ``clientId`` takes 1-32 letters or digits; a caller's key outside that (``tr-a-b-7``) is
    sent as ``t`` + 31 hex digits of its SHA-256: the same key always gives the same venue id."""
    if CLIENT_ID_PATTERNS["okx"].match(transfer_id):
        return transfer_id
    return "t" + hashlib.sha256(transfer_id.encode("utf-8")).hexdigest()[:31]


class BadAnswer(ValueError):
    """A venue answer that cannot be true (not a number, NaN, infinite, a fill above the order, a price at
    or under 0): the whole answer is refused as ``VENUE_ERROR``/``BAD_ANSWER``, never half-read."""


# What a malformed answer raises inside ccxt's parsers (ValueError from its Precise on "abc") or ours
# (Decimal's InvalidOperation past 28 digits, a missing key, a list where an object should be).
_MALFORMED = (ValueError, ArithmeticError, TypeError, KeyError, IndexError, AttributeError)
BAD_ANSWER = "BAD_ANSWER"

F = TypeVar("F", bound=Callable[..., Any])


def _answers(sent: bool = False) -> Callable[[F], F]:
    """A public method whose venue answer may be malformed: that answer leaves as a ``VenueError`` with
    ``venue_code="BAD_ANSWER"`` (a read: ``VENUE_ERROR``, nothing decided on it; after a send:
    ``UNKNOWN_OUTCOME``, the order may stand and is looked up by its client id)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: CcxtVenue, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except VenueError:
                raise
            except _MALFORMED as exc:
                raise VenueError(reason=R.UNKNOWN_OUTCOME if sent else R.VENUE_ERROR, venue_code=BAD_ANSWER,
                                 message=f"{self.name} {fn.__name__}: malformed answer: "
                                         f"{type(exc).__name__}: {str(exc)[:160]}") from exc
        return inner  # type: ignore[return-value]
    return wrap


def dec(value: Any) -> Decimal | None:
    """ccxt number or numeric string -> exact Decimal (floats via their shortest repr), None stays None;
    NaN, an infinity or text is a ``BadAnswer``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadAnswer(f"a boolean where a number goes: {value!r}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise BadAnswer(f"not a number: {str(value)[:40]!r}") from None
    if not result.is_finite():
        raise BadAnswer(f"not a finite number: {str(value)[:40]!r}")
    return result


def dec0(value: Any) -> Decimal:
    result = dec(value)
    return ZERO if result is None else result


def _positive(value: Any) -> Decimal | None:
    result = dec(value)
    return result if result is not None and result > 0 else None


def market_from_ccxt(m: Mapping[str, Any]) -> Market:
    """A ccxt unified market -> ``Market`` with every filter in base units."""
    contract = bool(m.get("contract"))
    contract_size = dec(m.get("contractSize")) if contract else Decimal(1)
    if contract_size is None or contract_size <= 0:
        raise ValueError(f"{m.get('symbol')}: contract without a contract size")
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    lot = dec(precision.get("amount"))
    tick = dec(precision.get("price"))
    if lot is None or tick is None:
        raise ValueError(f"{m.get('symbol')}: no lot or tick (precisionMode must be TICK_SIZE)")
    qty_step = lot * contract_size
    min_amount = dec((limits.get("amount") or {}).get("min"))
    min_qty = qty_step if min_amount is None else max(min_amount * contract_size, qty_step)
    return Market(
        symbol=m["symbol"], venue_id=m["id"], kind="swap" if m.get("swap") else "spot",
        base=m["base"], quote=m["quote"], settle=m.get("settle") if contract else None,
        contract_size=contract_size, qty_step=qty_step.normalize(), tick=tick, min_qty=min_qty.normalize(),
        min_notional=dec0((limits.get("cost") or {}).get("min")),
        max_leverage=dec((limits.get("leverage") or {}).get("max")),
        maker_fee=dec0(m.get("maker")), taker_fee=dec0(m.get("taker")),
    )


def order_from_ccxt(o: Mapping[str, Any], market: Market, client_order_id: str | None = None) -> VenueOrder:
    """A ccxt unified order -> ``VenueOrder`` in base units (``amount``/``filled`` are contracts for swaps)."""
    info = o.get("info") or {}
    cid = (client_order_id or o.get("clientOrderId") or info.get("algoClOrdId") or info.get("clOrdId")
           or info.get("clientOrderId") or info.get("newClientOrderId") or "")
    trigger = _positive(o.get("triggerPrice")) or _positive(o.get("stopPrice"))
    raw_type = str(info.get("ordType") or info.get("type") or info.get("strategyType") or "").lower()
    order_type: OrderType
    if trigger is not None or raw_type in ("trigger", "stop_market", "stop"):
        order_type = "stop_market"
    elif o.get("type") == "market" or raw_type == "market":
        order_type = "market"
    else:
        order_type = "limit"
    qty = to_base(market, dec0(o.get("amount")))
    filled = to_base(market, dec0(o.get("filled")))
    avg = _positive(o.get("average"))
    fee = ZERO
    fee_info = o.get("fee") or {}
    if fee_info.get("cost") is not None:
        fee = dec0(fee_info["cost"])
        if fee_info.get("currency") == market.base and avg is not None:
            fee = fee * avg  # a spot buy pays its fee in the base asset: expressed in quote here
    status = _STATUSES.get(str(o.get("status") or "open"), "open")
    if qty < 0 or filled < 0 or (qty > 0 and filled > qty):
        raise BadAnswer(f"order {o.get('id')}: filled {filled} of {qty}")
    return VenueOrder(
        venue_order_id=str(o.get("id") or ""), client_order_id=str(cid), symbol=market.symbol,
        side="sell" if o.get("side") == "sell" else "buy", type=order_type, qty=qty, filled=filled,
        price=None if order_type != "limit" else _positive(o.get("price")), avg_price=avg, status=status,
        reduce_only=bool(o.get("reduceOnly")), post_only=bool(o.get("postOnly")), trigger_price=trigger,
        fee=fee, ts_ms=int(o.get("timestamp") or 0),
    )


def fill_from_ccxt(t: Mapping[str, Any], market: Market) -> Fill:
    info = t.get("info") or {}
    fee_info = t.get("fee") or {}
    return Fill(
        trade_id=str(t.get("id") or ""), venue_order_id=str(t.get("order") or ""),
        client_order_id=str(info.get("clOrdId") or info.get("clientOrderId") or ""),
        symbol=market.symbol, side="sell" if t.get("side") == "sell" else "buy",
        qty=to_base(market, dec0(t.get("amount"))), price=dec0(t.get("price")),
        fee=dec0(fee_info.get("cost")), fee_asset=str(fee_info.get("currency") or market.quote),
        liquidity="maker" if t.get("takerOrMaker") == "maker" else "taker", ts_ms=int(t.get("timestamp") or 0),
    )


def position_from_ccxt(p: Mapping[str, Any], market: Market,
                       default_mode: MarginMode = "isolated") -> Position | None:
    """A ccxt position -> ``Position`` with signed base quantity; None for an empty (flat) row.
    ``default_mode`` applies when the venue does not say (Binance PM positionRisk: cross by construction)."""
    contracts = dec0(p.get("contracts"))
    if contracts == 0:
        return None
    qty = to_base(market, abs(contracts))
    if p.get("side") == "short":
        qty = -qty
    stated = p.get("marginMode")
    # Not stated: the venue's regime (Binance PM positionRisk: cross). Stated but unknown: cross, the mode
    # that blocks opens, never the permissive guess.
    mode: MarginMode = stated if stated in ("cross", "isolated") else default_mode if not stated else "cross"
    mark = dec(p.get("markPrice"))
    if mark is None or mark <= 0 or dec0(p.get("entryPrice")) < 0:
        raise BadAnswer(f"{market.symbol}: position with mark {p.get('markPrice')!r}, entry {p.get('entryPrice')!r}")
    margin = dec(p.get("initialMargin")) if mode == "cross" else dec(p.get("collateral"))
    if mode == "isolated":
        margin = dec(p.get("positionMargin")) or dec(p.get("initialMargin")) or margin
    return Position(
        symbol=market.symbol, qty=qty, entry_price=dec0(p.get("entryPrice")), mark_price=mark,
        liq_price=_positive(p.get("liquidationPrice")), margin=margin or ZERO,
        leverage=dec0(p.get("leverage")), margin_mode=mode, unrealized_pnl=dec0(p.get("unrealizedPnl")),
    )


def funding_rate_from_ccxt(f: Mapping[str, Any], symbol: str) -> FundingRate:
    funding_ms = int(f.get("fundingTimestamp") or f.get("timestamp") or 0)
    next_ms = f.get("nextFundingTimestamp")
    if next_ms is None and funding_ms and f.get("interval") in _INTERVALS_MS:
        next_ms = funding_ms + _INTERVALS_MS[f["interval"]]
    return FundingRate(symbol=symbol, rate=dec0(f.get("fundingRate")), funding_time_ms=funding_ms,
                       next_funding_time_ms=None if next_ms is None else int(next_ms),
                       mark_price=_positive(f.get("markPrice")), index_price=_positive(f.get("indexPrice")))


class CcxtVenue:
    """The ``Venue`` Protocol on one ccxt exchange object (built by ``crypto.venue.factory.make_venue``)."""

    def __init__(self, exchange: ccxt.Exchange, name: str, *, precheck: bool = True,
                 default_margin_mode: MarginMode = "isolated") -> None:
        self.exchange = exchange
        self.name = name
        self.precheck = precheck
        self.default_margin_mode: MarginMode = default_margin_mode
        self.portfolio_margin = bool(exchange.options.get("portfolioMargin"))
        self._markets: dict[str, Market] | None = None
        self._margin_modes: dict[str, MarginMode] = {}
        # Client ids this instance sent (or may have sent: lost answers), newest last, bounded.
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.RLock()
        self._pos_mode: str | None = None  # OKX account/config posMode, read at the first swap order

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # One request at a time per ccxt object: a sync ccxt exchange keeps per-request state on itself
        # (last response, headers, throttle) and is not meant to be shared by threads.
        with self._lock, mapped_errors(self.name):
            return fn(*args, **kwargs)

    def _refuse(self, reason: VenueReason, message: str, **details: str) -> VenueError:
        return VenueError(reason=reason, message=message, venue_code="LOCAL", details=dict(details))

    # -- reference data and prices --------------------------------------------------------------------
    @_answers()
    def now_ms(self) -> int:
        return int(self._call(self.exchange.fetch_time))

    def markets(self) -> dict[str, Market]:
        """Spot and USDT-margined perpetual markets that are live. A market the venue lists without a lot
        or a tick (pre-open listings) is left out: an order for it is refused as an unknown symbol."""
        return dict(self._loaded())

    @_answers()
    def _loaded(self) -> dict[str, Market]:
        if self._markets is None:
            loaded = self._call(self.exchange.load_markets)
            result: dict[str, Market] = {}
            for symbol, m in loaded.items():
                if not (m.get("spot") or (m.get("swap") and m.get("linear"))) or m.get("active") is False:
                    continue
                try:
                    result[symbol] = market_from_ccxt(m)
                except (ValueError, ArithmeticError, KeyError):
                    continue
            if self.portfolio_margin:
                result = self._with_bracket_leverage(result)
            if self.name == "okx" and self.exchange.apiKey:
                result = self._with_account_fees(result)
            self._markets = result
        return self._markets

    def _with_account_fees(self, markets: dict[str, Market]) -> dict[str, Market]:
        # ccxt's okx fee table is a static guess; the account's own rates come from account/trade-fee, one
        # request per instrument type. OKX answers charged fees as negative numbers, and for USDT-margined
        # swaps in makerU/takerU (maker/taker are the coin-margined rates there).
        out = dict(markets)
        for kind in ("spot", "swap"):
            symbols = [s for s, m in markets.items() if m.kind == kind]
            if not symbols:
                continue
            fee = self._call(self.exchange.fetch_trading_fee, symbols[0])
            info = fee.get("info") or {}
            keys = ("makerU", "takerU") if kind == "swap" and info.get("makerU") else ("maker", "taker")
            maker, taker = dec(info.get(keys[0])), dec(info.get(keys[1]))
            if maker is None or taker is None:
                continue
            for symbol in symbols:
                out[symbol] = replace(out[symbol], maker_fee=-maker, taker_fee=-taker)
        return out

    def _with_bracket_leverage(self, markets: dict[str, Market]) -> dict[str, Market]:
        # Binance's exchange info has no leverage cap; PM UM caps come from um/leverageBracket (the first
        # bracket's initialLeverage is the highest allowed).
        swaps = [s for s, m in markets.items() if m.is_swap]
        if not swaps:
            return markets
        tiers = self._call(self.exchange.fetch_leverage_tiers, swaps)
        out = dict(markets)
        for symbol in swaps:
            caps = [dec((t or {}).get("maxLeverage")) for t in tiers.get(symbol) or []]
            known = [c for c in caps if c is not None]
            if known:
                out[symbol] = replace(out[symbol], max_leverage=max(known))
        return out

    def reload_markets(self) -> dict[str, Market]:
        """Fetch the instruments again (filters change: tick and lot updates, listings)."""
        self._call(self.exchange.load_markets, True)
        self._markets = None
        return self.markets()

    def market(self, symbol: str) -> Market:
        markets = self._loaded()
        if symbol not in markets:
            raise self._refuse(R.INVALID_ORDER, f"unknown symbol {symbol!r} on {self.name}", symbol=symbol)
        return markets[symbol]

    @_answers()
    def ticker(self, symbol: str) -> Ticker:
        self.market(symbol)
        t = dict(self._call(self.exchange.fetch_ticker, symbol))
        if t.get("bid") is None or t.get("ask") is None:
            # Binance USD-M's 24 h ticker has no bid/ask (unlike spot's): take them from the book ticker.
            best = self._call(self.exchange.fetch_bids_asks, [symbol]).get(symbol) or {}
            t["bid"], t["ask"] = best.get("bid"), best.get("ask")
        bid, ask = dec0(t.get("bid")), dec0(t.get("ask"))
        if bid <= 0 or ask <= 0 or dec0(t.get("last")) < 0:
            raise BadAnswer(f"{symbol}: ticker bid {t.get('bid')!r} ask {t.get('ask')!r}")
        return Ticker(symbol=symbol, bid=bid, ask=ask, last=dec0(t.get("last")), ts_ms=int(t.get("timestamp") or 0))

    @_answers()
    def order_book(self, symbol: str, depth: int = 20) -> Book:
        market = self.market(symbol)
        b = self._call(self.exchange.fetch_order_book, symbol, depth)

        def side(levels: list[list[Any]]) -> tuple[tuple[Decimal, Decimal], ...]:
            out = tuple((dec0(level[0]), to_base(market, dec0(level[1]))) for level in levels[:depth])
            if any(price <= 0 or qty < 0 for price, qty in out):
                raise BadAnswer(f"{symbol}: book level at or under 0")
            return out

        return Book(symbol=symbol, bids=side(b.get("bids") or []), asks=side(b.get("asks") or []),
                    ts_ms=int(b.get("timestamp") or 0))

    @_answers()
    def mark_price(self, symbol: str) -> Decimal:
        market = self.market(symbol)
        if not market.is_swap:
            return self.ticker(symbol).last  # spot has no mark: its last trade is the price
        t = self._call(self.exchange.fetch_mark_price, symbol)
        price = _positive(t.get("markPrice")) or _positive((t.get("info") or {}).get("markPx"))
        if price is None:
            raise self._refuse(R.VENUE_ERROR, f"no mark price for {symbol}")
        return price

    @_answers()
    def index_price(self, symbol: str) -> Decimal:
        market = self.market(symbol)
        if self.name == "okx":
            # The index of BTC-USDT-SWAP and of BTC-USDT is the index BTC-USDT (market/index-tickers).
            response = self._call(self.exchange.publicGetMarketIndexTickers,
                                  {"instId": f"{market.base}-{market.quote}"})
            rows = response.get("data") or []
            price = _positive(rows[0].get("idxPx")) if rows else None
        else:
            # Binance publishes the index with the perpetual's premium index; a spot pair's index is its
            # perpetual's (BTC/USDT -> BTC/USDT:USDT).
            swap = symbol if market.is_swap else f"{market.base}/{market.quote}:{market.quote}"
            self._require_swap(swap)
            t = self._call(self.exchange.fetch_mark_price, swap)
            price = _positive(t.get("indexPrice"))
        if price is None:
            raise self._refuse(R.VENUE_ERROR, f"no index price for {symbol}")
        return price

    @_answers()
    def funding_rate(self, symbol: str) -> FundingRate:
        self._require_swap(symbol)
        f = dict(self._call(self.exchange.fetch_funding_rate, symbol))
        if f.get("nextFundingTimestamp") is None and f.get("interval") is None and self.name != "okx":
            # Binance's premiumIndex has no interval; fundingInfo lists the symbols whose interval (or cap)
            # was adjusted, and a symbol it does not list settles every 8 h (Binance "Get Funding Rate Info").
            intervals = self._call(self.exchange.fetch_funding_intervals, [symbol])
            f["interval"] = (intervals.get(symbol) or {}).get("interval") or "8h"
        return funding_rate_from_ccxt(f, symbol)

    @_answers()
    def funding_history(self, symbol: str, since_ms: int | None = None,
                        limit: int | None = None) -> list[FundingRate]:
        """Past settlements, oldest first; each one's ``next_funding_time_ms`` is the following settlement,
        so ``interval_ms`` shows the interval the venue actually used (8 h, or shorter at the cap)."""
        self._require_swap(symbol)
        rows = self._call(self.exchange.fetch_funding_rate_history, symbol, since_ms, limit)
        rows = sorted(rows, key=lambda r: int(r.get("timestamp") or 0))
        out: list[FundingRate] = []
        for i, row in enumerate(rows):
            nxt = rows[i + 1].get("timestamp") if i + 1 < len(rows) else None
            info = row.get("info") or {}
            out.append(FundingRate(symbol=symbol, rate=dec0(row.get("fundingRate")),
                                   funding_time_ms=int(row.get("timestamp") or 0),
                                   next_funding_time_ms=None if nxt is None else int(nxt),
                                   mark_price=_positive(info.get("markPrice") or info.get("markPx"))))
        return out

    # -- account --------------------------------------------------------------------------------------
    @_answers()
    def balances(self, account: Account = "trading") -> dict[str, Balance]:
        params: dict[str, Any] = {}
        if self.name == "okx":
            if account not in ("trading", "funding"):
                raise self._refuse(R.INVALID_ORDER, f"okx has no {account!r} account (trading, funding)")
            if account == "funding":
                params["type"] = "funding"
        elif self.portfolio_margin:
            if account not in ("margin", "um", "trading"):
                raise self._refuse(R.INVALID_ORDER, f"binance PM has no {account!r} account (margin, um)")
            return self._pm_balances(account)
        raw = self._call(self.exchange.fetch_balance, params)
        return _balances_from_ccxt(raw)

    def _pm_balances(self, account: Account) -> dict[str, Balance]:
        # papi/v1/balance lists per asset the cross-margin (crossMargin*) and UM (umWalletBalance,
        # umUnrealizedPNL) parts of one portfolio; ccxt's unified totals sum them, so split from ``info``.
        raw = self._call(self.exchange.fetch_balance, {"portfolioMargin": True})
        rows = raw.get("info")
        if not isinstance(rows, list):
            return _balances_from_ccxt(raw)
        out: dict[str, Balance] = {}
        available: Decimal | None = None
        if account == "um":
            # What UM can still use is portfolio-wide (papi/v1/account totalAvailableBalance, in USD): it
            # bounds the settle asset's free part; the rest of its wallet is held as margin.
            summary = self._call(self.exchange.papiGetAccount)
            available = dec(summary.get("totalAvailableBalance"))
        for row in rows:
            asset = self.exchange.safe_currency_code(row.get("asset"))
            if account == "um":
                total = dec0(row.get("umWalletBalance")) + dec0(row.get("umUnrealizedPNL"))
                free = total if available is None or asset != "USDT" else max(ZERO, min(total, available))
                out[asset] = Balance(asset=asset, total=total, free=free, used=total - free)
            else:
                total = dec0(row.get("crossMarginAsset")) - dec0(row.get("crossMarginBorrowed"))
                free = dec0(row.get("crossMarginFree"))
                used = dec0(row.get("crossMarginLocked"))
                out[asset] = Balance(asset=asset, total=total, free=free, used=used)
        return out

    @_answers()
    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        markets = self._loaded()
        wanted = [s for s in (symbols or []) if s in markets and markets[s].is_swap]
        if symbols and not wanted:
            return []
        raw = self._call(self.exchange.fetch_positions, wanted or None)
        out = []
        for p in raw:
            market = markets.get(p.get("symbol"))
            if market is None or not market.is_swap:
                continue
            position = position_from_ccxt(p, market, "cross" if self.portfolio_margin else "isolated")
            if position is not None:
                out.append(position)
        return out

    @_answers()
    def funding_payments(self, symbol: str | None = None, since_ms: int | None = None) -> list[FundingPayment]:
        """Funding bills (positive = received). The rate is the venue's settled rate at that time; the
        position is the bill's size (OKX ``sz``, contracts) signed so that amount = -qty x price x rate."""
        if symbol is not None:
            self._require_swap(symbol)
        # ccxt filters ``since`` after the request; OKX bills take ``begin`` so older pages are not needed.
        params = {"begin": since_ms} if self.name == "okx" and since_ms is not None else {}
        rows = self._call(self.exchange.fetch_funding_history, symbol, since_ms, None, params)
        markets = self._loaded()
        history: dict[str, list[FundingRate]] = {}
        out: list[FundingPayment] = []
        for row in rows:
            sym = row.get("symbol")
            market = markets.get(sym) if isinstance(sym, str) else None
            if market is None:
                continue
            ts = int(row.get("timestamp") or 0)
            amount = dec0(row.get("amount"))
            if sym not in history:
                start = None if since_ms is None else since_ms - 24 * _HOUR_MS
                history[sym] = self.funding_history(sym, start)
            settled = _settlement_at(history[sym], ts)
            rate = ZERO if settled is None else settled.rate
            info = row.get("info") or {}
            size = abs(to_base(market, dec0(info.get("sz"))))
            price = dec(info.get("px")) or (None if settled is None else settled.mark_price)
            if size == 0 and price and rate:
                # No size on the bill (Binance income): |amount| / (mark x |rate|), to the nearest lot (the
                # venue rounded the amount, the position itself is a whole number of lots).
                lots = (abs(amount) / (price * abs(rate)) / market.qty_step).to_integral_value()
                size = lots * market.qty_step
            sign = -1 if (rate != 0 and (amount > 0) == (rate > 0) and amount != 0) else 1
            out.append(FundingPayment(symbol=sym, amount=amount, rate=rate, position_qty=size * sign, ts_ms=ts,
                                      bill_id=str(row.get("id") or "")))
        return out

    def set_leverage(self, symbol: str, leverage: Decimal, margin_mode: MarginMode = "isolated") -> None:
        self._require_swap(symbol)
        if leverage < 1:
            raise self._refuse(R.LEVERAGE_REFUSED, f"leverage {leverage} < 1")
        market = self.market(symbol)
        if market.max_leverage is not None and leverage > market.max_leverage:
            raise self._refuse(R.LEVERAGE_REFUSED, f"leverage {leverage} above {symbol}'s max {market.max_leverage}")
        lever: int | float = int(leverage) if leverage == leverage.to_integral_value() else float(leverage)
        if self.name == "okx":
            params: dict[str, Any] = {"mgnMode": margin_mode}
            if margin_mode == "isolated":
                params["posSide"] = "net"
            self._call(self.exchange.set_leverage, lever, symbol, params)
            self._margin_modes[symbol] = margin_mode
        else:
            # Portfolio margin: one margin for the whole portfolio, UM positions are cross by construction.
            self._call(self.exchange.set_leverage, lever, symbol)

    def set_margin_mode(self, symbol: str, margin_mode: MarginMode, leverage: Decimal | None = None) -> None:
        """OKX keeps leverage per margin mode and takes the mode on every order (``tdMode``): setting the
        mode sets the leverage for it (current leverage unless ``leverage`` is given) and makes it the
        default ``tdMode`` of this symbol's orders."""
        self._require_swap(symbol)
        if self.portfolio_margin:
            if margin_mode != "cross":
                raise self._refuse(R.MARGIN_MODE_CONFLICT, "binance portfolio margin UM positions are cross only")
            return
        if leverage is None:
            current = self._call(self.exchange.fetch_leverage, symbol, {"marginMode": margin_mode})
            leverage = dec(current.get("longLeverage")) or dec(current.get("shortLeverage")) or Decimal(1)
        self.set_leverage(symbol, leverage, margin_mode)

    def add_margin(self, symbol: str, amount: Decimal) -> None:
        self._require_swap(symbol)
        if amount <= 0:
            raise self._refuse(R.INVALID_ORDER, f"margin to add must be positive, got {amount}")
        if self.portfolio_margin:
            raise self._refuse(R.INVALID_ORDER, "binance portfolio margin has no isolated margin to add")
        # ccxt 4.5.90's okx.add_margin sends the request and then fails in parse_margin_modification
        # (``type['type']`` on a string): a TypeError after the margin was added, which a caller would
        # retry. The implicit endpoint method is the same request without that parser. ``amt`` as a
        # string keeps the amount exact.
        market = self.market(symbol)
        self._call(self.exchange.privatePostAccountPositionMarginBalance,
                   {"instId": market.venue_id, "posSide": "net", "type": "add", "amt": str(amount)})

    def transfer(self, asset: str, amount: Decimal, from_account: Account, to_account: Account,
                 transfer_id: str) -> Transfer:
        if amount <= 0:
            raise self._refuse(R.INVALID_ORDER, f"transfer amount must be positive, got {amount}")
        if self.name != "okx":
            raise self._refuse(R.INVALID_ORDER, "binance portfolio margin shares one margin: no transfer needed")
        ids = self.exchange.options["accountsByType"]
        if from_account not in ("funding", "trading") or to_account not in ("funding", "trading") \
                or from_account == to_account:
            raise self._refuse(R.INVALID_ORDER, f"okx transfers go between funding and trading, not "
                                                f"{from_account} -> {to_account}")
        request = {"ccy": self.exchange.currency_id(asset), "amt": str(amount), "type": "0",
                   "from": ids[from_account], "to": ids[to_account], "clientId": okx_transfer_client_id(transfer_id)}
        response = self._call(self.exchange.privatePostAssetTransfer, request)
        rows = response.get("data") or []
        venue_id = str(rows[0].get("transId", "")) if rows else ""
        return Transfer(transfer_id=transfer_id, asset=asset, amount=amount, from_account=from_account,
                        to_account=to_account, status="ok" if venue_id else "pending", venue_transfer_id=venue_id)

    @_answers()
    def fetch_transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer made with this key, or None: after an ``UNKNOWN_OUTCOME`` the caller looks here
        before it sends the same transfer again (OKX asset/transfer-state by ``clientId``)."""
        if self.name != "okx":
            return None  # portfolio margin makes no transfers
        try:
            response = self._call(self.exchange.privateGetAssetTransferState,
                                  {"clientId": okx_transfer_client_id(transfer_id)})
        except VenueError as exc:
            if exc.venue_code in OKX_TRANSFER_UNKNOWN or exc.reason is R.ORDER_NOT_FOUND:
                return None
            raise
        rows = response.get("data") or []
        if not rows:
            return None
        row = rows[0]
        by_id = self.exchange.options["accountsById"]
        state = str(row.get("state", ""))
        return Transfer(transfer_id=transfer_id, asset=self.exchange.safe_currency_code(row.get("ccy")),
                        amount=dec0(row.get("amt")), from_account=by_id.get(str(row.get("from")), "funding"),
                        to_account=by_id.get(str(row.get("to")), "trading"),
                        status="ok" if state == "success" else "failed" if state == "failed" else "pending",
                        venue_transfer_id=str(row.get("transId", "")))

    # -- orders ---------------------------------------------------------------------------------------
    @_answers()
    def place_order(self, request: OrderRequest) -> VenueOrder:
        market = self.market(request.symbol)
        amount = self._checked_amount(request, market)
        ccxt_type, price, params = self._order_params(request, market)
        if self.name == "okx" and market.is_swap:
            self._require_net_mode()
        key = (request.symbol, request.client_order_id)
        if key in self._sent:
            self._refuse_if_used(request)
        self._remember_sent(key)  # before sending: an answer lost on the way back still counts as sent
        try:
            created = self._call(self.exchange.create_order, request.symbol, ccxt_type, request.side,
                                 float(amount), None if price is None else float(price), params)
        except VenueError as exc:
            if exc.reason is not R.UNKNOWN_OUTCOME:
                self._sent.pop(key, None)  # a definite refusal: the id was not used
            raise
        except _MALFORMED as exc:
            # The request left and the answer cannot be read: the order may stand (look it up by client id).
            raise VenueError(reason=R.UNKNOWN_OUTCOME, venue_code=BAD_ANSWER,
                             message=f"{self.name} place_order: malformed answer: {type(exc).__name__}: "
                                     f"{str(exc)[:160]}") from exc
        if created.get("status") == "rejected":
            # A per-order refusal inside a successful batch answer (OKX sCode): same vocabulary.
            info = created.get("info") or {}
            raise reason_for_code(self.name, str(info.get("sCode") or info.get("code") or ""),
                                  str(info.get("sMsg") or info.get("msg") or "order rejected"))
        try:
            placed = self._placed(request, market, amount, created)
        except _MALFORMED as exc:
            raise VenueError(reason=R.UNKNOWN_OUTCOME, venue_code=BAD_ANSWER,
                             message=f"{self.name} place_order: malformed answer: {type(exc).__name__}: "
                                     f"{str(exc)[:160]}") from exc
        try:
            confirmed = self.fetch_order(request.symbol, request.client_order_id)
        except VenueError:
            return placed  # accepted; its state is read again on the next lookup
        if confirmed is None:
            return placed
        if request.post_only and confirmed.filled == 0 and confirmed.status in ("canceled", "expired"):
            raise VenueError(reason=R.POST_ONLY_WOULD_TAKE, venue_code=OKX_POST_ONLY_CANCEL_SOURCE
                             if self.name == "okx" else "EXPIRED",
                             message=f"post-only {request.side} at {request.price} would have taken liquidity",
                             details={"venue_order_id": confirmed.venue_order_id})
        return confirmed

    def _placed(self, request: OrderRequest, market: Market, amount: Decimal, created: Mapping[str, Any]) -> VenueOrder:
        venue_id = str(created.get("id") or "")
        return VenueOrder(
            venue_order_id=venue_id, client_order_id=request.client_order_id, symbol=request.symbol,
            side=request.side, type=request.type, qty=to_base(market, amount), filled=ZERO,
            price=request.price if request.type == "limit" else None, avg_price=None, status="open",
            reduce_only=request.reduce_only, post_only=request.post_only, trigger_price=request.trigger_price,
            ts_ms=int(created.get("timestamp") or 0))

    def _require_net_mode(self) -> None:
        """OKX swaps are traded in one-way (net) mode: ``posSide=net``, a signed position per symbol. An
        account in long/short mode would take a buy against a short as a new long; refuse clearly instead
        (read once per venue object from account/config)."""
        if self._pos_mode is None:
            rows = self._call(self.exchange.privateGetAccountConfig).get("data") or [{}]
            self._pos_mode = str(rows[0].get("posMode") or "net_mode")
        if self._pos_mode != "net_mode":
            raise self._refuse(R.INVALID_ORDER, f"the OKX account is in {self._pos_mode}; the engine trades "
                                                "one-way (net) mode: call set_net_mode() or switch it on OKX",
                               posMode=self._pos_mode)

    def set_net_mode(self) -> None:
        """Switch the OKX account to one-way (net) position mode (refused by OKX while positions or orders
        are open)."""
        if self.name != "okx":
            return  # Binance PM UM: one-way unless dualSidePosition was set, which this engine never does
        self._call(self.exchange.set_position_mode, False)
        self._pos_mode = "net_mode"

    def _refuse_if_used(self, request: OrderRequest) -> None:
        """This instance sent the id before. The venue refuses only a *live* duplicate; an order that already
        filled (say, its answer was lost and it filled at once) would be placed a second time. So look
        first: live or (partly) filled -> DUPLICATE_CLIENT_ID without sending; absent, or ended with nothing
        filled (a post-only the venue cancelled) -> send."""
        existing = self.fetch_order(request.symbol, request.client_order_id)
        if existing is not None and (existing.is_live or existing.filled > 0):
            raise VenueError(reason=R.DUPLICATE_CLIENT_ID, venue_code="LOCAL",
                             message=f"client order id {request.client_order_id} already used: order "
                                     f"{existing.venue_order_id} is {existing.status}, filled {existing.filled}",
                             details={"venue_order_id": existing.venue_order_id, "status": existing.status})

    def _remember_sent(self, key: tuple[str, str]) -> None:
        self._sent[key] = None
        self._sent.move_to_end(key)
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    @_answers()
    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """Cancel by client id; returns the order as it stands after the request (canceled, or filled if
        the fill won the race), or None when the venue knows no such order."""
        market = self.market(symbol)
        for params in self._lookup_params(market, client_order_id):
            try:
                self._call(self.exchange.cancel_order, "", symbol, params)
                break
            except VenueError as exc:
                if exc.reason is not R.ORDER_NOT_FOUND:
                    raise
        return self.fetch_order(symbol, client_order_id)

    @_answers()
    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        market = self.market(symbol)
        for params in self._lookup_params(market, client_order_id):
            try:
                raw = self._fetch_raw(market, params)
            except VenueError as exc:
                if exc.reason is R.ORDER_NOT_FOUND:
                    continue
                raise
            if raw and (raw.get("id") or raw.get("clientOrderId")):
                return order_from_ccxt(raw, market, client_order_id)
        return None

    @_answers()
    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        markets = self._loaded()
        if symbol is not None:
            self.market(symbol)
        calls: list[tuple[str | None, dict[str, Any]]]
        if self.name == "okx":
            calls = [(symbol, {}), (symbol, {"trigger": True})]  # stops live in the algo book (orders-algo-pending)
        elif symbol is not None:
            calls = [(symbol, {})]
            if markets[symbol].is_swap:
                calls.append((symbol, {"trigger": True}))  # PM UM stops: um/algo/openAlgoOrders
        else:
            # Without a symbol ccxt picks one papi family by market type: ask each book in turn.
            um = {"type": "swap", "subType": "linear"}
            calls = [(None, um), (None, {**um, "trigger": True}), (None, {"type": "margin"})]
        out: list[VenueOrder] = []
        for call_symbol, params in calls:
            for raw in self._call(self.exchange.fetch_open_orders, call_symbol, None, None, params):
                market = markets.get(raw.get("symbol"))
                if market is not None:
                    out.append(order_from_ccxt(raw, market))
        return out

    @_answers()
    def fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        market = self.market(symbol)
        rows = self._call(self.exchange.fetch_my_trades, symbol, since_ms)
        fills = [fill_from_ccxt(t, market) for t in rows]
        if any(not f.client_order_id for f in fills):
            # Binance trade rows carry the order id only: name each fill's client id from the orders.
            orders = self._call(self.exchange.fetch_orders, symbol, since_ms)
            by_id = {str(o.get("id")): str(o.get("clientOrderId") or "") for o in orders}
            fills = [f if f.client_order_id else replace(f, client_order_id=by_id.get(f.venue_order_id, ""))
                     for f in fills]
        return fills

    # -- helpers --------------------------------------------------------------------------------------
    def _require_swap(self, symbol: str) -> Market:
        market = self.market(symbol)
        if not market.is_swap:
            raise self._refuse(R.INVALID_ORDER, f"{symbol} is not a perpetual swap")
        return market

    def _lookup_params(self, market: Market, client_order_id: str) -> list[dict[str, Any]]:
        # Stops live apart from regular orders (OKX algo orders by algoClOrdId; Binance PM UM algo orders
        # by clientAlgoId): look in the regular book first, then in the stop book.
        regular: dict[str, Any] = {"clientOrderId": client_order_id}
        if self.name == "okx" or market.is_swap:
            return [regular, {"clientOrderId": client_order_id, "trigger": True}]
        return [regular]

    def _fetch_raw(self, market: Market, params: dict[str, Any]) -> dict[str, Any]:
        if self.name != "okx" and params.get("trigger"):
            # ccxt's binance.fetch_order sends a PM stop lookup to um/order; the stop lives in
            # um/algo/algoOrder (papi), read here through the implicit endpoint and ccxt's parser.
            response = self._call(self.exchange.papiGetUmAlgoAlgoOrder,
                                  {"symbol": market.venue_id, "clientAlgoId": params["clientOrderId"]})
            raw_market = self.exchange.market(market.symbol)
            return dict(self.exchange.parse_order(response, raw_market)) if response else {}
        return dict(self._call(self.exchange.fetch_order, "", market.symbol, params))

    def _checked_amount(self, request: OrderRequest, market: Market) -> Decimal:
        pattern = CLIENT_ID_PATTERNS.get(self.name)
        if pattern is not None and not pattern.match(request.client_order_id):
            raise self._refuse(R.INVALID_ORDER, f"client order id {request.client_order_id!r} breaks {self.name}'s "
                                                f"rule {pattern.pattern}")
        if request.qty <= 0:
            raise self._refuse(R.INVALID_ORDER, f"qty must be positive, got {request.qty}")
        if request.type == "limit" and (request.price is None or request.price <= 0):
            raise self._refuse(R.INVALID_ORDER, "a limit order needs a positive price")
        if request.type == "stop_market" and (request.trigger_price is None or request.trigger_price <= 0):
            raise self._refuse(R.INVALID_ORDER, "a stop-market order needs a positive trigger price")
        if request.post_only and request.type != "limit":
            raise self._refuse(R.INVALID_ORDER, "post-only applies to limit orders")
        if request.reduce_only and not market.is_swap:
            raise self._refuse(R.INVALID_ORDER, "reduce-only applies to perpetuals (a spot or margin balance is "
                                                "not a position the venue could reduce)")
        for label, value in (("price", request.price), ("trigger price", request.trigger_price)):
            if value is not None and not is_multiple(value, market.tick):
                raise self._refuse(R.TICK_SIZE, f"{label} {value} is not a multiple of the tick {market.tick}",
                                   tick=str(market.tick))
        amount = to_contracts(market, request.qty)
        if amount == 0:
            raise self._refuse(R.MIN_QTY, f"qty {request.qty} is below one lot ({market.qty_step})",
                               qty_step=str(market.qty_step))
        qty = to_base(market, amount)
        if self.precheck:
            if qty < market.min_qty:
                raise self._refuse(R.MIN_QTY, f"qty {qty} below the minimum {market.min_qty}",
                                   min_qty=str(market.min_qty))
            reference = request.price or request.trigger_price
            if market.min_notional > 0 and reference is not None and qty * reference < market.min_notional:
                raise self._refuse(R.MIN_NOTIONAL, f"notional {qty * reference} below {market.min_notional}",
                                   min_notional=str(market.min_notional))
        return amount

    def _order_params(self, request: OrderRequest, market: Market) -> tuple[str, Decimal | None, dict[str, Any]]:
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        ccxt_type = "market" if request.type in ("market", "stop_market") else "limit"
        price = request.price if request.type == "limit" else None
        if request.post_only:
            params["postOnly"] = True
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.type == "stop_market":
            params["triggerPrice"] = float(request.trigger_price or 0)
        if self.name == "okx":
            if market.is_swap:
                params["marginMode"] = (request.margin_mode or self._margin_modes.get(request.symbol)
                                        or self.default_margin_mode)
                params["positionSide"] = "net"  # one-way mode
            if request.type == "stop_market":
                params["algoClOrdId"] = request.client_order_id
        elif self.portfolio_margin:
            wanted = "um" if market.is_swap else "margin"
            if request.account not in (None, wanted):
                raise self._refuse(R.INVALID_ORDER, f"{request.symbol} trades in the {wanted!r} account, "
                                                    f"not {request.account!r}")
            params["portfolioMargin"] = True
        return ccxt_type, price, params


def _balances_from_ccxt(raw: Mapping[str, Any]) -> dict[str, Balance]:
    totals = raw.get("total") or {}
    frees = raw.get("free") or {}
    useds = raw.get("used") or {}
    out: dict[str, Balance] = {}
    for asset, total in totals.items():
        if total is None:
            continue
        t = dec0(total)
        free = dec(frees.get(asset))
        used = dec(useds.get(asset))
        free = t - (used or ZERO) if free is None else free
        out[asset] = Balance(asset=asset, total=t, free=free, used=t - free if used is None else used)
    return out


def _settlement_at(history: list[FundingRate], ts_ms: int) -> FundingRate | None:
    """The settlement at (or last before) ``ts_ms``: bills are stamped at or just after settlement."""
    best: FundingRate | None = None
    for rate in history:
        if rate.funding_time_ms <= ts_ms + 60_000 and (best is None or rate.funding_time_ms > best.funding_time_ms):
            best = rate
    return best
