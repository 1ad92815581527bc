"""``DirectVenue``: the ``Venue`` Protocol over the local exchange's model in the same process: the fake's
in-process door, next to its HTTP door (``crypto.fakex.server`` + the OKX v5 dialect).

The carry dry run replays days against the fake at model speed: going through HTTP and ccxt for every
5-minute scan of 30 days costs minutes, the in-process model milliseconds. This adapter is the OKX dialect's
semantics without the wire, so the engine cannot tell it from ``CcxtVenue`` on the fake's OKX server: the
same ccxt symbols (``BTC/USDT``, ``BTC/USDT:USDT``), base units, the same local checks before an order is
sent (client id rule, tick, lot rounded down, min size with ``precheck``), the same refusals (the engine's
reason -> the OKX code the dialect answers -> the ``VenueReason`` the ccxt path maps it to, one table below,
held against the wire path by tests), the same resend rule for a client id already used, and the same
records (a stop is an OKX ``trigger`` algo order on the last price; an order's time is its creation time).
It passes the venue contract suite (tests/crypto/venue) next to the ccxt adapter; what it cannot show is the
wire itself (lost answers, dropped connections, rate limits, signatures, a server restart).

Where the ccxt adapter is bound by one page of the venue's answer (OKX: the newest 100 rows of fills, bills
or funding history), this door reads every record: there are no pages in process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from decimal import Decimal
from typing import Literal

from core.oms.reasons import VenueReason
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import AlgoSpec, Exchange, OrderSpec
from crypto.fakex.engine.instruments import Instrument, is_multiple, round_down
from crypto.fakex.engine.state import AlgoRec, FundingRec, OrderRec, TransferRec
from crypto.fakex.okx_routes import reject_code
from crypto.venue.ccxt_venue import (
    CLIENT_ID_PATTERNS,
    OKX_POST_ONLY_CANCEL_SOURCE,
    SENT_MEMORY,
    okx_transfer_client_id,
)
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

R = VenueReason
LOCAL = "LOCAL"  # venue_code of a refusal made here before the model saw the request (as CcxtVenue does)

# The engine's reason -> what the ccxt path makes of the OKX code the dialect answers for it
# (okx_routes.REASON_CODES -> crypto.venue.errors). Some look coarse (an off-tick price is OKX 51000
# "Parameter px error", INVALID_ORDER; min notional shares 51020 with min size) because that is what OKX
# answers: both adapters refuse an off-tick price locally as TICK_SIZE before it could get there.
REASONS: dict[Reason, VenueReason] = {
    Reason.UNKNOWN_INSTRUMENT: R.INVALID_ORDER,  # 51001 (ccxt BadSymbol)
    Reason.BAD_PARAM: R.INVALID_ORDER,  # 51000
    Reason.TICK_SIZE: R.INVALID_ORDER,  # 51000
    Reason.LOT_SIZE: R.LOT_SIZE,  # 51121
    Reason.MIN_SIZE: R.MIN_QTY,  # 51020
    Reason.MIN_NOTIONAL: R.MIN_QTY,  # 51020
    Reason.INSUFFICIENT_FUNDS: R.INSUFFICIENT_FUNDS,  # 51008 (58350 for a transfer)
    Reason.DUPLICATE_CLIENT_ID: R.DUPLICATE_CLIENT_ID,  # 51016
    Reason.ORDER_NOT_FOUND: R.ORDER_NOT_FOUND,  # 51400
    Reason.ORDER_ALREADY_CANCELED: R.ORDER_NOT_FOUND,  # 51401
    Reason.ORDER_ALREADY_FILLED: R.ORDER_NOT_FOUND,  # 51402
    Reason.REDUCE_ONLY_NO_POSITION: R.REDUCE_ONLY_REJECTED,  # 51169
    Reason.REDUCE_ONLY_SAME_SIDE: R.REDUCE_ONLY_REJECTED,  # 51170 (by its message)
    Reason.REDUCE_ONLY_SPOT: R.REDUCE_ONLY_REJECTED,  # 51139
    Reason.MARGIN_MODE_MISMATCH: R.INVALID_ORDER,  # 51000 "Parameter tdMode error"
    Reason.LEVERAGE_INVALID: R.LEVERAGE_REFUSED,  # 59102
    Reason.LEVERAGE_WITH_ORDERS: R.MARGIN_MODE_CONFLICT,  # 59000
    Reason.NO_POSITION: R.VENUE_ERROR,  # 59300 (ccxt ExchangeError)
    Reason.MARGIN_REDUCE_TOO_LARGE: R.VENUE_ERROR,  # 59301 (ccxt ExchangeError)
    Reason.UNKNOWN_ACCOUNT: R.INVALID_ORDER,  # 51000
    Reason.POST_ONLY_WOULD_TAKE: R.POST_ONLY_WOULD_TAKE,  # 51511 (by its message)
}
# OKX order states -> ours (ccxt okx parse_order_status); algo states likewise.
_STATUS: dict[str, OrderStatus] = {"live": "open", "partially_filled": "open", "filled": "closed",
                                   "canceled": "canceled", "mmp_canceled": "canceled"}
_ALGO_STATUS: dict[str, OrderStatus] = {"live": "open", "effective": "closed", "canceled": "canceled",
                                        "order_failed": "canceled", "partially_effective": "closed"}
_ACCOUNTS = ("trading", "funding")


def venue_error(exc: Reject, context: str = "") -> VenueError:
    """One engine refusal as the ccxt path reports it: the reason from ``REASONS``, the OKX code and message
    the dialect would answer (``context`` "transfer" or "query" picks OKX's code for that endpoint)."""
    code, message = reject_code(exc, context)
    return VenueError(REASONS.get(exc.reason, R.VENUE_ERROR), message, code, {"engine": exc.reason.value})


class DirectVenue:
    """``Venue`` over an in-process ``Exchange`` with OKX's semantics (``name`` "okx")."""

    name = "okx"

    def __init__(self, exchange: Exchange, *, precheck: bool = True,
                 default_margin_mode: MarginMode = "isolated") -> None:
        self.x = exchange
        self.precheck = precheck
        self.default_margin_mode: MarginMode = default_margin_mode
        self._markets: dict[str, Market] = {}
        self._ids: dict[str, str] = {}
        self._symbols: dict[str, str] = {}
        for inst in exchange.instruments.values():
            symbol = f"{inst.base}/{inst.quote}" + (f":{inst.settle}" if inst.is_swap else "")
            self._ids[symbol] = inst.inst_id
            self._symbols[inst.inst_id] = symbol
            self._markets[symbol] = _market(symbol, inst)
        self._margin_modes: dict[str, MarginMode] = {}
        # Client ids this object sent, newest last, bounded: the resend rule of CcxtVenue (venues refuse only
        # a live duplicate id; an order that filled at once would fill a second time).
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.RLock()  # the model has its own lock; this one guards the two memories above

    # -- plumbing -------------------------------------------------------------------------------------
    def _refuse(self, reason: VenueReason, message: str, **details: str) -> VenueError:
        return VenueError(reason, message, LOCAL, dict(details))

    def _id(self, symbol: str) -> str:
        return self.market(symbol).venue_id

    def _symbol(self, inst_id: str) -> str:
        return self._symbols.get(inst_id, inst_id)

    def _require_swap(self, symbol: str) -> Market:
        market = self.market(symbol)
        if not market.is_swap:
            raise self._refuse(R.INVALID_ORDER, f"{symbol} is not a perpetual swap")
        return market

    # -- reference data and prices --------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.x.now_ms()

    def markets(self) -> dict[str, Market]:
        return dict(self._markets)

    def market(self, symbol: str) -> Market:
        market = self._markets.get(symbol)
        if market is None:
            raise self._refuse(R.INVALID_ORDER, f"unknown symbol {symbol!r} on {self.name}", symbol=symbol)
        return market

    def ticker(self, symbol: str) -> Ticker:
        t = self.x.ticker(self._id(symbol))
        return Ticker(symbol, t.bid, t.ask, t.last, t.ts_ms)

    def order_book(self, symbol: str, depth: int = 20) -> Book:
        inst_id = self._id(symbol)
        # OKX books take 1..400 levels; the ccxt path asks for ``depth``.
        b = self.x.book(inst_id, max(1, min(depth, 400)))
        return Book(symbol, tuple(b.bids[:depth]), tuple(b.asks[:depth]), self.x.now_ms())

    def mark_price(self, symbol: str) -> Decimal:
        market = self.market(symbol)
        if not market.is_swap:
            return self.ticker(symbol).last  # spot has no mark: its last trade is the price
        return self.x.mark_price(market.venue_id)

    def index_price(self, symbol: str) -> Decimal:
        # One index per pair: OKX market/index-tickers answers for the family (BTC-USDT) whatever the market.
        market = self.market(symbol)
        family = next(i for i in self.x.instruments.values() if (i.base, i.quote) == (market.base, market.quote))
        return self.x.index_price(family.inst_id)

    def funding_rate(self, symbol: str) -> FundingRate:
        market = self._require_swap(symbol)
        try:
            f = self.x.funding(market.venue_id)
        except Reject as exc:
            raise venue_error(exc) from None
        return FundingRate(symbol, f.rate, f.funding_time_ms, f.next_funding_time_ms)

    def funding_history(self, symbol: str, since_ms: int | None = None,
                        limit: int | None = None) -> list[FundingRate]:
        """Past settlements, oldest first; each one's ``next_funding_time_ms`` is the following settlement
        (``interval_ms`` shows the interval the venue used). ``limit`` keeps the newest ones, as OKX does."""
        market = self._require_swap(symbol)
        rows = sorted((f for f in self.x.funding_history(market.venue_id)
                       if since_ms is None or f.funding_time_ms >= since_ms), key=lambda f: f.funding_time_ms)
        if limit:
            rows = rows[-limit:]
        return [_funding(symbol, f, rows[i + 1].funding_time_ms if i + 1 < len(rows) else None)
                for i, f in enumerate(rows)]

    # -- account --------------------------------------------------------------------------------------
    def balances(self, account: Account = "trading") -> dict[str, Balance]:
        # OKX: trading = account/balance (total eq, free availBal), funding = asset/balances (total bal, the
        # cash). ``used`` is total - free, as ccxt's safe_balance makes it (frozenBal leaves the unrealised
        # PnL out, so it would not add up).
        if account not in _ACCOUNTS:
            raise self._refuse(R.INVALID_ORDER, f"okx has no {account!r} account (trading, funding)")
        try:
            views = self.x.balances(account)
        except Reject as exc:
            raise venue_error(exc) from None
        out = {}
        for c, b in views.items():
            total = b.equity if account == "trading" else b.cash
            out[c] = Balance(c, total, b.available, total - b.available)
        return out

    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        wanted = [self._ids[s] for s in (symbols or []) if s in self._markets and self._markets[s].is_swap]
        if symbols and not wanted:
            return []  # as the ccxt path: symbols that are not swaps here hold no position
        out = []
        for p in self.x.positions(wanted or None):
            r = p.rec
            mode: MarginMode = "isolated" if r.margin_mode == "isolated" else "cross"
            margin = r.margin if mode == "isolated" else p.initial
            out.append(Position(self._symbol(r.inst_id), r.qty, r.entry, p.mark, p.liq_price if p.liq_price
                                and p.liq_price > 0 else None, margin, r.leverage, mode, p.upl))
        return out

    def funding_payments(self, symbol: str | None = None, since_ms: int | None = None) -> list[FundingPayment]:
        """Funding bills of the trading account (positive = received), with the settlement's rate and the
        position they were paid on (signed base units)."""
        inst_id = self._require_swap(symbol).venue_id if symbol is not None else None
        rates: dict[tuple[str, int], Decimal] = {}
        out = []
        for b in self.x.bills("trading", kind="funding"):
            if (inst_id is not None and b.inst_id != inst_id) or (since_ms is not None and b.ts_ms < since_ms):
                continue
            if not rates or (b.inst_id, b.ts_ms) not in rates:
                rates.update({(f.inst_id, f.funding_time_ms): f.rate for f in self.x.funding_history(b.inst_id)})
            amount = b.bal_chg + b.pos_bal_chg
            out.append(FundingPayment(self._symbol(b.inst_id), amount, rates.get((b.inst_id, b.ts_ms), ZERO), b.qty,
                                      b.ts_ms, b.bill_id))
        return out

    def set_leverage(self, symbol: str, leverage: Decimal, margin_mode: MarginMode = "isolated") -> None:
        market = self._require_swap(symbol)
        if leverage < 1:
            raise self._refuse(R.LEVERAGE_REFUSED, f"leverage {leverage} < 1")
        if market.max_leverage is not None and leverage > market.max_leverage:
            raise self._refuse(R.LEVERAGE_REFUSED, f"leverage {leverage} above {symbol}'s max {market.max_leverage}")
        try:
            self.x.set_leverage(market.venue_id, leverage, margin_mode)
        except Reject as exc:
            raise venue_error(exc) from None
        with self._lock:
            self._margin_modes[symbol] = margin_mode

    def set_margin_mode(self, symbol: str, margin_mode: MarginMode, leverage: Decimal | None = None) -> None:
        """OKX keeps leverage per margin mode and takes the mode on every order (``tdMode``): setting the
        mode sets the leverage for it (current leverage unless ``leverage`` is given) and makes it the
        default ``tdMode`` of this symbol's orders."""
        market = self._require_swap(symbol)
        if leverage is None:
            leverage = self.x.leverage(market.venue_id, margin_mode)
        self.set_leverage(symbol, leverage, margin_mode)

    def add_margin(self, symbol: str, amount: Decimal) -> None:
        market = self._require_swap(symbol)
        if amount <= 0:
            raise self._refuse(R.INVALID_ORDER, f"margin to add must be positive, got {amount}")
        try:
            self.x.adjust_margin(market.venue_id, amount, True)
        except Reject as exc:
            raise venue_error(exc) from None

    def transfer(self, asset: str, amount: Decimal, from_account: Account, to_account: Account,
                 transfer_id: str) -> Transfer:
        """Move ``amount`` between funding and trading; idempotent by ``transfer_id`` (sent as OKX's
        ``clientId``, hashed when outside OKX's rule, as the ccxt path sends it)."""
        if amount <= 0:
            raise self._refuse(R.INVALID_ORDER, f"transfer amount must be positive, got {amount}")
        if from_account not in _ACCOUNTS or to_account not in _ACCOUNTS or from_account == to_account:
            raise self._refuse(R.INVALID_ORDER, f"okx transfers go between funding and trading, not "
                                                f"{from_account} -> {to_account}")
        try:
            rec = self.x.transfer(asset, amount, from_account, to_account, okx_transfer_client_id(transfer_id))
        except Reject as exc:
            raise venue_error(exc, "transfer") from None
        return Transfer(transfer_id, asset, amount, from_account, to_account, "ok", rec.trans_id)

    def fetch_transfer(self, transfer_id: str) -> Transfer | None:
        """The transfer made with this key (the model's transfer records by ``clientId``), or None."""
        try:
            rec = self.x.get_transfer(client_id=okx_transfer_client_id(transfer_id))
        except Reject as exc:
            if exc.reason is Reason.ORDER_NOT_FOUND:
                return None
            raise venue_error(exc) from None
        return _transfer(transfer_id, rec)

    # -- orders ---------------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> VenueOrder:
        market = self.market(request.symbol)
        qty = self._checked_qty(request, market)
        mode = self._mode(request, market)
        key = (request.symbol, request.client_order_id)
        with self._lock:
            if key in self._sent:
                self._refuse_if_used(request)
            self._remember_sent(key)
        try:
            if request.type == "stop_market":
                assert request.trigger_price is not None  # _checked_qty refused it otherwise
                algo = self.x.place_algo(AlgoSpec(market.venue_id, request.side, "trigger", qty,
                                                  trigger_px=request.trigger_price, order_px=None,
                                                  reduce_only=request.reduce_only, margin_mode=mode,
                                                  client_id=request.client_order_id))
                return self._algo(algo)
            kind = "post_only" if request.post_only else request.type
            rec = self.x.place_order(OrderSpec(market.venue_id, request.side, kind, qty,
                                               request.price if request.type == "limit" else None,
                                               request.client_order_id, request.reduce_only, mode))
        except Reject as exc:
            with self._lock:
                self._sent.pop(key, None)  # a definite refusal: the id was not used
            raise venue_error(exc) from None
        order = self._order(rec)
        if request.post_only and rec.filled == 0 and rec.state == "canceled":
            # OKX accepts a post-only that would take and cancels it at once (cancelSource 31).
            raise VenueError(R.POST_ONLY_WOULD_TAKE, f"post-only {request.side} at {request.price} would have "
                             "taken liquidity", OKX_POST_ONLY_CANCEL_SOURCE, {"venue_order_id": rec.ord_id})
        return order

    def _mode(self, request: OrderRequest, market: Market) -> str:
        if not market.is_swap:
            return "cash"
        with self._lock:
            return request.margin_mode or self._margin_modes.get(request.symbol) or self.default_margin_mode

    def _refuse_if_used(self, request: OrderRequest) -> None:
        existing = self.fetch_order(request.symbol, request.client_order_id)
        if existing is not None and (existing.is_live or existing.filled > 0):
            raise VenueError(R.DUPLICATE_CLIENT_ID, f"client order id {request.client_order_id} already used: "
                             f"order {existing.venue_order_id} is {existing.status}, filled {existing.filled}",
                             LOCAL, {"venue_order_id": existing.venue_order_id, "status": existing.status})

    def _remember_sent(self, key: tuple[str, str]) -> None:
        self._sent[key] = None
        self._sent.move_to_end(key)
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    def _checked_qty(self, request: OrderRequest, market: Market) -> Decimal:
        """The checks CcxtVenue makes before sending (same rules, same reasons): the quantity rounded down to
        the lot, in base units."""
        pattern = CLIENT_ID_PATTERNS["okx"]
        if not pattern.match(request.client_order_id):
            raise self._refuse(R.INVALID_ORDER, f"client order id {request.client_order_id!r} breaks okx's rule "
                                                f"{pattern.pattern}")
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
        qty = round_down(request.qty, market.qty_step)
        if qty == 0:
            raise self._refuse(R.MIN_QTY, f"qty {request.qty} is below one lot ({market.qty_step})",
                               qty_step=str(market.qty_step))
        if self.precheck:
            if qty < market.min_qty:
                raise self._refuse(R.MIN_QTY, f"qty {qty} below the minimum {market.min_qty}",
                                   min_qty=str(market.min_qty))
            reference = request.price or request.trigger_price
            if market.min_notional > 0 and reference is not None and qty * reference < market.min_notional:
                raise self._refuse(R.MIN_NOTIONAL, f"notional {qty * reference} below {market.min_notional}",
                                   min_notional=str(market.min_notional))
        return qty

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """Cancel by client id (the regular book, then the stops); the order as it stands afterwards
        (canceled, or filled if the fill won), or None when the venue knows no such order."""
        inst_id = self._id(symbol)
        try:
            self.x.cancel_order(inst_id, cl_ord_id=client_order_id)
        except Reject as exc:
            if REASONS.get(exc.reason) is not R.ORDER_NOT_FOUND:
                raise venue_error(exc) from None
            try:
                self.x.cancel_algo(algo_cl_ord_id=client_order_id)
            except Reject as algo_exc:
                if REASONS.get(algo_exc.reason) is not R.ORDER_NOT_FOUND:
                    raise venue_error(algo_exc) from None
        return self.fetch_order(symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        inst_id = self._id(symbol)
        try:
            return self._order(self.x.get_order(inst_id, cl_ord_id=client_order_id))
        except Reject as exc:
            if exc.reason is not Reason.ORDER_NOT_FOUND:
                raise venue_error(exc, "query") from None
        try:
            algo = self.x.get_algo(algo_cl_ord_id=client_order_id)
        except Reject as exc:
            if exc.reason is not Reason.ORDER_NOT_FOUND:
                raise venue_error(exc, "query") from None
            return None
        return self._algo(algo) if algo.inst_id == inst_id else None

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Live orders, then live stops (OKX orders-pending, then orders-algo-pending), each list in ccxt's
        order: by creation time, those of one millisecond newest first (as OKX lists them)."""
        inst_id = self._id(symbol) if symbol is not None else None
        orders = sorted(sorted(self.x.open_orders(inst_id), key=lambda o: -int(o.ord_id)), key=lambda o: o.created_ms)
        algos = sorted(sorted((a for a in self.x.algos(inst_id, live=True) if a.ord_type == "trigger"),
                              key=lambda a: -int(a.algo_id)), key=lambda a: a.created_ms)
        return [self._order(o) for o in orders] + [self._algo(a) for a in algos]

    def fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        """Fills, oldest first (ccxt's order: by time, those of one millisecond newest first, as OKX lists them)."""
        inst_id = self._id(symbol)
        rows = sorted(reversed(self.x.fills(inst_id, since_ms)), key=lambda f: f.ts_ms)
        return [Fill(f.trade_id, f.ord_id, f.cl_ord_id, symbol, "sell" if f.side == "sell" else "buy", f.qty,
                     f.price, f.fee, f.fee_ccy, "maker" if f.liquidity == "maker" else "taker", f.ts_ms)
                for f in rows]

    # -- records --------------------------------------------------------------------------------------
    def _order(self, o: OrderRec) -> VenueOrder:
        inst = self.x.instruments[o.inst_id]
        # A spot buy pays its fee in the base asset (OKX): the record speaks quote, as the Venue promises.
        fee = o.fee * o.avg_price if o.fee_ccy == inst.base and o.avg_price is not None else o.fee
        order_type: OrderType = "market" if o.ord_type == "market" else "limit"
        return VenueOrder(o.ord_id, o.cl_ord_id, self._symbol(o.inst_id), "sell" if o.side == "sell" else "buy",
                          order_type, o.qty, o.filled, o.price if order_type == "limit" else None,
                          o.avg_price if o.avg_price else None, _STATUS.get(o.state, "open"), o.reduce_only,
                          o.ord_type == "post_only", None, fee, o.created_ms)

    def _algo(self, a: AlgoRec) -> VenueOrder:
        """A stop as OKX shows it through ccxt: the algo order, with no fill fields; ccxt counts a fired
        (closed) one as filled whole and gives no average price."""
        status = _ALGO_STATUS.get(a.state, "open")
        filled = a.qty if status == "closed" else ZERO
        return VenueOrder(a.algo_id, a.algo_cl_ord_id, self._symbol(a.inst_id), "sell" if a.side == "sell" else "buy",
                          "stop_market", a.qty, filled, None, None, status,
                          a.reduce_only, False, a.trigger_px, ZERO, a.created_ms)


def _market(symbol: str, inst: Instrument) -> Market:
    """The market as ccxt reads OKX's instruments: filters in base units, the account's fee rates."""
    return Market(symbol=symbol, venue_id=inst.inst_id, kind="swap" if inst.is_swap else "spot", base=inst.base,
                  quote=inst.quote, settle=inst.settle if inst.is_swap else None,
                  contract_size=inst.contract_size if inst.is_swap else Decimal(1),
                  qty_step=inst.qty_step.normalize(), tick=inst.tick,
                  min_qty=max(inst.min_qty, inst.qty_step).normalize(), min_notional=inst.min_notional,
                  max_leverage=inst.max_leverage, maker_fee=inst.maker_fee, taker_fee=inst.taker_fee)


def _funding(symbol: str, f: FundingRec, next_ms: int | None) -> FundingRate:
    # OKX's funding-rate-history rows carry no mark price: neither does this record.
    return FundingRate(symbol, f.rate, f.funding_time_ms, next_ms)


_TRANSFER_ACCOUNTS: dict[str, Account] = {"trading": "trading", "funding": "funding"}
_TRANSFER_STATES: dict[str, Literal["ok", "pending", "failed"]] = {"success": "ok", "failed": "failed"}


def _transfer(transfer_id: str, rec: TransferRec) -> Transfer:
    """A transfer record as OKX asset/transfer-state shows it (state success -> ok, failed, else pending)."""
    return Transfer(transfer_id, rec.ccy, rec.amount, _TRANSFER_ACCOUNTS.get(rec.from_account, "funding"),
                    _TRANSFER_ACCOUNTS.get(rec.to_account, "trading"), _TRANSFER_STATES.get(rec.state, "pending"),
                    rec.trans_id)
