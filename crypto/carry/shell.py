"""The carry engine's imperative shell: reads the venue, calls the pure decisions, sends orders, journals,
audits, notifies. One ``step()`` runs the tasks due at the clock's time (funding bookkeeping at each
settlement the venue reports, risk and PnL every hour, the scan every 5 minutes).

Write-ahead: a pair's state and book, and every order intent, are in the journal (``core.journal``) before
the action that depends on them; ``CarryEngine`` replays it at start, so a restart resumes where it stopped.
Every transition of a pair's machine is audited (``CARRY_STATE_CHANGE``), every order as the gate expects it
(``ORDER_SUBMITTED`` / ``ORDER_FILLED`` / ``ORDER_REJECTED``), every hour an ``EQUITY_SNAPSHOT`` with the
short's liquidation distance.

Truth comes from the venue: the short's size, margin and liquidation price are re-read before each decision,
funding is booked from the venue's own bills (one per bill id), the spot leg's size is what the account
received. The book adds what the venue does not keep: entry prices, fees, funding booked, top-up ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Protocol

from core.audit import AuditWriter
from core.events import AuditCode, AuditEvent, Severity
from core.journal import Journal
from core.risk.state import RiskState
from crypto.carry import decisions as dec
from crypto.carry import guards as g
from crypto.carry.config import CarryConfig, InstrumentConfig
from crypto.carry.machine import (
    HOLDING_STATES,
    CarryState,
    CarryTrigger,
    apply_trigger,
    ms_to_dt,
    transition_event,
)
from crypto.carry.notify import Notifier
from crypto.carry.status_file import CARRY_STATUS_FILE, CarryStatusPublisher
from crypto.venue.protocol import Venue
from crypto.venue.types import OrderRequest, VenueError, VenueOrder

ZERO = Decimal(0)
API_ERRORS = {"RATE_LIMIT", "UNKNOWN_OUTCOME", "NETWORK", "VENUE_ERROR", "AUTH"}


class Clock(Protocol):
    def now_ms(self) -> int: ...


@dataclass
class Pair:
    inst: InstrumentConfig
    state: CarryState = CarryState.IDLE
    book: dec.PairBook | None = None
    schedule: g.Schedule = g.Schedule()
    last_refusal: str = ""
    dust: Decimal = ZERO  # spot left below the venue minimum after a close: DUST_LOCKED
    worst_liq: Decimal | None = None  # the lowest liquidation distance seen by the scans since the snapshot
    stop_cid: str = ""  # the venue-side disaster stop on the short (client id), "" when none
    open_pnl: Decimal = ZERO  # the open pair marked to market at the last risk check
    last_health: Decimal = Decimal(1)  # margin health at the pair's own last mark (1 when flat)
    recent_marks: tuple[tuple[int, Decimal], ...] = ()  # (ts, mark) of the last scans: the spike filter
    last_mark: Decimal | None = None  # the perp mark of the last market view (the status file's margin health)

    def __post_init__(self) -> None:
        if self.book is None:
            self.book = dec.PairBook(symbol=self.inst.symbol)

    @property
    def b(self) -> dec.PairBook:
        assert self.book is not None
        return self.book


def book_to_json(book: dec.PairBook) -> dict[str, Any]:
    out = asdict(book)
    return {k: (str(v) if isinstance(v, Decimal) else list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


def book_from_json(data: dict[str, Any]) -> dec.PairBook:
    kwargs: dict[str, Any] = {}
    for f in fields(dec.PairBook):
        if f.name not in data:
            continue
        v = data[f.name]
        if f.name == "topup_ids":
            kwargs[f.name] = tuple(v)
        elif f.name in ("symbol",):
            kwargs[f.name] = v
        elif f.name in ("opened_ms", "negative_streak", "last_funding_ms"):
            kwargs[f.name] = int(v)
        else:
            kwargs[f.name] = Decimal(str(v))
    return dec.PairBook(**kwargs)


def read_journal(state_dir: Path) -> dict[str, Any]:
    """What the journal says, read-only (``status``, ``bootstrap``): pairs, breaker, last exit."""
    from core.journal import read_records

    pairs: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    seen_start, clean = False, True
    for rec, _size in read_records(Path(state_dir) / "carry.journal"):
        k = rec.get("k")
        if k == "pair":
            pairs[rec["symbol"]] = {"state": rec["state"], "book": rec["book"], "dust": rec.get("dust", "0")}
        elif k == "engine":
            engine = {"risk_state": rec.get("risk_state"), "breaker": rec.get("breaker")}
        elif k == "start":
            seen_start, clean = True, False
        elif k == "exit":
            clean = bool(rec.get("clean"))
    return {"pairs": pairs, **engine, "last_exit_clean": clean or not seen_start}


class EngineFault(RuntimeError):
    """An unhandled condition: the engine closes everything and stops."""


class CarryEngine:
    def __init__(self, venue: Venue, cfg: CarryConfig, state_dir: Path | str, notifier: Notifier | None = None,
                 clock: Clock | None = None, wait: Callable[[int], None] | None = None, fsync: bool = True) -> None:
        self.venue = venue
        self.cfg = cfg
        self.clock: Clock = clock if clock is not None else venue
        # ``wait(ms)`` lets time pass while an order is awaited: time.sleep live, the fake's clock in dry runs.
        self.wait = wait if wait is not None else (lambda ms: None)
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.dir / "carry.journal", fsync=fsync)
        self.audit = AuditWriter(self.dir / "audit.jsonl", fsync=fsync)
        self.notifier = notifier
        if cfg.strategy.grid.enabled:
            # In net mode a grid on the same perp would net against the carry short: it needs its own account.
            raise EngineFault("GRID_LAYER_BACKTEST_ONLY: the grid layer runs in backtests only")
        self.pairs: dict[str, Pair] = {p.symbol: Pair(p) for p in cfg.instruments.pairs}
        self.breaker = g.Breaker()
        self.risk_state = RiskState.NORMAL
        self.health = g.ExchangeHealth()
        self.emergency = False
        self.realized_total = ZERO  # net PnL of every closed pair, for the equity snapshots
        self.last_exit_clean = True
        self.started = False
        self.seq = 0
        self._step_rates: dict[str, Any] = {}
        self._reads: dict[tuple[str, str], Any] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}  # order intents of a pair caught in OPENING
        self._restore()
        # The dashboard's carry page reads this file (crypto.carry.status_file); throttled, never raises.
        self.status_file = CarryStatusPublisher(self.dir / CARRY_STATUS_FILE, self.dir / "audit.jsonl")

    def funding_rate_seen(self, symbol: str) -> Decimal | None:
        """The funding rate this step read for ``symbol`` (None before the first read): the status file's figure."""
        f = self._step_rates.get(symbol)
        return None if f is None else f.rate

    # -- journal ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        seen_start = False
        clean = True
        for rec in self.journal.replay():
            k = rec.get("k")
            if k == "pair" and rec.get("symbol") in self.pairs:
                p = self.pairs[rec["symbol"]]
                p.state = CarryState(rec["state"])
                p.book = book_from_json(rec["book"])
                p.dust = Decimal(rec.get("dust", "0"))
                p.stop_cid = str(rec.get("stop_cid", ""))
                if p.state != CarryState.OPENING:
                    self._pending[rec["symbol"]] = []
            elif k == "intent" and rec.get("pair") in self.pairs:
                self._pending.setdefault(rec["pair"], []).append(rec)
            elif k == "engine":
                b = rec["breaker"]
                self.breaker = g.Breaker(int(b["consecutive_losses"]), int(b["day"]), Decimal(b["day_loss"]),
                                         bool(b["tripped"]), str(b["reason"]))
                self.risk_state = RiskState(rec.get("risk_state", "NORMAL"))
                self.seq = int(rec.get("seq", 0))
                self.realized_total = Decimal(str(rec.get("realized_total", "0")))
            elif k == "start":
                seen_start, clean = True, False
            elif k == "exit":
                clean = bool(rec.get("clean"))
        self.last_exit_clean = clean or not seen_start

    def _save_pair(self, p: Pair) -> None:
        self.journal.append({"k": "pair", "symbol": p.inst.symbol, "state": p.state.value,
                             "book": book_to_json(p.b), "dust": str(p.dust), "stop_cid": p.stop_cid})

    def _save_engine(self) -> None:
        b = self.breaker
        self.journal.append({"k": "engine", "risk_state": self.risk_state.value, "seq": self.seq,
                             "realized_total": str(self.realized_total),
                             "breaker": {"consecutive_losses": b.consecutive_losses, "day": b.day,
                                         "day_loss": str(b.day_loss), "tripped": b.tripped, "reason": b.reason}})

    def start(self) -> None:
        self.journal.append({"k": "start", "ts": self.clock.now_ms()})
        self.started = True

    def shutdown(self) -> None:
        """A clean exit: ``bootstrap`` finds it and lets the next run start."""
        self.status_file.publish(self, force=True, running=False)
        self.journal.append({"k": "exit", "clean": True, "ts": self.clock.now_ms()})
        self.journal.close()
        self.audit.close()

    # -- audit and notifications --------------------------------------------------------------------
    def _emit(self, code: AuditCode, cause: str, data: dict[str, Any], symbol: str | None = None,
              severity: Severity = Severity.INFO) -> AuditEvent:
        ev = AuditEvent(ts=ms_to_dt(self.clock.now_ms()), code=code, severity=severity, cause=cause, symbol=symbol,
                        data=data)
        self.audit.append(ev)
        if self.notifier is not None and severity in (Severity.WARN, Severity.ERROR, Severity.CRITICAL):
            self.notifier.notify(ev)
        return ev

    def _move(self, p: Pair, trigger: CarryTrigger, cause: str, data: dict[str, Any] | None = None) -> None:
        before = p.state
        p.state = apply_trigger(before, trigger)  # refuses an illegal move before anything is recorded
        self._save_pair(p)
        ev = transition_event(self.clock.now_ms(), p.inst.symbol, before, p.state, trigger, cause, data)
        self.audit.append(ev)
        if self.notifier is not None and (p.state in (CarryState.STOPPING, CarryState.STOPPED)
                                          or trigger in (CarryTrigger.LEGS_FILLED, CarryTrigger.CLOSED)):
            self.notifier.notify(ev)

    # -- venue calls with the exchange guard --------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            out = fn(*args, **kwargs)
        except VenueError as exc:
            api = exc.reason.value in API_ERRORS
            self.health = g.record_call(self.health, api, self.cfg.risk)
            if exc.reason.value == "NETWORK":
                self.health = replace(self.health, disconnected=True)
            self._guard()
            raise
        self.health = replace(g.record_call(self.health, False, self.cfg.risk), disconnected=False)
        self._guard()
        return out

    def _read(self, what: str, arg: str) -> Any:
        """A venue read cached until the next write or step: a scan asks the balance several times, the
        venue's rate limits count every request."""
        key = (what, arg)
        if key not in self._reads:
            if what == "positions":
                self._reads[key] = self._call(self.venue.positions, [arg])
            else:
                self._reads[key] = self._call(self.venue.balances, arg)
        return self._reads[key]

    def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._reads.clear()
        try:
            return self._call(fn, *args)
        finally:
            self._reads.clear()

    def _guard(self) -> None:
        before = self.risk_state
        trig = g.exchange_trigger(self.health, before, self.cfg.risk)
        if trig is None:
            return
        self.risk_state = g.apply_exchange(self.health, before, self.cfg.risk)
        self._save_engine()
        self._emit(AuditCode.RISK_STATE_CHANGE, f"exchange guard: {trig.value}",
                   {"from": before.value, "to": self.risk_state.value, "trigger": trig.value,
                    "error_rate": str(g.error_rate(self.health)), "disconnected": self.health.disconnected},
                   severity=Severity.WARN)

    def _cid(self, tag: str) -> str:
        """A client order id journaled before its first send (the same id on every retry)."""
        self.seq += 1
        cid = f"cc{tag}{self.clock.now_ms()}{self.seq}"[:32]
        self._save_engine()
        return cid

    def _order(self, symbol: str, side: str, qty: Decimal, *, reduce_only: bool = False, swap: bool = False,
               opens: bool = False, pair: str = "") -> VenueOrder:
        """One market order, journaled and audited; waits (bounded) until the venue reports it done."""
        cid = self._cid("s" if not swap else "p")
        self.journal.append({"k": "intent", "cid": cid, "symbol": symbol, "side": side, "qty": str(qty),
                             "pair": pair})
        req = OrderRequest(symbol=symbol, side="buy" if side == "buy" else "sell", qty=qty, type="market",
                           client_order_id=cid, reduce_only=reduce_only,
                           margin_mode="isolated" if swap else None)
        data = {"client_order_id": cid, "side": side, "qty": str(qty), "opens": opens,
                "leverage": str(self.cfg.strategy.leverage) if swap else "1", "max_leverage": "3",
                "risk_state": self.risk_state.value}
        self._emit(AuditCode.ORDER_SUBMITTED, "carry leg", data, symbol)
        try:
            order = self._write(self.venue.place_order, req)
        except VenueError as exc:
            code = AuditCode.ORDER_ERROR if exc.reason.value == "UNKNOWN_OUTCOME" else AuditCode.ORDER_REJECTED
            self._emit(code, str(exc), {**data, "reason": exc.reason.value}, symbol, Severity.WARN)
            if exc.reason.value == "UNKNOWN_OUTCOME":
                found = self._call(self.venue.fetch_order, symbol, cid)
                if found is not None:
                    return self._await(found, data)
            raise
        return self._await(order, data)

    def _await(self, order: VenueOrder, data: dict[str, Any]) -> VenueOrder:
        deadline = self.clock.now_ms() + self.cfg.strategy.leg_unwind_ms
        while order.is_live and self.clock.now_ms() < deadline:
            self.wait(100)
            found = self._call(self.venue.fetch_order, order.symbol, order.client_order_id)
            order = found if found is not None else order
        if order.is_live:
            self._call(self.venue.cancel_order, order.symbol, order.client_order_id)
            order = self._call(self.venue.fetch_order, order.symbol, order.client_order_id) or order
        self._reads.clear()
        if order.filled > 0:
            self._emit(AuditCode.ORDER_FILLED, "carry leg", {**data, "filled": str(order.filled),
                                                             "price": str(order.avg_price)}, order.symbol)
        return order

    # -- market view --------------------------------------------------------------------------------
    def _view(self, p: Pair) -> tuple[dec.MarketView, int | None]:
        t = self._call(self.venue.ticker, p.inst.spot_symbol)
        mark = self._call(self.venue.mark_price, p.inst.symbol)
        p.last_mark = mark
        f = self._step_rates.get(p.inst.symbol) or self._call(self.venue.funding_rate, p.inst.symbol)
        return dec.MarketView(spot=t.ask, mark=mark, rate=f.rate, interval_ms=f.interval_ms or 8 * 3_600_000), \
            f.funding_time_ms

    def _short_position(self, p: Pair) -> Any:
        for pos in self._read("positions", p.inst.symbol):
            if pos.symbol == p.inst.symbol and pos.qty != 0:
                return pos
        return None

    def _note_liq(self, p: Pair, pos: Any) -> Decimal | None:
        """The short's liquidation distance now; the worst one is kept for the next hourly snapshot."""
        if pos.liq_price is None or pos.mark_price <= 0:
            return None
        d: Decimal = (pos.liq_price - pos.mark_price) / pos.mark_price
        p.worst_liq = d if p.worst_liq is None else min(p.worst_liq, d)
        return d

    def _refresh(self, p: Pair) -> Any:
        """The short as the venue holds it: size and margin (funding included) replace the book's."""
        pos = self._short_position(p)
        if pos is None:
            return None
        p.book = replace(p.b, short_qty=-pos.qty if pos.qty < 0 else ZERO, margin=pos.margin)
        return pos

    # -- the loop -----------------------------------------------------------------------------------
    def step(self) -> list[str]:
        """Run what is due now for every pair; an unhandled error closes everything (STOPPING -> STOPPED)."""
        if not self.started:
            self.start()
        done: list[str] = []
        now = self.clock.now_ms()
        self._step_rates = {}
        self._reads.clear()
        for p in self.pairs.values():
            if p.state == CarryState.STOPPED:
                continue
            if p.state == CarryState.STOPPING:  # a close_all that could not finish: try again
                self._finish_stop(p, "close_all retry")
                continue
            try:
                if p.state in (CarryState.OPENING, CarryState.REBALANCING, CarryState.CLOSING):
                    self._resume(p)  # only after a crash: each action finishes inside one step
                last_settlement = self._last_settlement(p)
                for task in g.due_tasks(p.schedule, now, last_settlement, self.cfg.strategy.scan_ms,
                                        self.cfg.strategy.risk_ms):
                    getattr(self, f"_task_{task}")(p)
                    p.schedule = g.mark_done(p.schedule, task, now, last_settlement)
                    done.append(f"{p.inst.symbol}:{task}")
            except VenueError as exc:
                if exc.reason.retryable and p.state in (CarryState.IDLE, CarryState.HEDGING):
                    # A read that failed for now (rate limit, lost answer, connection): this pair waits for
                    # the next step; the exchange guard counts it and turns REDUCE_ONLY if it persists.
                    if exc.reason.value == "RATE_LIMIT":
                        self._emit(AuditCode.EXEC_RATE_LIMITED, str(exc), {"reason": exc.reason.value},
                                   p.inst.symbol, Severity.WARN)
                    continue
                self._emit(AuditCode.CONTROL_ACCEPTED, f"fault: {exc}", {"fault": str(exc)}, p.inst.symbol,
                           Severity.ERROR)
                self.close_all(f"fault: {exc}", trigger=CarryTrigger.FAULT)
                break
            except EngineFault as exc:
                self._emit(AuditCode.CONTROL_ACCEPTED, f"fault: {exc}", {"fault": str(exc)}, p.inst.symbol,
                           Severity.ERROR)
                self.close_all(f"fault: {exc}", trigger=CarryTrigger.FAULT)
                break
        self.status_file.publish(self)
        return done

    def _resume(self, p: Pair) -> None:
        """Finish what a crashed run left half done, from the journal and the venue."""
        if p.state == CarryState.OPENING:
            # Take back every leg the journaled intents filled (looked up by client id): the pair starts over.
            for intent in self._pending.pop(p.inst.symbol, []):
                found = self._call(self.venue.fetch_order, intent["symbol"], intent["cid"])
                if found is None or found.filled <= 0:
                    continue
                if intent["symbol"] == p.inst.symbol:
                    if self._short_position(p) is not None:
                        self._order(p.inst.symbol, "buy", found.filled, reduce_only=True, swap=True)
                else:
                    market = self._call(self.venue.market, p.inst.spot_symbol)
                    held = min(found.filled, self._base_balance(p.inst.spot_symbol.split("/")[0]))
                    sell = (held / market.qty_step).to_integral_value(rounding=ROUND_DOWN) * market.qty_step
                    if sell >= market.min_qty:
                        self._order(p.inst.spot_symbol, "sell", sell)
            self._emit(AuditCode.CARRY_LEG_UNWOUND, "restart in OPENING: legs taken back", {}, p.inst.symbol,
                       Severity.WARN)
            self._move(p, CarryTrigger.LEG_UNWOUND, "restart in OPENING")
        elif p.state == CarryState.REBALANCING:
            self._refresh(p)
            self._move(p, CarryTrigger.REBALANCED, "restart in REBALANCING: the venue's sizes taken")
        elif p.state == CarryState.CLOSING:
            self._close_legs(p, "restart in CLOSING")

    def _last_settlement(self, p: Pair) -> int | None:
        """The latest settlement time that has passed, from the venue's funding schedule (its interval)."""
        f = self._call(self.venue.funding_rate, p.inst.symbol)
        self._step_rates[p.inst.symbol] = f  # one read per step: the venue's rate does not move within it
        interval = f.interval_ms or 8 * 3_600_000
        # ``funding_time_ms`` is the coming settlement; the one before it has passed.
        return f.funding_time_ms - interval if f.funding_time_ms - interval > 0 else None

    def _task_funding(self, p: Pair) -> None:
        """Book every funding bill of the pair's short not booked yet, by bill id, exactly as billed."""
        if p.b.is_flat:
            return
        for bill in self._call(self.venue.funding_payments, p.inst.symbol, p.b.opened_ms):
            if bill.ts_ms <= p.b.last_funding_ms:
                continue
            p.book = dec.book_funding(p.b, bill.amount, bill.rate, bill.ts_ms)
            self._refresh(p)
            self._save_pair(p)
            self._emit(AuditCode.CARRY_FUNDING_SETTLED, "settlement",
                       {"amount": str(bill.amount), "rate": str(bill.rate), "bill_id": bill.bill_id,
                        "funding_total": str(p.b.funding)}, p.inst.symbol)
            self._emit(AuditCode.SIGNAL_ACCEPTED, "funding settlement booked", {"rate": str(bill.rate)},
                       p.inst.symbol)

    def _task_risk(self, p: Pair) -> None:
        day = self.clock.now_ms() // g.DAY_MS
        if self.breaker.day != day and not self.breaker.tripped:
            self.breaker = replace(self.breaker, day=day, day_loss=ZERO)
        view, _ = self._view(p)
        liq_distance = None
        pos = self._refresh(p)
        if pos is not None:
            liq_distance = self._note_liq(p, pos)
        if p.worst_liq is not None:
            liq_distance = p.worst_liq if liq_distance is None else min(liq_distance, p.worst_liq)
        p.worst_liq = None
        b = p.b
        p.open_pnl = ZERO if b.is_flat else (b.spot_qty * (view.spot - b.spot_entry)
                                             + b.short_qty * (b.perp_entry - view.mark) + b.funding + b.realized
                                             - b.fees)
        # The strategy's equity: its capital + closed pairs' net PnL + open pairs marked to market. Venue
        # balances are not summed: whether a "total" includes isolated margin differs by venue and path.
        equity = (self.cfg.strategy.capital_usdt * len(self.pairs) + self.realized_total
                  + sum((q.open_pnl for q in self.pairs.values()), ZERO))
        self._emit(AuditCode.EQUITY_SNAPSHOT, "hourly risk",
                   {"equity": str(equity), "liq_distance_p95": None if liq_distance is None else str(liq_distance),
                    "state": p.state.value, "margin_health": str(dec.margin_health(p.b, view.mark)),
                    "funding_total": str(p.b.funding), "breaker": self.breaker.tripped}, p.inst.symbol)

    def _task_scan(self, p: Pair) -> None:
        view, _ = self._view(p)
        now = self.clock.now_ms()
        keep = max(self.cfg.risk.spike_window_ms, self.cfg.strategy.scan_ms)
        p.recent_marks = tuple((t, m) for t, m in p.recent_marks if now - t <= keep) + ((now, view.mark),)
        p.last_health = dec.margin_health(p.b, view.mark)
        if p.state == CarryState.IDLE and p.b.is_flat:
            self._scan_idle(p, view)
        elif p.state == CarryState.HEDGING:
            self._scan_holding(p, view)

    # -- open ---------------------------------------------------------------------------------------
    def _scan_idle(self, p: Pair, view: dec.MarketView) -> None:
        usdt = self._read("balances", "trading").get("USDT")
        health = min([o.last_health for o in self.pairs.values() if o is not p and not o.b.is_flat]
                     or [Decimal(1)])
        spike = g.is_spike([m for _, m in p.recent_marks], self.cfg.risk)
        ctx = dec.OpenContext(has_position=self._short_position(p) is not None, emergency=self.emergency,
                              reduce_only=self.risk_state not in (RiskState.NORMAL, RiskState.DEGRADED),
                              breaker_tripped=self.breaker.tripped, account_health=health, spike=spike,
                              free_usdt=usdt.free if usdt is not None else ZERO)
        reason = dec.check_open(view, ctx, p.inst, self.cfg.strategy, self.cfg.risk)
        if reason is None:
            book = self._call(self.venue.order_book, p.inst.spot_symbol)
            qty = dec.size_pair(view, p.inst, self.cfg.strategy, ctx.free_usdt)
            reason = g.check_liquidity(book.asks, qty, self.cfg.risk.max_book_slippage)
            if reason is None:
                pbook = self._call(self.venue.order_book, p.inst.symbol)
                reason = g.check_liquidity(pbook.bids, qty, self.cfg.risk.max_book_slippage)
        if reason is not None:
            if reason != p.last_refusal:
                self._emit(AuditCode.CARRY_OPEN_REFUSED, "open check", {"reason": reason, "rate": str(view.rate)},
                           p.inst.symbol)
            p.last_refusal = reason
            return
        p.last_refusal = ""
        self._emit(AuditCode.SIGNAL_ACCEPTED, "carry open", {"rate": str(view.rate)}, p.inst.symbol)
        self.open_pair(p, view, ctx.free_usdt)

    def open_pair(self, p: Pair, view: dec.MarketView, free_usdt: Decimal | None = None) -> bool:
        """Both legs as one intent: the short first (leverage and margin refusals cost nothing there), then
        the spot; a failed second leg unwinds the first within ``leg_unwind_ms``."""
        strat, inst = self.cfg.strategy, p.inst
        qty = dec.size_pair(view, inst, strat, free_usdt)
        self._move(p, CarryTrigger.OPEN_SIGNAL, f"rate {view.rate} in window, net of fees", {"qty": str(qty)})
        try:
            self._write(self.venue.set_leverage, inst.symbol, strat.leverage, "isolated")
            perp = self._order(inst.symbol, "sell", qty, swap=True, opens=True, pair=inst.symbol)
        except VenueError as exc:
            self._move(p, CarryTrigger.LEG_UNWOUND, f"first leg refused: {exc}")
            return False
        if perp.filled <= 0:
            self._move(p, CarryTrigger.LEG_UNWOUND, "first leg not filled")
            return False
        t_first = self.clock.now_ms()
        base = inst.spot_symbol.split("/")[0]
        before = self._base_balance(base)
        spot: VenueOrder | None = None
        try:
            spot = self._order(inst.spot_symbol, "buy", perp.filled, opens=True, pair=inst.symbol)
        except VenueError as exc:
            failure = str(exc)
        else:
            failure = "" if spot.filled > 0 else "second leg not filled"
        if failure:
            self._unwind(p, perp.filled, t_first, failure)
            return False
        assert spot is not None
        received = self._base_balance(base) - before
        spot_qty = received if received > 0 else spot.filled
        fees = perp.fee + spot.fee
        pos = self._short_position(p)
        book = dec.book_open(inst.symbol, perp.filled, spot.avg_price or view.spot, perp.avg_price or view.mark,
                             fees, strat.leverage, self.clock.now_ms())
        margin = pos.margin if pos is not None else book.margin
        capital = spot_qty * (spot.avg_price or view.spot) + margin
        p.book = replace(book, spot_qty=spot_qty, margin=margin, margin_at_open=margin, capital_committed=capital,
                         last_funding_ms=self.clock.now_ms())
        self._move(p, CarryTrigger.LEGS_FILLED, "both legs filled",
                   {"spot_qty": str(spot_qty), "short_qty": str(perp.filled),
                    "gap": str(dec.leg_gap(spot_qty, perp.filled))})
        self._place_stop(p)
        return True

    def _place_stop(self, p: Pair) -> None:
        """The disaster stop: a reduce-only stop-market on the short at the mark where health would reach
        ``disaster_stop_health`` (below the engine's own 50 % close, so it fires only when the engine could
        not act). No stop, no position: a refused stop closes the pair."""
        self._cancel_stop(p)
        price = dec.disaster_stop_price(p.b, self.cfg.risk.disaster_stop_health, p.inst.tick)
        if price is None:
            return
        cid = self._cid("x")
        self.journal.append({"k": "intent", "cid": cid, "symbol": p.inst.symbol, "side": "buy", "qty": str(p.b.short_qty),
                             "stop": str(price), "pair": ""})
        req = OrderRequest(symbol=p.inst.symbol, side="buy", qty=p.b.short_qty, type="stop_market",
                           client_order_id=cid, trigger_price=price, reduce_only=True, margin_mode="isolated")
        try:
            self._write(self.venue.place_order, req)
        except VenueError as exc:
            self._emit(AuditCode.EXEC_PROTECTIVE_ORDER_MISSING, f"disaster stop refused: {exc}",
                       {"trigger_price": str(price), "reason": exc.reason.value}, p.inst.symbol, Severity.ERROR)
            raise EngineFault(f"no disaster stop on {p.inst.symbol}: {exc}") from exc
        p.stop_cid = cid
        self._save_pair(p)
        self._emit(AuditCode.EXEC_PROTECTIVE_ATTACHED, "disaster stop", {"client_order_id": cid,
                                                                         "trigger_price": str(price)}, p.inst.symbol)

    def _cancel_stop(self, p: Pair) -> None:
        if not p.stop_cid:
            return
        try:
            self._write(self.venue.cancel_order, p.inst.symbol, p.stop_cid)
        except VenueError:
            pass  # already fired or gone: the position read tells
        p.stop_cid = ""
        self._save_pair(p)

    def _base_balance(self, base: str) -> Decimal:
        bal = self._read("balances", "trading").get(base)
        return bal.total if bal is not None else ZERO

    def _unwind(self, p: Pair, qty: Decimal, t_first: int, failure: str) -> None:
        """Take the lone short back, retrying until ``leg_unwind_ms`` after the first fill; past it the
        naked exposure is a fault (close everything, stop)."""
        bound = self.cfg.strategy.leg_unwind_ms
        while True:
            try:
                self._order(p.inst.symbol, "buy", qty, reduce_only=True, swap=True)
                break
            except VenueError as exc:
                if self.clock.now_ms() - t_first > bound:
                    self._emit(AuditCode.CARRY_NAKED_EXPOSURE, "lone first leg outlived the bound",
                               {"qty": str(qty), "naked_ms": self.clock.now_ms() - t_first, "bound_ms": bound},
                               p.inst.symbol, Severity.CRITICAL)
                    raise EngineFault(f"naked leg not unwound: {exc}") from exc
                self.wait(200)
        naked_ms = self.clock.now_ms() - t_first
        self._emit(AuditCode.CARRY_LEG_UNWOUND, failure, {"qty": str(qty), "naked_ms": naked_ms, "bound_ms": bound,
                                                          "within_bound": naked_ms <= bound},
                   p.inst.symbol, Severity.WARN)
        self._move(p, CarryTrigger.LEG_UNWOUND, failure, {"naked_ms": naked_ms})

    # -- holding ------------------------------------------------------------------------------------
    def _scan_holding(self, p: Pair, view: dec.MarketView) -> None:
        pos = self._refresh(p)
        if pos is not None:
            self._note_liq(p, pos)
        if pos is None:
            # The short is gone: the disaster stop fired, the venue liquidated it, or someone closed it. A fault.
            fired = self._call(self.venue.fetch_order, p.inst.symbol, p.stop_cid) if p.stop_cid else None
            if fired is not None and fired.filled > 0:
                self._emit(AuditCode.CARRY_CLOSE, "disaster stop fired", {"reason": "DISASTER_STOP"}, p.inst.symbol,
                           Severity.CRITICAL)
                p.stop_cid = ""
                raise EngineFault("disaster stop fired")
            self._emit(AuditCode.CARRY_LIQUIDATED, "the short is no longer on the venue", {}, p.inst.symbol,
                       Severity.CRITICAL)
            raise EngineFault("short position missing")
        self._save_pair(p)
        reason = dec.check_close(p.b, view, p.inst, self.cfg.strategy, self.cfg.risk, self.emergency)
        if reason is not None:
            self.close_pair(p, reason)
            return
        why = dec.check_rebalance(p.b, view, self.cfg.strategy, self.cfg.risk, p.inst)
        if why is None:
            return
        self._move(p, CarryTrigger.REBALANCE_NEEDED, why)
        if why == "REBALANCE_GAP":
            self.rebalance(p, view)
        else:
            self.topup(p, view)
        if dec.margin_health(p.b, view.mark) < self.cfg.risk.close_health:
            self._move(p, CarryTrigger.CLOSE_SIGNAL, "CLOSE_MARGIN_HEALTH")
            self._close_legs(p, "CLOSE_MARGIN_HEALTH")
            return
        self._move(p, CarryTrigger.REBALANCED, why)

    def rebalance(self, p: Pair, view: dec.MarketView) -> None:
        before = dec.leg_gap(p.b.spot_qty, p.b.short_qty)
        for o in dec.rebalance_orders(p.b.spot_qty, p.b.short_qty, p.inst.qty_step, p.inst.min_qty):
            if o.leg == "spot":
                filled = self._order(p.inst.spot_symbol, "sell", o.qty)
            else:
                filled = self._order(p.inst.symbol, "buy", o.qty, reduce_only=True, swap=True)
            if filled.filled > 0:
                p.book = dec.book_reduce(p.b, o.leg, filled.filled, filled.avg_price or view.mark, filled.fee)
        self._refresh(p)
        self._save_pair(p)
        if p.b.short_qty > 0:
            self._place_stop(p)  # the stop follows the short's new size
        self._emit(AuditCode.CARRY_REBALANCED, "leg gap", {"gap_before": str(before),
                                                            "gap_after": str(dec.leg_gap(p.b.spot_qty, p.b.short_qty))},
                   p.inst.symbol)

    def topup(self, p: Pair, view: dec.MarketView) -> Decimal:
        """Add margin to the isolated short back to ``topup_target``; USDT comes from the trading account, and
        from the funding account first when the trading account lacks it (transfer idempotent by its id)."""
        pos = self._refresh(p)
        mark = pos.mark_price if pos is not None else view.mark
        amount = dec.topup_amount(p.b, mark, self.cfg.risk, p.inst)
        if amount <= 0:
            return ZERO
        funds = self._free("trading") + self._free("funding")
        cut = dec.delever_qty(p.b, replace(view, mark=mark), amount, funds, p.inst.qty_step)
        if cut >= p.inst.min_qty:
            self._delever(p, view, cut)
            pos = self._refresh(p)
            mark = pos.mark_price if pos is not None else view.mark
            amount = dec.topup_amount(p.b, mark, self.cfg.risk, p.inst)
            if amount <= 0:
                return ZERO
        tid = dec.topup_transfer_id(p.inst.symbol, p.b.opened_ms, len(p.b.topup_ids) + 1)
        self.journal.append({"k": "topup", "symbol": p.inst.symbol, "transfer_id": tid, "amount": str(amount)})
        usdt = self._read("balances", "trading").get("USDT")
        free = usdt.free if usdt is not None else ZERO
        moved = ZERO
        if free < amount:
            reserve = self._read("balances", "funding").get("USDT")
            want = min(amount - free, reserve.free if reserve is not None else ZERO)
            if want > 0:
                self._write(self.venue.transfer, "USDT", want, "funding", "trading", tid)
                moved = want
            amount = min(amount, free + want)
        if amount <= 0:
            self._emit(AuditCode.CARRY_MARGIN_TOPUP, "no funds for a top-up", {"transfer_id": tid, "amount": "0"},
                       p.inst.symbol, Severity.WARN)
            return ZERO
        self._write(self.venue.add_margin, p.inst.symbol, amount)
        p.book = dec.book_topup(p.b, amount, tid)
        self._refresh(p)
        self._save_pair(p)
        self._emit(AuditCode.CARRY_MARGIN_TOPUP, "margin health under the top-up line",
                   {"amount": str(amount), "transfer_id": tid, "moved_from_funding": str(moved),
                    "health_after": str(dec.margin_health(p.b, mark))}, p.inst.symbol)
        self._place_stop(p)  # more margin: the stop's line moves up
        return amount

    def _free(self, account: str) -> Decimal:
        usdt = self._read("balances", account).get("USDT")
        return usdt.free if usdt is not None else ZERO

    def _delever(self, p: Pair, view: dec.MarketView, qty: Decimal) -> None:
        """The reserve cannot pay the top-up: cut both legs by ``qty`` (spot sold, short bought back, its
        margin released pro rata); the proceeds pay the smaller short's top-up."""
        spot = self._order(p.inst.spot_symbol, "sell", qty)
        if spot.filled > 0:
            p.book = dec.book_reduce(p.b, "spot", spot.filled, spot.avg_price or view.spot, spot.fee)
        perp = self._order(p.inst.symbol, "buy", qty, reduce_only=True, swap=True)
        if perp.filled > 0:
            p.book = dec.book_reduce(p.b, "perp", perp.filled, perp.avg_price or view.mark, perp.fee)
        self._refresh(p)
        self._save_pair(p)
        self._emit(AuditCode.CARRY_REBALANCED, "delever: the reserve cannot pay the top-up",
                   {"qty": str(qty), "short_after": str(p.b.short_qty), "spot_after": str(p.b.spot_qty),
                    "gap_after": str(dec.leg_gap(p.b.spot_qty, p.b.short_qty))}, p.inst.symbol, Severity.WARN)

    # -- close --------------------------------------------------------------------------------------
    def close_pair(self, p: Pair, reason: str) -> None:
        self._move(p, CarryTrigger.CLOSE_SIGNAL, reason)
        self._close_legs(p, reason)

    def _close_legs(self, p: Pair, reason: str) -> Decimal:
        """Economic full close of both legs; spot below the venue minimum stays as dust (DUST_LOCKED)."""
        inst = p.inst
        self._cancel_stop(p)
        view, _ = self._view(p)
        pos = self._short_position(p)
        perp_px, perp_fee = view.mark, ZERO
        if pos is not None and pos.qty < 0:
            o = self._order(inst.symbol, "buy", -pos.qty, reduce_only=True, swap=True)
            perp_px, perp_fee = o.avg_price or view.mark, o.fee
        spot_px, spot_fee = view.spot, ZERO
        base = inst.spot_symbol.split("/")[0]
        market = self._call(self.venue.market, inst.spot_symbol)
        held = min(p.b.spot_qty, self._base_balance(base))
        sell = (held / market.qty_step).to_integral_value(rounding=ROUND_DOWN) * market.qty_step
        if sell >= market.min_qty and sell * view.spot >= market.min_notional:
            o = self._order(inst.spot_symbol, "sell", sell)
            spot_px, spot_fee = o.avg_price or view.spot, o.fee
            held -= o.filled
        p.dust = held if held > 0 else ZERO
        if p.dust > 0:
            self._emit(AuditCode.EXEC_DUST_POSITION_STUCK, "spot left below the venue minimum",
                       {"qty": str(p.dust), "min_qty": str(market.min_qty)}, inst.spot_symbol, Severity.WARN)
            self._emit(AuditCode.RISK_DUST_LOCKED, "DUST_LOCKED", {"qty": str(p.dust)}, inst.spot_symbol)
        b = p.b
        sold = b.spot_qty - p.dust
        pnl = (sold * (spot_px - b.spot_entry) + b.short_qty * (b.perp_entry - perp_px) + b.funding + b.realized
               - b.fees - perp_fee - spot_fee)
        self._emit(AuditCode.CARRY_CLOSE, reason, {"reason": reason, "net_pnl": str(pnl), "funding": str(b.funding),
                                                   "dust": str(p.dust)}, inst.symbol)
        was = self.breaker.tripped
        self.breaker = g.breaker_record_close(self.breaker, pnl, self.clock.now_ms(), self.cfg.risk)
        self.realized_total += pnl
        p.open_pnl = ZERO
        self._save_engine()
        if self.breaker.tripped and not was:
            self._emit(AuditCode.CARRY_BREAKER_TRIPPED, self.breaker.reason,
                       {"consecutive_losses": self.breaker.consecutive_losses, "day_loss": str(self.breaker.day_loss)},
                       inst.symbol, Severity.WARN)
        p.book = dec.PairBook(symbol=inst.symbol)
        self._move(p, CarryTrigger.CLOSED, reason, {"net_pnl": str(pnl)})
        return pnl

    def close_all(self, cause: str, trigger: CarryTrigger = CarryTrigger.CONTROL_STOP) -> None:
        """Every pair to STOPPING, both legs closed (dust aside), then STOPPED."""
        for p in self.pairs.values():
            if p.state == CarryState.STOPPED:
                continue
            self._move(p, trigger, cause)
            self._finish_stop(p, cause)

    def _finish_stop(self, p: Pair, cause: str) -> bool:
        """Close the pair's legs, retrying for ``leg_unwind_ms``; a venue that still refuses leaves the pair in
        STOPPING (journaled, audited CRITICAL) and the next ``step`` tries again."""
        deadline = self.clock.now_ms() + self.cfg.strategy.leg_unwind_ms
        while True:
            try:
                if not p.b.is_flat or self._short_position(p) is not None:
                    self._close_legs(p, cause)
                else:
                    self._move(p, CarryTrigger.CLOSED, cause)
                return True
            except VenueError as exc:
                if self.clock.now_ms() >= deadline:
                    self._emit(AuditCode.CONTROL_REJECTED, f"close_all not finished: {exc}", {"error": str(exc)},
                               p.inst.symbol, Severity.CRITICAL)
                    return False
                self.wait(500)

    def reset(self) -> None:
        """Manual: STOPPED pairs back to IDLE (after ``bootstrap``), the breaker cleared."""
        for p in self.pairs.values():
            if p.state == CarryState.STOPPED:
                self._move(p, CarryTrigger.RESET, "manual reset")
        self.breaker = g.breaker_reset(self.breaker)
        self._save_engine()

    def status(self) -> dict[str, Any]:
        return {"risk_state": self.risk_state.value, "last_exit_clean": self.last_exit_clean,
                "breaker": {"tripped": self.breaker.tripped, "reason": self.breaker.reason,
                            "consecutive_losses": self.breaker.consecutive_losses,
                            "day_loss": str(self.breaker.day_loss)},
                "pairs": {s: {"state": p.state.value, "book": book_to_json(p.b), "dust": str(p.dust)}
                          for s, p in self.pairs.items()},
                "holding": [s for s, p in self.pairs.items() if p.state in HOLDING_STATES]}
