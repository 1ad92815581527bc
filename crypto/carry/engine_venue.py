"""A ``Venue`` over the local exchange's model in the same process (``crypto.fakex.engine.Exchange``).

The carry dry run replays days against the fake at model speed: going through HTTP and ccxt for every
5-minute scan of 30 days costs minutes, the in-process model milliseconds. The wire path (ccxt ->
``crypto.fakex`` server) is the same model behind a server and is what ``crypto.venue.ccxt_venue`` is tested
against; this adapter translates the same records (base units, Decimal, the fake's refusals mapped to
``VenueReason``) so the engine cannot tell the two apart. Funding bills are the model's own bills.
"""

from __future__ import annotations

from decimal import Decimal

from core.oms.reasons import VenueReason
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import AlgoSpec, Exchange, OrderSpec
from crypto.venue.types import (
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
    Position,
    Ticker,
    Transfer,
    VenueError,
    VenueOrder,
)

_REASONS: dict[Reason, VenueReason] = {
    Reason.TICK_SIZE: VenueReason.TICK_SIZE,
    Reason.LOT_SIZE: VenueReason.LOT_SIZE,
    Reason.MIN_SIZE: VenueReason.MIN_QTY,
    Reason.MIN_NOTIONAL: VenueReason.MIN_NOTIONAL,
    Reason.INSUFFICIENT_FUNDS: VenueReason.INSUFFICIENT_FUNDS,
    Reason.DUPLICATE_CLIENT_ID: VenueReason.DUPLICATE_CLIENT_ID,
    Reason.ORDER_NOT_FOUND: VenueReason.ORDER_NOT_FOUND,
    Reason.REDUCE_ONLY_NO_POSITION: VenueReason.REDUCE_ONLY_REJECTED,
    Reason.REDUCE_ONLY_SAME_SIDE: VenueReason.REDUCE_ONLY_REJECTED,
    Reason.MARGIN_MODE_MISMATCH: VenueReason.MARGIN_MODE_CONFLICT,
    Reason.LEVERAGE_INVALID: VenueReason.LEVERAGE_REFUSED,
    Reason.LEVERAGE_WITH_ORDERS: VenueReason.LEVERAGE_REFUSED,
}
_STATUS: dict[str, OrderStatus] = {"live": "open", "partially_filled": "open", "filled": "closed",
                                   "canceled": "canceled"}


def _venue_error(exc: Reject) -> VenueError:
    return VenueError(_REASONS.get(exc.reason, VenueReason.VENUE_ERROR), exc.detail, exc.reason.value)


