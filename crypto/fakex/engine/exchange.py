"""The exchange: applies requests and the passing of time to the one ``ExchangeState``.

This is the engine's shell around the pure parts (paths, book, margin, funding): every public method takes
the lock, first brings the model up to the clock (fills of resting orders, stop triggers, liquidations,
funding settlements, in time order), then applies the request. Quantities are base units; prices and
money are Decimal. Refusals raise ``Reject`` with a neutral ``Reason``; dialects turn them into codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from crypto.fakex.engine import funding as fnd
from crypto.fakex.engine import margin as mg
from crypto.fakex.engine.book import Book, build_book, match_taker, resting_fill_qty, would_cross
from crypto.fakex.engine.clock import Clock, ManualClock
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.instruments import Instrument, default_instruments, is_multiple, round_down
from crypto.fakex.engine.paths import STEP_MS, PricePath, Scenario
from crypto.fakex.engine.state import (
    AlgoRec,
    BillRec,
    ExchangeState,
    FillRec,
    FundingRec,
    FundingSchedule,
    OrderRec,
    PositionRec,
    TransferRec,
    load_state,
    save_state,
)

D = Decimal
ZERO = D(0)
MONEY = D("1e-12")  # every money amount is quantized here so balances stay short exact sums
DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEFAULT_LEVERAGE = D(3)
ORDER_TYPES = ("limit", "market", "post_only", "ioc", "fok")
ALGO_TYPES = ("conditional", "oco", "trigger")
DAY_MS = 86_400_000


def default_balances() -> dict[str, dict[str, Decimal]]:
    return {
        "trading": {"USDT": D(100_000), "BTC": D(1), "ETH": D(10), "SOL": D(100)},
        "funding": {"USDT": D(10_000)},
    }


def q(value: Decimal) -> Decimal:
    return value.quantize(MONEY)


@dataclass(frozen=True)
class OrderSpec:
    inst_id: str
    side: str  # buy | sell
    ord_type: str  # limit | market | post_only | ioc | fok
    qty: Decimal  # base units
    price: Decimal | None = None
    client_id: str = ""
    reduce_only: bool = False
    margin_mode: str = "cash"  # cash (spot) | cross | isolated
    tag: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlgoSpec:
    inst_id: str
    side: str
    ord_type: str  # conditional | oco | trigger
    qty: Decimal  # base units
    trigger_px: Decimal | None = None
    order_px: Decimal | None = None  # None = market
    sl_trigger_px: Decimal | None = None
    sl_ord_px: Decimal | None = None
    tp_trigger_px: Decimal | None = None
    tp_ord_px: Decimal | None = None
    trigger_px_type: str = "last"
    reduce_only: bool = False
    margin_mode: str = "cash"
    client_id: str = ""
    tag: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PositionView:
    rec: PositionRec
    mark: Decimal
    upl: Decimal
    liq_price: Decimal | None
    maintenance: Decimal
    initial: Decimal  # margin posted (isolated) or required at mark (cross)
    notional: Decimal


@dataclass(frozen=True)
class BalanceView:
    ccy: str
    cash: Decimal  # wallet cash, isolated margin excluded
    equity: Decimal  # cash + isolated margin + unrealised PnL
    available: Decimal
    frozen: Decimal  # orders + cross initial margin + isolated margin
    ord_frozen: Decimal
    upl: Decimal
    iso_margin: Decimal


@dataclass(frozen=True)
class TickerView:
    inst_id: str
    last: Decimal
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    open_24h: Decimal
    high_24h: Decimal
    low_24h: Decimal
    vol_24h: Decimal  # base units
    ts_ms: int


@dataclass(frozen=True)
class Candle:
    ts_ms: int  # bar open
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal  # base units, synthetic
    confirmed: bool  # False for the bar still forming


@dataclass(frozen=True)
class FundingView:
    inst_id: str
    rate: Decimal  # predicted rate of the coming settlement
    funding_time_ms: int  # the coming settlement
    next_funding_time_ms: int  # the one after, at the current interval
    interval_h: int
    cap: Decimal
    premium: Decimal
    last_rate: Decimal | None
    ts_ms: int


class Exchange:
    """One account on one exchange; thread-safe."""

    def __init__(self, state: ExchangeState, instruments: Mapping[str, Instrument] | None = None,
                 clock: Clock | None = None) -> None:
        self.state = state
        self.instruments: dict[str, Instrument] = dict(instruments or default_instruments())
        self.clock: Clock = clock if clock is not None else ManualClock(state.now_ms)
        self._lock = threading.RLock()
        self._paths: dict[str, PricePath] = {}
        # Indexes over the state, rebuilt on load and kept by _track/_track_algo: the per-step work and the
        # per-request checks look at live orders only, never at the whole history.
        self._live: dict[str, OrderRec] = {o.ord_id: o for o in state.orders.values() if o.is_live}
        self._live_algos: dict[str, AlgoRec] = {a.algo_id: a for a in state.algos.values() if a.state == "live"}
        self._bounds: dict[str, tuple[Decimal | None, Decimal | None]] | None = None
        self._fair_cache: dict[str, Decimal] = {}
        self._fair_cache_t = -1
        # Depth our taker orders consumed in the current path step, per instrument (memory only: it refills
        # within 10 model seconds anyway).
        self._consumed: dict[str, tuple[int, dict[tuple[str, Decimal], Decimal]]] = {}
        for inst in self.instruments.values():
            if inst.base not in self._paths:
                self._paths[inst.base] = PricePath(state.seed, _scenario(state.scenario), inst.base,
                                                   inst.start_price, state.start_ms)
            if inst.is_swap and inst.inst_id not in state.funding:
                state.funding[inst.inst_id] = FundingSchedule(
                    next_ms=fnd.next_settlement_ms(state.now_ms, fnd.BASE_INTERVAL_H))

    @classmethod
    def create(cls, seed: int = 1, scenario: str = "calm", start_ms: int = DEFAULT_START_MS,
               balances: Mapping[str, Mapping[str, Decimal]] | None = None,
               instruments: Mapping[str, Instrument] | None = None, clock: Clock | None = None) -> Exchange:
        start_balances = balances if balances is not None else default_balances()
        state = ExchangeState(seed=seed, scenario=_scenario(scenario), start_ms=start_ms, now_ms=start_ms,
                              balances={a: {c: D(v) for c, v in b.items()} for a, b in start_balances.items()})
        return cls(state, instruments, clock if clock is not None else ManualClock(start_ms))

    @classmethod
    def load(cls, path: Path, instruments: Mapping[str, Instrument] | None = None,
             clock: Clock | None = None) -> Exchange:
        state = load_state(path)
        return cls(state, instruments, clock if clock is not None else ManualClock(state.now_ms))

    def save(self, path: Path) -> None:
        with self._lock:
            self._sync()
            save_state(self.state, path)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            self._sync()
            return self.state.model_dump(mode="json")

    # ------------------------------------------------------------------ time
    def now_ms(self) -> int:
        with self._lock:
            self._sync()
            return self.state.now_ms

    def sync(self) -> int:
        """Bring the model up to the clock; returns the model time."""
        with self._lock:
            self._sync()
            return self.state.now_ms

    def _sync(self) -> None:
        target = self.clock.now_ms()
        t = self.state.now_ms
        while t < target:
            nxt = min([target] + [s.next_ms for s in self.state.funding.values()])
            if self._is_active():
                nxt = min(nxt, (t // STEP_MS + 1) * STEP_MS)
            nxt = max(nxt, t + 1) if nxt <= t else nxt
            t = nxt
            self.state.now_ms = t
            if self._is_active():
                self._on_step(t)
            self._settle_funding_due(t)

    def _is_active(self) -> bool:
        return bool(self._live) or bool(self._live_algos) or any(p.qty != 0 for p in self.state.positions.values())

    def _track(self, order: OrderRec) -> None:
        if order.is_live:
            self._live[order.ord_id] = order
        else:
            self._live.pop(order.ord_id, None)
        self._bounds = None

    def _track_algo(self, algo: AlgoRec) -> None:
        if algo.state == "live":
            self._live_algos[algo.algo_id] = algo
        else:
            self._live_algos.pop(algo.algo_id, None)

    def _resting_bounds(self) -> dict[str, tuple[Decimal | None, Decimal | None]]:
        """Per instrument, the highest resting buy and the lowest resting sell: a step whose top of book
        crosses neither fills nothing there."""
        if self._bounds is None:
            bounds: dict[str, tuple[Decimal | None, Decimal | None]] = {}
            for o in self._live.values():
                if o.price is None:
                    continue
                hi, lo = bounds.get(o.inst_id, (None, None))
                if o.side == "buy":
                    hi = o.price if hi is None else max(hi, o.price)
                else:
                    lo = o.price if lo is None else min(lo, o.price)
                bounds[o.inst_id] = (hi, lo)
            self._bounds = bounds
        return self._bounds

    def _on_step(self, t: int) -> None:
        for inst_id, (max_buy, min_sell) in list(self._resting_bounds().items()):
            inst = self.instruments[inst_id]
            top = self._book_at(inst, t, 1)
            if not ((max_buy is not None and top.best_ask <= max_buy)
                    or (min_sell is not None and top.best_bid >= min_sell)):
                continue
            for order in [o for o in self._live.values() if o.inst_id == inst_id and o.price is not None]:
                if not order.is_live:
                    continue
                assert order.price is not None
                fill = resting_fill_qty(inst, order.side, order.price, order.remaining, top)
                if fill > 0:
                    self._apply_fill(order, order.price, fill, "maker", t)
        for algo in list(self._live_algos.values()):
            if algo.state == "live":
                self._check_algo(algo, t)
        self._check_liquidations(t)

    # ------------------------------------------------------------------ prices
    def _inst(self, inst_id: str) -> Instrument:
        inst = self.instruments.get(inst_id)
        if inst is None:
            raise Reject(Reason.UNKNOWN_INSTRUMENT, f"instrument {inst_id} does not exist")
        return inst

    def _index_at(self, inst: Instrument, t: int) -> Decimal:
        return self._paths[inst.base].index(t) * self.state.price_factor.get(inst.base, D(1))

    def _fair_at(self, inst: Instrument, t: int) -> Decimal:
        if t != self._fair_cache_t:
            self._fair_cache = {}
            self._fair_cache_t = t
        cached = self._fair_cache.get(inst.inst_id)
        if cached is not None:
            return cached
        fair = self._index_at(inst, t)
        if inst.is_swap:
            fair = fair * (1 + self._paths[inst.base].premium(t))
        self._fair_cache[inst.inst_id] = fair
        return fair

    def _round_px(self, inst: Instrument, price: Decimal) -> Decimal:
        return round_down(price + inst.tick / 2, inst.tick)

    def _last_at(self, inst: Instrument, t: int) -> Decimal:
        return self._round_px(inst, self._fair_at(inst, t))

    def _mark_at(self, inst: Instrument, t: int) -> Decimal:
        # The perpetual's mark is its fair price (index x (1 + premium)); spot marks at its last price.
        return self._round_px(inst, self._fair_at(inst, t))

    def _book_at(self, inst: Instrument, t: int, depth: int = 20) -> Book:
        """The synthetic book, less what our own taker orders took from it during this path step: a second
        order in the same 10 seconds meets the depth the first one left (the book refills each step)."""
        book = build_book(inst, self._fair_at(inst, t), depth)
        step, taken = self._consumed.get(inst.inst_id, (-1, {}))
        if step != t // STEP_MS or not taken:
            return book

        def left(side: str, levels: tuple[tuple[Decimal, Decimal], ...]) -> tuple[tuple[Decimal, Decimal], ...]:
            rest = tuple((p, q - taken.get((side, p), ZERO)) for p, q in levels)
            return tuple(level for level in rest if level[1] > 0)

        bids, asks = left("bid", book.bids), left("ask", book.asks)
        if not bids or not asks:
            # Never an empty side: the level after the last one modelled stands in (a deeper book exists).
            deeper = build_book(inst, self._fair_at(inst, t), min(depth * 2 + 1, 400))
            bids = bids or left("bid", deeper.bids)[-1:]
            asks = asks or left("ask", deeper.asks)[-1:]
        return Book(bids=bids, asks=asks)

    def _consume(self, inst: Instrument, t: int, side: str, fills: list[tuple[Decimal, Decimal]]) -> None:
        step = t // STEP_MS
        current, taken = self._consumed.get(inst.inst_id, (-1, {}))
        if current != step:
            taken = {}
        book_side = "ask" if side == "buy" else "bid"
        for price, qty in fills:
            taken[(book_side, price)] = taken.get((book_side, price), ZERO) + qty
        self._consumed[inst.inst_id] = (step, taken)

    def _trigger_price(self, inst: Instrument, kind: str, t: int) -> Decimal:
        if kind == "mark":
            return self._mark_at(inst, t)
        if kind == "index":
            return self._round_px(inst, self._index_at(inst, t))
        return self._last_at(inst, t)

    def book(self, inst_id: str, depth: int = 20) -> Book:
        with self._lock:
            self._sync()
            return self._book_at(self._inst(inst_id), self.state.now_ms, depth)

    def mark_price(self, inst_id: str) -> Decimal:
        with self._lock:
            self._sync()
            return self._mark_at(self._inst(inst_id), self.state.now_ms)

    def index_price(self, inst_id: str) -> Decimal:
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            return self._round_px(inst, self._index_at(inst, self.state.now_ms))

    def ticker(self, inst_id: str) -> TickerView:
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            t = self.state.now_ms
            book = self._book_at(inst, t, 1)
            samples = [self._last_at(inst, t - DAY_MS + i * 600_000) for i in range(145)]
            vol = sum((f.qty for f in self.state.fills if f.inst_id == inst_id and f.ts_ms > t - DAY_MS), ZERO)
            return TickerView(inst_id=inst_id, last=self._last_at(inst, t), bid=book.best_bid, bid_qty=book.bids[0][1],
                              ask=book.best_ask, ask_qty=book.asks[0][1], open_24h=samples[0], high_24h=max(samples),
                              low_24h=min(samples), vol_24h=vol, ts_ms=t)

    def candles(self, inst_id: str, bar_ms: int, end_ms: int | None = None, count: int = 100) -> list[Candle]:
        """``count`` bars of ``bar_ms`` ending with the one that holds ``end_ms`` (default now), newest first,
        from the last price sampled at most 60 times a bar (every path step for bars up to 10 minutes). Bars
        never reach past the model's now; the last one is still forming. Volume is synthetic."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            if bar_ms < STEP_MS or bar_ms % STEP_MS:
                raise Reject(Reason.BAD_PARAM, "bar must be a multiple of 10 seconds")
            now = self.state.now_ms
            end = min(now, end_ms if end_ms is not None else now)
            sample = max(STEP_MS, bar_ms // 60 // STEP_MS * STEP_MS)
            first_open = (end // bar_ms) * bar_ms
            out: list[Candle] = []
            for i in range(max(0, count)):
                opened = first_open - i * bar_ms
                closes = min(opened + bar_ms, now + 1)
                prices = [self._last_at(inst, ts) for ts in range(opened, closes, sample)]
                if not prices:
                    continue
                moved = abs(prices[-1] / prices[0] - 1)
                volume = round_down(inst.level_qty * (bar_ms // 60_000 or 1) * 10 * (1 + 100 * moved), inst.qty_step)
                out.append(Candle(ts_ms=opened, open=prices[0], high=max(prices), low=min(prices), close=prices[-1],
                                  volume=volume, confirmed=opened + bar_ms <= now))
            return out

    # ------------------------------------------------------------------ funding
    def _predicted_rate(self, inst: Instrument, t: int) -> tuple[Decimal, Decimal]:
        sched = self.state.funding[inst.inst_id]
        avg = self._paths[inst.base].mean_premium(t - sched.interval_h * fnd.HOUR_MS, t)
        forced = self.state.funding_override.get(inst.inst_id)
        rate = forced if forced is not None else fnd.funding_rate(avg, sched.interval_h, inst.funding_cap)
        return rate, avg

    def funding(self, inst_id: str) -> FundingView:
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            if not inst.is_swap:
                raise Reject(Reason.BAD_PARAM, f"{inst_id} has no funding")
            t = self.state.now_ms
            sched = self.state.funding[inst_id]
            rate, avg = self._predicted_rate(inst, t)
            past = [f for f in self.state.funding_history if f.inst_id == inst_id]
            return FundingView(inst_id=inst_id, rate=rate, funding_time_ms=sched.next_ms,
                               next_funding_time_ms=sched.next_ms + sched.interval_h * fnd.HOUR_MS,
                               interval_h=sched.interval_h, cap=inst.funding_cap, premium=avg,
                               last_rate=past[-1].rate if past else None, ts_ms=t)

    def funding_history(self, inst_id: str) -> list[FundingRec]:
        with self._lock:
            self._sync()
            self._inst(inst_id)
            return [f for f in self.state.funding_history if f.inst_id == inst_id]

    def _settle_funding_due(self, t: int) -> None:
        for inst_id, sched in sorted(self.state.funding.items()):
            if sched.next_ms > t:
                continue
            inst = self.instruments[inst_id]
            when = sched.next_ms
            rate, avg = self._predicted_rate(inst, when)
            mark = self._mark_at(inst, when)
            self.state.funding_history.append(FundingRec(inst_id=inst_id, funding_time_ms=when, rate=rate,
                                                         interval_h=sched.interval_h, mark=mark))
            pos = self.state.positions.get(inst_id)
            if pos is not None and pos.qty != 0:
                amount = q(fnd.funding_payment(pos.qty, mark, rate))
                pos.funding_paid += amount
                pos.updated_ms = when
                if pos.margin_mode == "isolated":
                    # Isolated: funding moves the position's margin (OKX shows it as posBalChg).
                    pos.margin += amount
                    self._bill(inst.account, inst.margin_ccy, "funding", when, inst_id=inst_id,
                               pos_bal_chg=amount, sub_kind="funding_fee", qty=pos.qty, price=mark)
                else:
                    self._cash(inst.account, inst.margin_ccy, amount)
                    self._bill(inst.account, inst.margin_ccy, "funding", when, inst_id=inst_id, bal_chg=amount,
                               sub_kind="funding_fee", qty=pos.qty, price=mark)
            forced = self.state.funding_override.get(inst_id)
            at_cap = abs(forced) >= inst.funding_cap if forced is not None else fnd.is_at_cap(avg, inst.funding_cap)
            sched.interval_h = fnd.next_interval_h(sched.interval_h, at_cap)
            sched.next_ms = fnd.next_settlement_ms(when, sched.interval_h)

    # ------------------------------------------------------------------ balances
    def _cash(self, account: str, ccy: str, delta: Decimal) -> Decimal:
        acct = self.state.balances.setdefault(account, {})
        acct[ccy] = acct.get(ccy, ZERO) + delta
        return acct[ccy]

    def _bill(self, account: str, ccy: str, kind: str, ts: int, **fields: object) -> BillRec:
        bill = BillRec(bill_id=self._new_id(), account=account, ccy=ccy, kind=kind, ts_ms=ts,
                       bal=self.state.balances.get(account, {}).get(ccy, ZERO), **fields)  # type: ignore[arg-type]
        self.state.bills.append(bill)
        return bill

    def _ord_frozen(self, account: str, ccy: str) -> Decimal:
        total = ZERO
        for o in self._live.values():
            if o.frozen_ccy == ccy and self.instruments[o.inst_id].account == account:
                total += o.frozen
        return total

    def _position_views(self, account: str, ccy: str) -> list[PositionView]:
        return [self._view(p) for p in self.state.positions.values()
                if p.qty != 0 and self.instruments[p.inst_id].account == account
                and self.instruments[p.inst_id].margin_ccy == ccy]

    def _balance(self, account: str, ccy: str) -> BalanceView:
        cash = self.state.balances.get(account, {}).get(ccy, ZERO)
        views = self._position_views(account, ccy)
        upl = sum((v.upl for v in views), ZERO)
        iso = sum((v.rec.margin for v in views if v.rec.margin_mode == "isolated"), ZERO)
        cross_im = sum((v.initial for v in views if v.rec.margin_mode == "cross"), ZERO)
        cross_upl = sum((v.upl for v in views if v.rec.margin_mode == "cross"), ZERO)
        ord_frozen = self._ord_frozen(account, ccy)
        available = max(ZERO, cash - ord_frozen - cross_im + min(cross_upl, ZERO))
        return BalanceView(ccy=ccy, cash=cash, equity=cash + iso + upl, available=available,
                           frozen=ord_frozen + cross_im + iso, ord_frozen=ord_frozen, upl=upl, iso_margin=iso)

    def balances(self, account: str = "trading") -> dict[str, BalanceView]:
        with self._lock:
            self._sync()
            if account not in self.state.balances:
                raise Reject(Reason.UNKNOWN_ACCOUNT, f"no account {account}")
            return {ccy: self._balance(account, ccy) for ccy in sorted(self.state.balances[account])}

    def deposit(self, account: str, ccy: str, amount: Decimal) -> Decimal:
        """Admin: credit (or debit) an account directly, with a bill."""
        with self._lock:
            self._sync()
            bal = self._cash(account, ccy, D(amount))
            self._bill(account, ccy, "deposit", self.state.now_ms, bal_chg=D(amount))
            return bal

    # ------------------------------------------------------------------ positions
    def _view(self, pos: PositionRec, copy: bool = False) -> PositionView:
        inst = self.instruments[pos.inst_id]
        t = self.state.now_ms
        mark = self._mark_at(inst, t)
        upl = q(mg.unrealized_pnl(pos.qty, pos.entry, mark))
        mm = q(mg.maintenance_margin(pos.qty, mark, inst.mmr, inst.taker_fee))
        if pos.margin_mode == "isolated":
            liq = mg.liquidation_price(pos.qty, pos.entry, pos.margin, inst.mmr, inst.taker_fee)
            initial = pos.margin
        else:
            initial = q(mg.initial_margin(pos.qty, mark, pos.leverage))
            liq = mg.liquidation_price(pos.qty, pos.entry, self._cross_margin_for(pos), inst.mmr, inst.taker_fee)
        liq_px = self._round_px(inst, liq) if liq is not None else None
        return PositionView(rec=pos.model_copy() if copy else pos, mark=mark, upl=upl, liq_price=liq_px,
                            maintenance=mm, initial=initial, notional=abs(pos.qty) * mark)

    def _cross_margin_for(self, pos: PositionRec) -> Decimal:
        # A cross position's liquidation price as if the account's free cash and the other cross positions'
        # PnL at the current mark backed it alone (documented approximation).
        inst = self.instruments[pos.inst_id]
        cash = self.state.balances.get(inst.account, {}).get(inst.margin_ccy, ZERO)
        others = ZERO
        for p in self.state.positions.values():
            if p is pos or p.qty == 0 or p.margin_mode != "cross":
                continue
            other = self.instruments[p.inst_id]
            if other.account == inst.account and other.margin_ccy == inst.margin_ccy:
                others += mg.unrealized_pnl(p.qty, p.entry, self._mark_at(other, self.state.now_ms))
        return max(ZERO, cash - self._ord_frozen(inst.account, inst.margin_ccy) + others)

    def positions(self, inst_ids: Iterable[str] | None = None) -> list[PositionView]:
        with self._lock:
            self._sync()
            wanted = set(inst_ids) if inst_ids is not None else None
            return [self._view(p, copy=True) for p in self.state.positions.values()
                    if p.qty != 0 and (wanted is None or p.inst_id in wanted)]

    def leverage(self, inst_id: str, margin_mode: str) -> Decimal:
        with self._lock:
            self._inst(inst_id)
            return self.state.leverage.get(f"{inst_id}:{margin_mode}", DEFAULT_LEVERAGE)

    def set_leverage(self, inst_id: str, leverage: Decimal, margin_mode: str) -> Decimal:
        """Set the leverage of an instrument for a margin mode; a live position in that mode takes it too.
        Isolated, as OKX does: the posted margin moves by the change of initial margin at the entry price
        (lower leverage draws cash, refused when the available balance cannot cover it; higher leverage
        releases it), so the liquidation price moves with the leverage."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            if margin_mode not in ("cross", "isolated"):
                raise Reject(Reason.BAD_PARAM, "mgnMode must be cross or isolated")
            lev = D(leverage)
            if lev < 1 or lev > inst.max_leverage or lev != lev.to_integral_value():
                raise Reject(Reason.LEVERAGE_INVALID, f"leverage must be an integer in 1..{inst.max_leverage}")
            pos = self.state.positions.get(inst_id)
            if pos is not None and pos.qty != 0 and pos.margin_mode != margin_mode:
                raise Reject(Reason.LEVERAGE_WITH_ORDERS, "a position in the other margin mode is open")
            if pos is not None and pos.qty != 0 and pos.margin_mode == "isolated" and lev != pos.leverage:
                delta = q(abs(pos.qty) * pos.entry / lev - abs(pos.qty) * pos.entry / pos.leverage)
                if delta > 0 and self._balance(inst.account, inst.margin_ccy).available < delta:
                    raise Reject(Reason.INSUFFICIENT_FUNDS, f"lowering the leverage needs {delta} more margin")
                delta = max(delta, -pos.margin)
                pos.margin += delta
                self._cash(inst.account, inst.margin_ccy, -delta)
                self._bill(inst.account, inst.margin_ccy, "margin", self.state.now_ms, inst_id=inst_id,
                           bal_chg=-delta, pos_bal_chg=delta, sub_kind="add" if delta > 0 else "reduce")
            self.state.leverage[f"{inst_id}:{margin_mode}"] = lev
            if pos is not None and pos.margin_mode == margin_mode:
                pos.leverage = lev
            return lev

    def adjust_margin(self, inst_id: str, amount: Decimal, add: bool) -> PositionView:
        """Add or reduce the margin of an isolated position (OKX margin-balance, ccxt add/reduceMargin)."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            pos = self.state.positions.get(inst_id)
            if pos is None or pos.qty == 0 or pos.margin_mode != "isolated":
                raise Reject(Reason.NO_POSITION, "no isolated position")
            amt = D(amount)
            if amt <= 0:
                raise Reject(Reason.BAD_PARAM, "amount must be positive")
            t = self.state.now_ms
            if add:
                if self._balance(inst.account, inst.margin_ccy).available < amt:
                    raise Reject(Reason.INSUFFICIENT_FUNDS, "not enough available balance")
                self._cash(inst.account, inst.margin_ccy, -amt)
                pos.margin += amt
            else:
                # What may leave: margin above the initial margin at mark, PnL aside (OKX's 'max reducible').
                view = self._view(pos)
                free = pos.margin + min(view.upl, ZERO) - mg.initial_margin(pos.qty, view.mark, pos.leverage)
                if amt > free:
                    raise Reject(Reason.MARGIN_REDUCE_TOO_LARGE, f"at most {max(free, ZERO)} can be removed")
                pos.margin -= amt
                self._cash(inst.account, inst.margin_ccy, amt)
            signed = amt if add else -amt
            self._bill(inst.account, inst.margin_ccy, "margin", t, inst_id=inst_id, bal_chg=-signed,
                       pos_bal_chg=signed, sub_kind="add" if add else "reduce")
            pos.updated_ms = t
            return self._view(pos, copy=True)

    # ------------------------------------------------------------------ orders
    def _new_id(self) -> str:
        n = self.state.next_id
        self.state.next_id += 1
        return str(600_000_000_000 + n)

    def _find_order(self, inst_id: str | None, ord_id: str | None, cl_ord_id: str | None) -> OrderRec:
        if ord_id:
            order = self.state.orders.get(ord_id)
            if order is not None and (inst_id is None or order.inst_id == inst_id):
                return order
        elif cl_ord_id:
            found = [o for o in self.state.orders.values()
                     if o.cl_ord_id == cl_ord_id and (inst_id is None or o.inst_id == inst_id)]
            if found:
                live = [o for o in found if o.is_live]
                return live[-1] if live else found[-1]
        else:
            raise Reject(Reason.BAD_PARAM, "ordId or clOrdId is required")
        raise Reject(Reason.ORDER_NOT_FOUND, "order does not exist")

    def get_order(self, inst_id: str | None, ord_id: str | None = None, cl_ord_id: str | None = None) -> OrderRec:
        with self._lock:
            self._sync()
            if inst_id is not None:
                self._inst(inst_id)
            return self._find_order(inst_id, ord_id, cl_ord_id).model_copy()

    def open_orders(self, inst_id: str | None = None) -> list[OrderRec]:
        with self._lock:
            self._sync()
            return [o.model_copy() for o in self._live.values() if inst_id is None or o.inst_id == inst_id]

    def orders(self, inst_id: str | None = None, live: bool | None = None) -> list[OrderRec]:
        with self._lock:
            self._sync()
            return [o.model_copy() for o in self.state.orders.values()
                    if (inst_id is None or o.inst_id == inst_id) and (live is None or o.is_live == live)]

    def fills(self, inst_id: str | None = None, since_ms: int | None = None) -> list[FillRec]:
        with self._lock:
            self._sync()
            return [f for f in self.state.fills if (inst_id is None or f.inst_id == inst_id)
                    and (since_ms is None or f.ts_ms >= since_ms)]

    def bills(self, account: str | None = None, kind: str | None = None) -> list[BillRec]:
        with self._lock:
            self._sync()
            return [b for b in self.state.bills if (account is None or b.account == account)
                    and (kind is None or b.kind == kind)]

    def _check_filters(self, inst: Instrument, qty: Decimal, price: Decimal | None, ref_price: Decimal) -> None:
        if qty <= 0:
            raise Reject(Reason.BAD_PARAM, "size must be positive")
        if price is not None:
            if price <= 0:
                raise Reject(Reason.BAD_PARAM, "price must be positive")
            if not is_multiple(price, inst.tick):
                raise Reject(Reason.TICK_SIZE, f"price {price} is not a multiple of the tick {inst.tick}")
        if not is_multiple(qty, inst.qty_step):
            raise Reject(Reason.LOT_SIZE, f"size is not a multiple of the lot {inst.lot}")
        if qty < inst.min_qty:
            raise Reject(Reason.MIN_SIZE, f"size under the minimum {inst.min_size}")
        if inst.min_notional > 0 and qty * (price if price is not None else ref_price) < inst.min_notional:
            raise Reject(Reason.MIN_NOTIONAL, f"notional under the minimum {inst.min_notional}")

    def _opening_qty(self, inst: Instrument, side: str, qty: Decimal) -> Decimal:
        pos = self.state.positions.get(inst.inst_id)
        current = pos.qty if pos is not None else ZERO
        signed = qty if side == "buy" else -qty
        if current == 0 or (current > 0) == (signed > 0):
            return qty
        return max(ZERO, qty - abs(current))

    def place_order(self, spec: OrderSpec) -> OrderRec:
        with self._lock:
            self._sync()
            return self._place(spec, algo_id="").model_copy()

    def _place(self, spec: OrderSpec, algo_id: str) -> OrderRec:
        inst = self._inst(spec.inst_id)
        t = self.state.now_ms
        if spec.side not in ("buy", "sell"):
            raise Reject(Reason.BAD_PARAM, "side must be buy or sell")
        if spec.ord_type not in ORDER_TYPES:
            raise Reject(Reason.BAD_PARAM, f"ordType {spec.ord_type} not supported")
        qty = D(spec.qty)
        price = D(spec.price) if spec.price is not None else None
        if spec.ord_type != "market" and price is None:
            raise Reject(Reason.BAD_PARAM, "px is required for a limit order")
        if spec.ord_type == "market":
            price = None
        book = self._book_at(inst, t)
        ref = book.best_ask if spec.side == "buy" else book.best_bid
        self._check_filters(inst, qty, price, ref)
        if spec.client_id and any(o.cl_ord_id == spec.client_id for o in self._live.values()):
            raise Reject(Reason.DUPLICATE_CLIENT_ID, f"clOrdId {spec.client_id} is already live")
        mode = spec.margin_mode
        lev: Decimal | None = None
        if not inst.is_swap:
            if spec.reduce_only:
                raise Reject(Reason.REDUCE_ONLY_SPOT, "reduce-only is not available for spot cash trading")
            mode = "cash"
        else:
            if mode not in ("cross", "isolated"):
                raise Reject(Reason.BAD_PARAM, "tdMode must be cross or isolated for a swap")
            pos = self.state.positions.get(inst.inst_id)
            if pos is not None and pos.qty != 0 and pos.margin_mode != mode:
                raise Reject(Reason.MARGIN_MODE_MISMATCH, f"the position is {pos.margin_mode}")
            if spec.reduce_only:
                current = pos.qty if pos is not None else ZERO
                if current == 0:
                    raise Reject(Reason.REDUCE_ONLY_NO_POSITION, "no position to reduce")
                if (current > 0) == (spec.side == "buy"):
                    raise Reject(Reason.REDUCE_ONLY_SAME_SIDE, "a reduce-only order cannot add to the position")
            lev = self.state.leverage.get(f"{inst.inst_id}:{mode}", DEFAULT_LEVERAGE)
        # What the order reserves (limit) or needs now (market): checked against the available balance.
        est_px = price if price is not None else _walk_cost_price(spec.side, qty, book)
        if inst.is_swap:
            assert lev is not None
            opening = ZERO if spec.reduce_only else self._opening_qty(inst, spec.side, qty)
            need = q(opening * est_px / lev + opening * est_px * inst.taker_fee)
            need_ccy = inst.margin_ccy
        elif spec.side == "buy":
            need, need_ccy = q(qty * est_px), inst.quote
        else:
            need, need_ccy = qty, inst.base
        if need > 0 and self._balance(inst.account, need_ccy).available < need:
            raise Reject(Reason.INSUFFICIENT_FUNDS, "insufficient balance or margin")
        order = OrderRec(ord_id=self._new_id(), cl_ord_id=spec.client_id, inst_id=inst.inst_id, side=spec.side,
                         ord_type=spec.ord_type, qty=qty, price=price, reduce_only=spec.reduce_only,
                         margin_mode=mode, leverage=lev, tag=spec.tag, created_ms=t, updated_ms=t,
                         frozen=need if price is not None else ZERO, frozen_ccy=need_ccy, algo_id=algo_id,
                         extra=dict(spec.extra))
        self.state.orders[order.ord_id] = order
        self._track(order)
        if spec.ord_type == "post_only" and price is not None and would_cross(spec.side, price, book):
            # OKX accepts the order and cancels it at once (cancelSource 31); Binance GTX expires it.
            self._cancel(order, "post_only", t)
            return order
        fills = match_taker(spec.side, qty, price, book)
        if spec.ord_type == "fok" and sum((f[1] for f in fills), ZERO) < qty:
            self._cancel(order, "fok", t)
            return order
        taken: list[tuple[Decimal, Decimal]] = []
        for px, fill_qty in fills:
            if not order.is_live:
                break
            before = order.filled
            self._apply_fill(order, px, fill_qty, "taker", t)
            taken.append((px, order.filled - before))
        self._consume(inst, t, spec.side, taken)
        if order.is_live and spec.ord_type in ("market", "ioc", "fok"):
            self._cancel(order, "ioc" if spec.ord_type == "ioc" else "market_depth", t)
        return order

    def _cancel(self, order: OrderRec, source: str, t: int) -> None:
        order.state = "canceled"
        order.cancel_source = source
        order.frozen = ZERO
        order.updated_ms = t
        self._track(order)

    def cancel_order(self, inst_id: str | None, ord_id: str | None = None, cl_ord_id: str | None = None) -> OrderRec:
        with self._lock:
            self._sync()
            if inst_id is not None:
                self._inst(inst_id)
            order = self._find_order(inst_id, ord_id, cl_ord_id)
            if order.state == "canceled":
                raise Reject(Reason.ORDER_ALREADY_CANCELED, "order already canceled")
            if order.state == "filled":
                raise Reject(Reason.ORDER_ALREADY_FILLED, "order already filled")
            self._cancel(order, "", self.state.now_ms)
            return order.model_copy()

    def amend_order(self, inst_id: str, ord_id: str | None = None, cl_ord_id: str | None = None,
                    new_qty: Decimal | None = None, new_price: Decimal | None = None) -> OrderRec:
        """Change the size (total, base units) and/or price of a live limit order. A post-only order that the
        new price would make cross is refused (the order stays as it was); a plain limit that now crosses
        takes liquidity at once, like a new order."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            order = self._find_order(inst_id, ord_id, cl_ord_id)
            if order.state == "canceled":
                raise Reject(Reason.ORDER_ALREADY_CANCELED, "order already canceled")
            if order.state == "filled":
                raise Reject(Reason.ORDER_ALREADY_FILLED, "order already filled")
            if new_qty is None and new_price is None:
                raise Reject(Reason.BAD_PARAM, "newSz or newPx is required")
            if order.price is None or order.ord_type not in ("limit", "post_only"):
                raise Reject(Reason.BAD_PARAM, "only limit and post-only orders can be amended")
            qty = D(new_qty) if new_qty is not None else order.qty
            price = D(new_price) if new_price is not None else order.price
            if qty <= order.filled:
                raise Reject(Reason.BAD_PARAM, "the new size must exceed the filled size")
            t = self.state.now_ms
            book = self._book_at(inst, t)
            self._check_filters(inst, qty, price, price)
            if order.ord_type == "post_only" and would_cross(order.side, price, book):
                raise Reject(Reason.POST_ONLY_WOULD_TAKE, "the new price would take liquidity")
            remaining = qty - order.filled
            if inst.is_swap:
                lev = order.leverage or DEFAULT_LEVERAGE
                opening = ZERO if order.reduce_only else self._opening_qty(inst, order.side, remaining)
                need = q(opening * price / lev + opening * price * inst.taker_fee)
            elif order.side == "buy":
                need = q(remaining * price)
            else:
                need = remaining
            if need > order.frozen and self._balance(inst.account, order.frozen_ccy).available < need - order.frozen:
                raise Reject(Reason.INSUFFICIENT_FUNDS, "insufficient balance or margin for the amendment")
            order.qty, order.price, order.frozen, order.updated_ms = qty, price, need, t
            self._track(order)
            taken: list[tuple[Decimal, Decimal]] = []
            for px, fill_qty in match_taker(order.side, order.remaining, price, book):
                if not order.is_live:
                    break
                before = order.filled
                self._apply_fill(order, px, fill_qty, "taker", t)
                taken.append((px, order.filled - before))
            self._consume(inst, t, order.side, taken)
            return order.model_copy()

    def _apply_fill(self, order: OrderRec, price: Decimal, qty: Decimal, liquidity: str, t: int) -> None:
        inst = self.instruments[order.inst_id]
        rate = inst.maker_fee if liquidity == "maker" else inst.taker_fee
        remaining_before = order.remaining
        pnl = ZERO
        if not inst.is_swap:
            if order.side == "buy":
                fee, fee_ccy = q(qty * rate), inst.base
                self._cash(inst.account, inst.quote, -q(qty * price))
                self._cash(inst.account, inst.base, qty - fee)
                self._bill(inst.account, inst.quote, "trade", t, inst_id=inst.inst_id, bal_chg=-q(qty * price),
                           ord_id=order.ord_id, qty=qty, price=price)
                bill = self._bill(inst.account, inst.base, "trade", t, inst_id=inst.inst_id, bal_chg=qty - fee,
                                  fee=fee, ord_id=order.ord_id, qty=qty, price=price)
            else:
                fee, fee_ccy = q(qty * price * rate), inst.quote
                self._cash(inst.account, inst.base, -qty)
                self._cash(inst.account, inst.quote, q(qty * price) - fee)
                self._bill(inst.account, inst.base, "trade", t, inst_id=inst.inst_id, bal_chg=-qty,
                           ord_id=order.ord_id, qty=qty, price=price)
                bill = self._bill(inst.account, inst.quote, "trade", t, inst_id=inst.inst_id,
                                  bal_chg=q(qty * price) - fee, fee=fee, ord_id=order.ord_id, qty=qty, price=price)
        else:
            pos = self.state.positions.get(inst.inst_id)
            if pos is None or pos.qty == 0:
                pos = PositionRec(pos_id=pos.pos_id if pos is not None else self._new_id(), inst_id=inst.inst_id,
                                  margin_mode=order.margin_mode, leverage=order.leverage or DEFAULT_LEVERAGE,
                                  created_ms=t, updated_ms=t, realized_pnl=pos.realized_pnl if pos else ZERO)
                self.state.positions[inst.inst_id] = pos
            if order.reduce_only:
                reducible = abs(pos.qty) if (pos.qty > 0) != (order.side == "buy") and pos.qty != 0 else ZERO
                qty = min(qty, reducible)
                if qty <= 0:
                    self._cancel(order, "reduce_only", t)
                    return
            fee, fee_ccy = q(qty * price * rate), inst.margin_ccy
            sign = D(1) if order.side == "buy" else D(-1)
            closing = min(qty, abs(pos.qty)) if pos.qty != 0 and (pos.qty > 0) != (sign > 0) else ZERO
            release = ZERO
            if closing > 0:
                pnl = q((price - pos.entry) * closing * (1 if pos.qty > 0 else -1))
                if pos.margin_mode == "isolated":
                    release = q(pos.margin * closing / abs(pos.qty))
                    pos.margin -= release
                pos.qty += sign * closing
                pos.realized_pnl += pnl
            opening = qty - closing
            im = ZERO
            if opening > 0:
                size = abs(pos.qty)
                pos.entry = (pos.entry * size + price * opening) / (size + opening)
                pos.qty += sign * opening
                if pos.margin_mode == "isolated":
                    im = q(mg.initial_margin(opening, price, pos.leverage))
                    pos.margin += im
            if pos.qty == 0:
                release += pos.margin  # rounding residue of a full close goes back too
                pos.margin = ZERO
                pos.entry = ZERO
            pos.updated_ms = t
            bal_chg = pnl - fee + release - im
            self._cash(inst.account, inst.margin_ccy, bal_chg)
            bill = self._bill(inst.account, inst.margin_ccy, "trade", t, inst_id=inst.inst_id, bal_chg=bal_chg,
                              pos_bal_chg=im - release, pnl=pnl, fee=fee, ord_id=order.ord_id,
                              qty=qty * sign, price=price)
        trade_id = self._new_id()
        order.avg_price = ((order.avg_price or ZERO) * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.fee += fee
        order.fee_ccy = fee_ccy
        order.fill_ms = t
        order.updated_ms = t
        order.last_fill_qty = qty
        order.last_fill_px = price
        order.last_trade_id = trade_id
        order.frozen = q(order.frozen * order.remaining / remaining_before) if remaining_before > 0 else ZERO
        order.state = "filled" if order.remaining <= 0 else "partially_filled"
        self._track(order)
        if order.reduce_only and inst.is_swap and order.is_live:
            pos = self.state.positions[inst.inst_id]
            if pos.qty == 0:
                self._cancel(order, "reduce_only", t)  # nothing left to reduce
        self.state.fills.append(FillRec(trade_id=trade_id, ord_id=order.ord_id, cl_ord_id=order.cl_ord_id,
                                        inst_id=order.inst_id, side=order.side, qty=qty, price=price, fee=fee,
                                        fee_ccy=fee_ccy, liquidity=liquidity, ts_ms=t, bill_id=bill.bill_id,
                                        pnl=pnl))

    # ------------------------------------------------------------------ liquidation
    def _check_liquidations(self, t: int) -> None:
        for pos in list(self.state.positions.values()):
            if pos.qty == 0 or pos.margin_mode != "isolated":
                continue
            inst = self.instruments[pos.inst_id]
            raw = mg.liquidation_price(pos.qty, pos.entry, pos.margin, inst.mmr, inst.taker_fee)
            # The trigger is the stated price (the formula rounded to the tick), the one positions show.
            liq = self._round_px(inst, raw) if raw is not None else None
            if mg.is_liquidated(pos.qty, self._mark_at(inst, t), liq):
                assert liq is not None
                self._liquidate(pos, liq, t)
        cross = [p for p in self.state.positions.values() if p.qty != 0 and p.margin_mode == "cross"]
        by_ccy: dict[tuple[str, str], list[PositionRec]] = {}
        for p in cross:
            inst = self.instruments[p.inst_id]
            by_ccy.setdefault((inst.account, inst.margin_ccy), []).append(p)
        for (account, ccy), group in by_ccy.items():
            cash = self.state.balances.get(account, {}).get(ccy, ZERO)
            upl = ZERO
            mm = ZERO
            for p in group:
                inst = self.instruments[p.inst_id]
                mark = self._mark_at(inst, t)
                upl += mg.unrealized_pnl(p.qty, p.entry, mark)
                mm += mg.maintenance_margin(p.qty, mark, inst.mmr, inst.taker_fee)
            if cash + upl <= mm:
                for p in group:
                    self._liquidate(p, self._mark_at(self.instruments[p.inst_id], t), t)

    def _liquidate(self, pos: PositionRec, price: Decimal, t: int) -> None:
        """Close the whole position at ``price``. Isolated: the posted margin is lost whole (what equity is
        left at the liquidation price is the liquidation fee); cross: the loss is booked and the cash never
        goes under zero (the insurance fund takes the rest)."""
        inst = self.instruments[pos.inst_id]
        for o in list(self._live.values()):
            if o.inst_id == pos.inst_id:
                self._cancel(o, "liquidation", t)
        for a in list(self._live_algos.values()):
            if a.inst_id == pos.inst_id:
                a.state, a.updated_ms, a.fail_reason = "canceled", t, "liquidation"
                self._track_algo(a)
        qty = pos.qty
        side = "sell" if qty > 0 else "buy"
        pnl = q((price - pos.entry) * qty)
        if pos.margin_mode == "isolated":
            fee = max(ZERO, pos.margin + pnl)
            bal_chg = ZERO  # isolated: the loss is capped at the posted margin, the cash is untouched
            pos_bal_chg = -pos.margin
        else:
            cash = self.state.balances.get(inst.account, {}).get(inst.margin_ccy, ZERO)
            fee = q(mg.maintenance_margin(qty, price, ZERO, inst.taker_fee))
            bal_chg = max(-cash, pnl - fee)
            pos_bal_chg = ZERO
        order = OrderRec(ord_id=self._new_id(), cl_ord_id="", inst_id=pos.inst_id, side=side, ord_type="market",
                         qty=abs(qty), price=None, filled=abs(qty), avg_price=price, fee=fee,
                         fee_ccy=inst.margin_ccy, state="filled", reduce_only=True, margin_mode=pos.margin_mode,
                         leverage=pos.leverage, category="full_liquidation", created_ms=t, updated_ms=t, fill_ms=t,
                         last_fill_qty=abs(qty), last_fill_px=price)
        self.state.orders[order.ord_id] = order
        self._cash(inst.account, inst.margin_ccy, bal_chg)
        bill = self._bill(inst.account, inst.margin_ccy, "liquidation", t, inst_id=pos.inst_id, bal_chg=bal_chg,
                          pos_bal_chg=pos_bal_chg, pnl=pnl, fee=fee, ord_id=order.ord_id, qty=-qty, price=price,
                          sub_kind="full_liquidation")
        trade_id = self._new_id()
        order.last_trade_id = trade_id
        self.state.fills.append(FillRec(trade_id=trade_id, ord_id=order.ord_id, cl_ord_id="", inst_id=pos.inst_id,
                                        side=side, qty=abs(qty), price=price, fee=fee, fee_ccy=inst.margin_ccy,
                                        liquidity="taker", ts_ms=t, bill_id=bill.bill_id, pnl=pnl))
        pos.realized_pnl += pnl
        pos.qty = ZERO
        pos.entry = ZERO
        pos.margin = ZERO
        pos.updated_ms = t

    # ------------------------------------------------------------------ algo (stop) orders
    def place_algo(self, spec: AlgoSpec) -> AlgoRec:
        with self._lock:
            self._sync()
            inst = self._inst(spec.inst_id)
            t = self.state.now_ms
            if spec.side not in ("buy", "sell"):
                raise Reject(Reason.BAD_PARAM, "side must be buy or sell")
            if spec.ord_type not in ALGO_TYPES:
                raise Reject(Reason.BAD_PARAM, f"ordType {spec.ord_type} not supported")
            if spec.trigger_px_type not in ("last", "mark", "index"):
                raise Reject(Reason.BAD_PARAM, "trigger price type must be last, mark or index")
            qty = D(spec.qty)
            self._check_filters(inst, qty, spec.order_px, self._last_at(inst, t))
            for px in (spec.trigger_px, spec.sl_trigger_px, spec.tp_trigger_px, spec.sl_ord_px, spec.tp_ord_px):
                if px is not None and (px <= 0 or not is_multiple(px, inst.tick)):
                    raise Reject(Reason.TICK_SIZE, f"price {px} is not a positive multiple of the tick")
            if spec.ord_type == "trigger" and spec.trigger_px is None:
                raise Reject(Reason.BAD_PARAM, "triggerPx is required")
            if spec.ord_type in ("conditional", "oco") and spec.sl_trigger_px is None and spec.tp_trigger_px is None:
                raise Reject(Reason.BAD_PARAM, "slTriggerPx or tpTriggerPx is required")
            if spec.client_id and any(a.algo_cl_ord_id == spec.client_id for a in self._live_algos.values()):
                raise Reject(Reason.DUPLICATE_CLIENT_ID, f"algoClOrdId {spec.client_id} is already live")
            if inst.is_swap and spec.margin_mode not in ("cross", "isolated"):
                raise Reject(Reason.BAD_PARAM, "tdMode must be cross or isolated for a swap")
            direction = ""
            if spec.trigger_px is not None:
                now_px = self._trigger_price(inst, spec.trigger_px_type, t)
                direction = "up" if spec.trigger_px >= now_px else "down"
            algo = AlgoRec(algo_id=self._new_id(), algo_cl_ord_id=spec.client_id, inst_id=inst.inst_id,
                           side=spec.side, ord_type=spec.ord_type, qty=qty, trigger_px=spec.trigger_px,
                           order_px=spec.order_px, sl_trigger_px=spec.sl_trigger_px, sl_ord_px=spec.sl_ord_px,
                           tp_trigger_px=spec.tp_trigger_px, tp_ord_px=spec.tp_ord_px,
                           trigger_px_type=spec.trigger_px_type, direction=direction,
                           reduce_only=spec.reduce_only, margin_mode=spec.margin_mode if inst.is_swap else "cash",
                           created_ms=t, updated_ms=t, tag=spec.tag, extra=dict(spec.extra))
            self.state.algos[algo.algo_id] = algo
            self._track_algo(algo)
            return algo.model_copy()

    def _find_algo(self, algo_id: str | None, algo_cl_ord_id: str | None) -> AlgoRec:
        if algo_id:
            algo = self.state.algos.get(algo_id)
            if algo is not None:
                return algo
        elif algo_cl_ord_id:
            found = [a for a in self.state.algos.values() if a.algo_cl_ord_id == algo_cl_ord_id]
            if found:
                live = [a for a in found if a.state == "live"]
                return live[-1] if live else found[-1]
        else:
            raise Reject(Reason.BAD_PARAM, "algoId or algoClOrdId is required")
        raise Reject(Reason.ORDER_NOT_FOUND, "algo order does not exist")

    def get_algo(self, algo_id: str | None = None, algo_cl_ord_id: str | None = None) -> AlgoRec:
        with self._lock:
            self._sync()
            return self._find_algo(algo_id, algo_cl_ord_id).model_copy()

    def algos(self, inst_id: str | None = None, live: bool | None = None) -> list[AlgoRec]:
        with self._lock:
            self._sync()
            return [a.model_copy() for a in self.state.algos.values()
                    if (inst_id is None or a.inst_id == inst_id) and (live is None or (a.state == "live") == live)]

    def cancel_algo(self, algo_id: str | None = None, algo_cl_ord_id: str | None = None) -> AlgoRec:
        with self._lock:
            self._sync()
            algo = self._find_algo(algo_id, algo_cl_ord_id)
            if algo.state != "live":
                raise Reject(Reason.ORDER_ALREADY_CANCELED if algo.state == "canceled"
                             else Reason.ORDER_ALREADY_FILLED, f"algo order is {algo.state}")
            algo.state = "canceled"
            algo.updated_ms = self.state.now_ms
            self._track_algo(algo)
            return algo.model_copy()

    def _check_algo(self, algo: AlgoRec, t: int) -> None:
        inst = self.instruments[algo.inst_id]
        px = self._trigger_price(inst, algo.trigger_px_type, t)
        order_px: Decimal | None = None
        fired = False
        if algo.ord_type == "trigger":
            assert algo.trigger_px is not None
            fired = px >= algo.trigger_px if algo.direction == "up" else px <= algo.trigger_px
            order_px = algo.order_px
        else:
            # A sell stop-loss protects a long: it fires at or below its trigger; a buy stop-loss at or above.
            # A take-profit fires the other way.
            if algo.sl_trigger_px is not None:
                hit = px <= algo.sl_trigger_px if algo.side == "sell" else px >= algo.sl_trigger_px
                if hit:
                    fired, order_px = True, algo.sl_ord_px
            if not fired and algo.tp_trigger_px is not None:
                hit = px >= algo.tp_trigger_px if algo.side == "sell" else px <= algo.tp_trigger_px
                if hit:
                    fired, order_px = True, algo.tp_ord_px
        if not fired:
            return
        algo.triggered_ms = t
        algo.updated_ms = t
        spec = OrderSpec(inst_id=algo.inst_id, side=algo.side, ord_type="market" if order_px is None else "limit",
                         qty=algo.qty, price=order_px, reduce_only=algo.reduce_only, margin_mode=algo.margin_mode,
                         tag=algo.tag)
        try:
            order = self._place(spec, algo_id=algo.algo_id)
        except Reject as exc:
            algo.state = "order_failed"
            algo.fail_reason = exc.reason.value
            self._track_algo(algo)
            return
        algo.state = "effective"
        algo.ord_id = order.ord_id
        self._track_algo(algo)

    # ------------------------------------------------------------------ transfers
    def transfer(self, ccy: str, amount: Decimal, from_account: str, to_account: str,
                 client_id: str = "") -> TransferRec:
        """Move cash between accounts; idempotent by ``client_id`` (a repeat returns the first transfer)."""
        with self._lock:
            self._sync()
            if client_id:
                for rec in self.state.transfers.values():
                    if rec.client_id == client_id:
                        return rec.model_copy()
            for acct in (from_account, to_account):
                if acct not in self.state.balances:
                    raise Reject(Reason.UNKNOWN_ACCOUNT, f"no account {acct}")
            if from_account == to_account:
                raise Reject(Reason.BAD_PARAM, "from and to are the same account")
            amt = D(amount)
            if amt <= 0:
                raise Reject(Reason.BAD_PARAM, "amount must be positive")
            if self._balance(from_account, ccy).available < amt:
                raise Reject(Reason.INSUFFICIENT_FUNDS, "insufficient balance")
            t = self.state.now_ms
            self._cash(from_account, ccy, -amt)
            self._cash(to_account, ccy, amt)
            rec = TransferRec(trans_id=self._new_id(), client_id=client_id, ccy=ccy, amount=amt,
                              from_account=from_account, to_account=to_account, ts_ms=t)
            self.state.transfers[rec.trans_id] = rec
            self._bill(from_account, ccy, "transfer", t, bal_chg=-amt, ord_id=rec.trans_id)
            self._bill(to_account, ccy, "transfer", t, bal_chg=amt, ord_id=rec.trans_id)
            return rec.model_copy()

    def get_transfer(self, trans_id: str | None = None, client_id: str | None = None) -> TransferRec:
        with self._lock:
            for rec in self.state.transfers.values():
                if (trans_id and rec.trans_id == trans_id) or (client_id and rec.client_id == client_id):
                    return rec.model_copy()
            raise Reject(Reason.ORDER_NOT_FOUND, "transfer does not exist")

    # ------------------------------------------------------------------ admin
    def set_price(self, inst_id: str, price: Decimal) -> Decimal:
        """Admin: from now on the base's path is scaled so this instrument's fair price is ``price``."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            t = self.state.now_ms
            current = self._fair_at(inst, t) / self.state.price_factor.get(inst.base, D(1))
            self.state.price_factor[inst.base] = D(price) / current
            self._fair_cache_t = -1
            self._on_step(t)  # stops and liquidations see the new price at once
            return self._mark_at(inst, t)

    def set_funding_rate(self, inst_id: str, rate: Decimal | None) -> None:
        """Admin: force the rate of the coming settlements (None returns to the formula)."""
        with self._lock:
            self._sync()
            inst = self._inst(inst_id)
            if not inst.is_swap:
                raise Reject(Reason.BAD_PARAM, f"{inst_id} has no funding")
            if rate is None:
                self.state.funding_override.pop(inst_id, None)
            else:
                self.state.funding_override[inst_id] = D(rate)


def _walk_cost_price(side: str, qty: Decimal, book: Book) -> Decimal:
    """The average price a market order of ``qty`` would pay walking the modelled depth."""
    fills = match_taker(side, qty, None, book)
    filled = sum((f[1] for f in fills), ZERO)
    if filled == 0:
        return book.best_ask if side == "buy" else book.best_bid
    return sum((p * f for p, f in fills), ZERO) / filled


def _scenario(name: str) -> Scenario:
    if name not in ("calm", "trend", "crash", "squeeze"):
        raise ValueError(f"unknown scenario {name!r}")
    return name  # type: ignore[return-value]
