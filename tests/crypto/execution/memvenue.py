"""A small in-memory ``Venue`` for the engine's unit tests: one book per symbol around a settable mid,
fills against the book's visible depth (partial fills rest), faults on demand. The e2e tests use the real
local exchange through ccxt instead; this one keeps the decision tests fast and exact."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from core.oms.reasons import VenueReason
from crypto.venue.types import (
    Balance,
    Book,
    Fill,
    FundingPayment,
    Market,
    OrderRequest,
    Position,
    Ticker,
    VenueError,
    VenueOrder,
)

D = Decimal


def btc() -> Market:
    return Market("BTC/USDT:USDT", "BTC-USDT-SWAP", "swap", "BTC", "USDT", "USDT", D("0.01"), D("0.001"),
                  D("0.1"), D("0.001"), D("5"), D("100"), D("0.0002"), D("0.0005"))


def eth() -> Market:
    return Market("ETH/USDT:USDT", "ETH-USDT-SWAP", "swap", "ETH", "USDT", "USDT", D("0.1"), D("0.01"),
                  D("0.01"), D("0.01"), D("5"), D("100"), D("0.0002"), D("0.0005"))


@dataclass
class _Pos:
    qty: Decimal = D(0)
    entry: Decimal = D(0)


class MemVenue:
    name = "mem"

    def __init__(self, mids: dict[str, Decimal] | None = None, depth: Decimal = Decimal(10), balance: Decimal = Decimal(100000)):
        self._markets = {m.symbol: m for m in (btc(), eth())}
        self.mids = mids or {"BTC/USDT:USDT": D("50000"), "ETH/USDT:USDT": D("3000")}
        self.depth = depth
        self.balance = balance
        self.orders: dict[str, VenueOrder] = {}
        self.positions_: dict[str, _Pos] = {}
        self.leverage: dict[str, Decimal] = {}
        self.margin_mode: dict[str, str] = {}
        self.place_calls = 0
        self.lose_next = 0  # accept, then answer UNKNOWN_OUTCOME
        self.rate_limit_next = 0
        self.funds_next = 0  # refuse the next opening orders for margin (51008) whatever the balance
        self.liq: dict[str, Decimal] = {}  # liquidation price reported per symbol
        self.refuse: set[str] = set()  # order types refused (e.g. "stop_market", "tp" for reduce-only limits)
        self.ms = 0
        self.seq = 0
        self.trades: list[Fill] = []  # the account's fills (setup positions made with _fill have none)
        self.bills: list[FundingPayment] = []
        self.fill_reads = 0

    def now_ms(self) -> int:
        return self.ms

    def markets(self) -> dict[str, Market]:
        return dict(self._markets)

    def market(self, symbol: str) -> Market:
        if symbol not in self._markets:  # as CcxtVenue: an unknown symbol is a refusal, not a KeyError
            raise VenueError(VenueReason.INVALID_ORDER, f"unknown symbol {symbol!r}", "LOCAL")
        return self._markets[symbol]

    def _bidask(self, symbol: str) -> tuple[Decimal, Decimal]:
        tick = self._markets[symbol].tick
        return self.mids[symbol] - tick, self.mids[symbol] + tick

    def ticker(self, symbol: str) -> Ticker:
        bid, ask = self._bidask(symbol)
        return Ticker(symbol, bid, ask, self.mids[symbol], self.ms)

    def order_book(self, symbol: str, depth: int = 20) -> Book:
        bid, ask = self._bidask(symbol)
        return Book(symbol, ((bid, self.depth),), ((ask, self.depth),), self.ms)

    def mark_price(self, symbol: str) -> Decimal:
        return self.mids[symbol]

    def index_price(self, symbol: str) -> Decimal:
        return self.mids[symbol]

    def balances(self, account: str = "trading") -> dict[str, Balance]:
        upnl = sum(((self.mids[s] - p.entry) * p.qty for s, p in self.positions_.items()), D(0))
        eq = self.balance + upnl
        return {"USDT": Balance("USDT", eq, eq, D(0))}

    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        out = []
        for s, p in self.positions_.items():
            if p.qty != 0:
                lev = self.leverage.get(s, D(1))
                out.append(Position(s, p.qty, p.entry, self.mids[s], self.liq.get(s), abs(p.qty) * p.entry / lev, lev,
                                    self.margin_mode.get(s, "isolated"), (self.mids[s] - p.entry) * p.qty))  # type: ignore[arg-type]
        return out

    def set_leverage(self, symbol: str, leverage: Decimal, margin_mode: str = "isolated") -> None:
        self.leverage[symbol] = leverage

    def set_margin_mode(self, symbol: str, margin_mode: str) -> None:
        self.margin_mode[symbol] = margin_mode

    def _trade(self, o: VenueOrder, qty: Decimal, price: Decimal, liquidity: str) -> None:
        """A fill of our order: booked on the position and in the account's trade list, with its fee."""
        fee = qty * price * (self._markets[o.symbol].taker_fee if liquidity == "taker" else self._markets[o.symbol].maker_fee)
        self.trades.append(Fill(f"t{len(self.trades) + 1}", o.venue_order_id, o.client_order_id, o.symbol, o.side, qty,
                                price, fee, "USDT", liquidity, self.ms))  # type: ignore[arg-type]
        self._fill(o.symbol, o.side, qty, price)

    def fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        self.fill_reads += 1
        return [f for f in self.trades if f.symbol == symbol and (since_ms is None or f.ts_ms >= since_ms)]

    def settle_funding(self, rate: Decimal) -> None:
        """A funding settlement now: every position pays or receives -qty x mark x rate."""
        for s, p in self.positions_.items():
            if p.qty != 0:
                amount = -p.qty * self.mids[s] * rate
                self.balance += amount
                self.bills.append(FundingPayment(s, amount, rate, p.qty, self.ms, f"b{len(self.bills) + 1}"))

    def funding_payments(self, symbol: str | None = None, since_ms: int | None = None) -> list[FundingPayment]:
        return [b for b in self.bills if (symbol is None or b.symbol == symbol)
                and (since_ms is None or b.ts_ms >= since_ms)]

    def _fill(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        p = self.positions_.setdefault(symbol, _Pos())
        signed = qty if side == "buy" else -qty
        new = p.qty + signed
        if p.qty == 0 or (p.qty > 0) == (signed > 0):
            p.entry = (p.entry * abs(p.qty) + price * qty) / abs(new)
        elif new != 0 and (new > 0) != (p.qty > 0):
            p.entry = price
        p.qty = new

    def place_order(self, r: OrderRequest) -> VenueOrder:
        self.place_calls += 1
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            raise VenueError(VenueReason.RATE_LIMIT, "too many", "50011")
        if any(o.client_order_id == r.client_order_id for o in self.orders.values()):
            raise VenueError(VenueReason.DUPLICATE_CLIENT_ID, "dup", "51016")
        if r.type in self.refuse or ("tp" in self.refuse and r.type == "limit" and r.reduce_only):
            raise VenueError(VenueReason.INVALID_ORDER, "refused", "51000")
        m = self._markets[r.symbol]
        if (r.qty / m.qty_step) % 1 != 0:
            raise VenueError(VenueReason.LOT_SIZE, "lot", "51121")
        bid, ask = self._bidask(r.symbol)
        px = r.price if r.type == "limit" else (ask if r.side == "buy" else bid)
        lev = self.leverage.get(r.symbol, D(1))
        if not r.reduce_only and (r.qty * px / lev > self.balance or self.funds_next > 0):
            self.funds_next = max(0, self.funds_next - 1)
            raise VenueError(VenueReason.INSUFFICIENT_FUNDS, "margin", "51008")
        self.seq += 1
        crosses = r.type == "market" or (r.side == "buy" and px >= ask) or (r.side == "sell" and px <= bid)
        filled = min(r.qty, self.depth) if crosses and r.type != "stop_market" else D(0)
        if r.type == "market":
            filled = r.qty
        status = "closed" if filled == r.qty else "open"
        order = VenueOrder(str(self.seq), r.client_order_id, r.symbol, r.side, r.type, r.qty, filled, r.price,
                           (ask if r.side == "buy" else bid) if filled else None, status, r.reduce_only,
                           r.post_only, r.trigger_price, D(0), self.ms)
        if filled:
            self._trade(order, filled, ask if r.side == "buy" else bid, "taker")
        self.orders[order.venue_order_id] = order
        if self.lose_next > 0:
            self.lose_next -= 1
            raise VenueError(VenueReason.UNKNOWN_OUTCOME, "response lost")
        return order

    def _by_coid(self, coid: str) -> VenueOrder | None:
        return next((o for o in self.orders.values() if o.client_order_id == coid), None)

    def fill_resting(self, coid: str, qty: Decimal) -> None:
        """The market came to a resting order: ``qty`` more of it fills."""
        o = self._by_coid(coid)
        assert o is not None and o.status == "open"
        qty = min(qty, o.remaining)
        price = o.price if o.price is not None else o.trigger_price  # a stop fills at its trigger here
        assert price is not None
        new = replace(o, filled=o.filled + qty, avg_price=price,
                      status="closed" if o.filled + qty == o.qty else "open")
        self.orders[o.venue_order_id] = new
        self._trade(o, qty, price, "maker")

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        o = self._by_coid(client_order_id)
        if o is None or o.status != "open":
            return None
        new = replace(o, status="canceled")
        self.orders[o.venue_order_id] = new
        return new

    def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return self._by_coid(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [o for o in self.orders.values() if o.status == "open" and (symbol is None or o.symbol == symbol)]

    def orders_with(self, coid: str) -> int:
        return sum(1 for o in self.orders.values() if o.client_order_id == coid)