class EngineVenue:
    """``Venue`` over an in-process ``Exchange``; symbols are ccxt unified (``BTC/USDT``, ``BTC/USDT:USDT``)."""

    name = "okx"

    def __init__(self, exchange: Exchange) -> None:
        self.x = exchange
        self._markets: dict[str, Market] = {}
        self._ids: dict[str, str] = {}
        for inst in exchange.instruments.values():
            symbol = f"{inst.base}/{inst.quote}" + (f":{inst.settle}" if inst.is_swap else "")
            self._ids[symbol] = inst.inst_id
            self._markets[symbol] = Market(
                symbol=symbol, venue_id=inst.inst_id, kind="swap" if inst.is_swap else "spot", base=inst.base,
                quote=inst.quote, settle=inst.settle, contract_size=inst.contract_size, qty_step=inst.qty_step,
                tick=inst.tick, min_qty=inst.min_qty, min_notional=inst.min_notional,
                max_leverage=inst.max_leverage, maker_fee=inst.maker_fee, taker_fee=inst.taker_fee)

    def _id(self, symbol: str) -> str:
        try:
            return self._ids[symbol]
        except KeyError:
            raise VenueError(VenueReason.INVALID_ORDER, f"unknown symbol {symbol}") from None

    def _symbol(self, inst_id: str) -> str:
        for s, i in self._ids.items():
            if i == inst_id:
                return s
        return inst_id

    def now_ms(self) -> int:
        return self.x.now_ms()

    def markets(self) -> dict[str, Market]:
        return dict(self._markets)

    def market(self, symbol: str) -> Market:
        self._id(symbol)
        return self._markets[symbol]

    def ticker(self, symbol: str) -> Ticker:
        t = self.x.ticker(self._id(symbol))
        return Ticker(symbol, t.bid, t.ask, t.last, t.ts_ms)

    def order_book(self, symbol: str, depth: int = 20) -> Book:
        b = self.x.book(self._id(symbol), depth)
        return Book(symbol, tuple((p, q) for p, q in b.bids), tuple((p, q) for p, q in b.asks), self.x.now_ms())

    def mark_price(self, symbol: str) -> Decimal:
        return self.x.mark_price(self._id(symbol))

    def index_price(self, symbol: str) -> Decimal:
        return self.x.index_price(self._id(symbol))

    def funding_rate(self, symbol: str) -> FundingRate:
        try:
            f = self.x.funding(self._id(symbol))
        except Reject as exc:
            raise _venue_error(exc) from None
        return FundingRate(symbol, f.rate, f.funding_time_ms, f.next_funding_time_ms)

    def funding_history(self, symbol: str, since_ms: int | None = None, limit: int | None = None) -> list[FundingRate]:
        rows = [FundingRate(symbol, f.rate, f.funding_time_ms, None, f.mark)
                for f in self.x.funding_history(self._id(symbol)) if since_ms is None or f.funding_time_ms >= since_ms]
        return rows[-limit:] if limit else rows

    def balances(self, account: Account = "trading") -> dict[str, Balance]:
        return {c: Balance(c, b.equity if b.iso_margin == 0 else b.cash, b.available, b.frozen)
                for c, b in self.x.balances(account).items()}

    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        ids = [self._id(s) for s in symbols] if symbols is not None else None
        out = []
        for p in self.x.positions(ids):
            r = p.rec
            out.append(Position(self._symbol(r.inst_id), r.qty, r.entry, p.mark, p.liq_price, r.margin, r.leverage,
                                "isolated" if r.margin_mode == "isolated" else "cross", p.upl))
        return out

    def funding_payments(self, symbol: str | None = None, since_ms: int | None = None) -> list[FundingPayment]:
        inst_id = self._id(symbol) if symbol is not None else None
        out = []
        for b in self.x.bills(kind="funding"):
            if (inst_id is not None and b.inst_id != inst_id) or (since_ms is not None and b.ts_ms < since_ms):
                continue
            amount = b.pos_bal_chg if b.pos_bal_chg != 0 else b.bal_chg
            rate = amount / (-b.qty * b.price) if b.qty and b.price else Decimal(0)
            out.append(FundingPayment(self._symbol(b.inst_id), amount, rate, b.qty, b.ts_ms, b.bill_id))
        return out

    def set_leverage(self, symbol: str, leverage: Decimal, margin_mode: MarginMode = "isolated") -> None:
        try:
            self.x.set_leverage(self._id(symbol), leverage, margin_mode)
        except Reject as exc:
            raise _venue_error(exc) from None

    def set_margin_mode(self, symbol: str, margin_mode: MarginMode) -> None:
        self.set_leverage(symbol, self.x.leverage(self._id(symbol), margin_mode), margin_mode)

    def add_margin(self, symbol: str, amount: Decimal) -> None:
        try:
            self.x.adjust_margin(self._id(symbol), amount, True)
        except Reject as exc:
            raise _venue_error(exc) from None

    def transfer(self, asset: str, amount: Decimal, from_account: Account, to_account: Account,
                 transfer_id: str) -> Transfer:
        try:
            rec = self.x.transfer(asset, amount, from_account, to_account, transfer_id)
        except Reject as exc:
            raise _venue_error(exc) from None
        return Transfer(transfer_id, asset, rec.amount, from_account, to_account, "ok", rec.trans_id)

    def _order(self, o: object) -> VenueOrder:
        from crypto.fakex.engine.state import OrderRec

        assert isinstance(o, OrderRec)
        inst = self.x.instruments[o.inst_id]
        # A spot buy pays its fee in the base asset (OKX): the record speaks quote, as the Venue promises.
        fee = o.fee * o.avg_price if o.fee_ccy == inst.base and o.avg_price is not None else o.fee
        return VenueOrder(o.ord_id, o.cl_ord_id, self._symbol(o.inst_id), "buy" if o.side == "buy" else "sell",
                          "market" if o.ord_type == "market" else "limit", o.qty, o.filled, o.price, o.avg_price,
                          _STATUS.get(o.state, "open"), o.reduce_only, o.ord_type == "post_only", None, fee,
                          o.updated_ms)

    def place_order(self, request: OrderRequest) -> VenueOrder:
        market = self.market(request.symbol)
        mode = (request.margin_mode or "isolated") if market.is_swap else "cash"
        kind = "post_only" if request.post_only else request.type
        if kind == "stop_market":
            return self._place_stop(request, mode)
        try:
            rec = self.x.place_order(OrderSpec(self._id(request.symbol), request.side, kind, request.qty,
                                               request.price, request.client_order_id, request.reduce_only, mode))
        except Reject as exc:
            raise _venue_error(exc) from None
        return self._order(rec)

    def _place_stop(self, request: OrderRequest, mode: str) -> VenueOrder:
        """A stop-market as the venue keeps it: an algo ``trigger`` order on the mark (OKX ``algoClOrdId``)."""
        if request.trigger_price is None:
            raise VenueError(VenueReason.INVALID_ORDER, "a stop needs a trigger price")
        try:
            algo = self.x.place_algo(AlgoSpec(self._id(request.symbol), request.side, "trigger", request.qty,
                                              trigger_px=request.trigger_price, order_px=None,
                                              trigger_px_type="mark", reduce_only=request.reduce_only,
                                              margin_mode=mode, client_id=request.client_order_id))
        except Reject as exc:
            raise _venue_error(exc) from None
        return self._algo(algo)

    def _algo(self, a: object) -> VenueOrder:
        from crypto.fakex.engine.state import AlgoRec

        assert isinstance(a, AlgoRec)
        status: OrderStatus = {"live": "open", "effective": "closed", "canceled": "canceled"}.get(a.state, "rejected")
        filled = a.qty if a.state == "effective" else Decimal(0)
        return VenueOrder(a.algo_id, a.algo_cl_ord_id, self._symbol(a.inst_id), "buy" if a.side == "buy" else "sell",
                          "stop_market", a.qty, filled, None, None, status, a.reduce_only, False, a.trigger_px)

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            return self._order(self.x.cancel_order(self._id(symbol), cl_ord_id=client_order_id))
        except Reject:
            pass
        try:
            return self._algo(self.x.cancel_algo(algo_cl_ord_id=client_order_id))
        except Reject:
            return None

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            return self._order(self.x.get_order(self._id(symbol), cl_ord_id=client_order_id))
        except Reject:
            pass
        try:
            return self._algo(self.x.get_algo(algo_cl_ord_id=client_order_id))
        except Reject:
            return None

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [self._order(o) for o in self.x.open_orders(self._id(symbol) if symbol else None)]

    def fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        return [Fill(f.trade_id, f.ord_id, f.cl_ord_id, symbol, "buy" if f.side == "buy" else "sell", f.qty, f.price,
                     f.fee, f.fee_ccy, "maker" if f.liquidity == "maker" else "taker", f.ts_ms)
                for f in self.x.fills(self._id(symbol), since_ms)]
