"""Backtest of the carry engine over a funding tape, on the same pure decisions as the live shell.

Where the live engine polls (scan every ``scan_ms``, funding at each settlement), the backtest jumps: at
each settlement it books funding and runs ``check_close``/``check_rebalance``/``check_open`` exactly as the
shell does; between settlements numpy finds the first minute where a price-driven threshold (margin health
under the top-up or close line, take-profit, stop-loss) is crossed, and the decision code runs at the first
scan time at or after that minute, with that minute's prices, exactly as the shell would see them.
Liquidation is checked on every minute: if the mark reaches the short's liquidation price before the
engine's next scan, the short is liquidated (its whole isolated margin is lost) and the engine stops.

Fill model: both legs at the minute's prices, spot at spot +- slippage, the perp at the mark -+ slippage,
taker fees on both; the legs are the same size, so the naked exposure of a backtest is the rounding gap
(0); the live shell measures legging for real. The signal is the last *settled* rate (no look-ahead).
Money is Decimal; the per-minute scans use floats only to find candidate minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np

from core.events import AuditCode, AuditEvent, Severity
from crypto.carry import decisions as dec
from crypto.carry import guards as g
from crypto.carry.config import CarryConfig, InstrumentConfig
from crypto.carry.machine import CarryState, CarryTrigger, apply_trigger, ms_to_dt, transition_event
from crypto.carry.tape import MINUTE_MS, Tape

ZERO = Decimal(0)


@dataclass
class Trade:
    opened_ms: int
    closed_ms: int | None
    qty: Decimal
    spot_entry: Decimal
    perp_entry: Decimal
    funding: Decimal = ZERO
    fees: Decimal = ZERO
    pnl: Decimal | None = None
    reason: str = ""
    topups: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"opened_ms": self.opened_ms, "closed_ms": self.closed_ms, "qty": str(self.qty),
                "spot_entry": str(self.spot_entry), "perp_entry": str(self.perp_entry),
                "funding": str(self.funding), "fees": str(self.fees),
                "pnl": None if self.pnl is None else str(self.pnl), "reason": self.reason, "topups": self.topups}


@dataclass
class RunResult:
    symbol: str
    regime: str
    trades: list[Trade]
    metrics: dict[str, Any]
    ts_ms: np.ndarray
    equity: np.ndarray
    health: np.ndarray  # NaN when flat
    liq_distance: np.ndarray  # NaN when flat
    funding_ts_ms: np.ndarray
    funding_rate: np.ndarray
    events: list[AuditEvent] = field(default_factory=list)


class _Sim:
    def __init__(self, tape: Tape, cfg: CarryConfig, inst: InstrumentConfig, audit: bool) -> None:
        self.t, self.cfg, self.inst = tape, cfg, inst
        self.strat, self.risk = cfg.strategy, cfg.risk
        self.n = tape.ts_ms.size
        self.t0 = int(tape.ts_ms[0])
        self.spot_f = tape.spot_f()
        self.mark_f = tape.mark_f()
        self.scan_min = max(1, self.strat.scan_ms // MINUTE_MS)
        capital = self.strat.capital_usdt
        self.reserve = capital * self.strat.reserve_fraction  # the funding account
        self.cash = capital - self.reserve  # the trading account's free USDT
        self.book = dec.PairBook(symbol=inst.symbol)
        self.state = CarryState.IDLE
        self.breaker = g.Breaker()
        self.trades: list[Trade] = []
        self.eq = np.empty(self.n)
        self.health = np.full(self.n, np.nan)
        self.liqd = np.full(self.n, np.nan)
        self.filled = 0
        self.audit = audit
        self.events: list[AuditEvent] = []
        self.liquidations = 0
        self.topups = 0
        self.delevers = 0
        self.topup_usdt = ZERO
        self.funding_total = ZERO
        self.fees_total = ZERO
        self.last_refusal = ""

    # -- helpers ------------------------------------------------------------------------------------
    def ms(self, i: int) -> int:
        return self.t0 + i * MINUTE_MS

    def view(self, i: int, rate: Decimal) -> dec.MarketView:
        return dec.MarketView(spot=self.t.price(self.t.spot_ticks[i]), mark=self.t.price(self.t.mark_ticks[i]),
                              rate=rate)

    def emit(self, i: int, code: AuditCode, cause: str, data: dict[str, Any],
             severity: Severity = Severity.INFO) -> None:
        if self.audit:
            self.events.append(AuditEvent(ts=ms_to_dt(self.ms(i)), code=code, severity=severity, cause=cause,
                                          symbol=self.inst.symbol, data=data))

    def move(self, i: int, trigger: CarryTrigger, cause: str) -> None:
        before = self.state
        self.state = apply_trigger(before, trigger)
        if self.audit:
            self.events.append(transition_event(self.ms(i), self.inst.symbol, before, self.state, trigger, cause))

    def fill_to(self, upto: int) -> None:
        """Equity (and health, liquidation distance while holding) for minutes [filled, upto)."""
        a, b = self.filled, min(upto, self.n)
        if b <= a:
            return
        base = float(self.cash + self.reserve)
        bk = self.book
        if bk.is_flat:
            self.eq[a:b] = base
        else:
            q, sq = float(bk.short_qty), float(bk.spot_qty)
            mark = self.mark_f[a:b]
            upnl = (float(bk.perp_entry) - mark) * q
            self.eq[a:b] = base + sq * self.spot_f[a:b] + float(bk.margin) + upnl
            self.health[a:b] = (float(bk.margin) + upnl) / float(bk.margin_at_open)
            liq = dec.liquidation_price(bk, self.inst)
            if liq is not None:
                self.liqd[a:b] = (float(liq) - mark) / mark
        self.filled = b

    def order_events(self, i: int, leg: str, side: str, qty: Decimal, px: Decimal, opens: bool) -> None:
        if not self.audit:
            return
        cid = f"bt{leg}{self.ms(i)}{side}"
        data = {"client_order_id": cid, "leg": leg, "side": side, "qty": str(qty), "price": str(px),
                "opens": opens, "leverage": str(self.strat.leverage), "max_leverage": "3", "risk_state": "NORMAL"}
        self.emit(i, AuditCode.ORDER_SUBMITTED, "carry leg", data)
        self.emit(i, AuditCode.ORDER_FILLED, "carry leg", data)

    # -- actions ------------------------------------------------------------------------------------
    def try_open(self, i: int, rate: Decimal) -> bool:
        v = self.view(i, rate)
        lo = max(0, i - max(1, self.risk.spike_window_ms // MINUTE_MS))
        window = self.mark_f[lo:i + 1]
        spike = bool(window.size > 1 and window.max() / window.min() - 1 > float(self.risk.spike_move))
        ctx = dec.OpenContext(has_position=not self.book.is_flat, breaker_tripped=self.breaker.tripped,
                              spike=spike, free_usdt=self.cash)
        reason = dec.check_open(v, ctx, self.inst, self.strat, self.risk)
        if reason is not None:
            if reason != self.last_refusal:
                self.emit(i, AuditCode.CARRY_OPEN_REFUSED, "open check", {"reason": reason, "rate": str(rate)})
            self.last_refusal = reason
            return False
        self.last_refusal = ""
        self.fill_to(i)
        qty = dec.size_pair(v, self.inst, self.strat, self.cash)
        slip = self.strat.slippage
        spot_px, perp_px = v.spot * (1 + slip), v.mark * (1 - slip)
        fees = qty * spot_px * self.inst.spot_taker_fee + qty * perp_px * self.inst.perp_taker_fee
        if self.audit:
            self.emit(i, AuditCode.SIGNAL_ACCEPTED, "carry open", {"rate": str(rate), "qty": str(qty)})
        self.move(i, CarryTrigger.OPEN_SIGNAL, f"rate {rate} in window, net of fees")
        self.order_events(i, "perp", "sell", qty, perp_px, True)
        self.order_events(i, "spot", "buy", qty, spot_px, True)
        self.book = replace(dec.book_open(self.inst.symbol, qty, spot_px, perp_px, fees, self.strat.leverage,
                                          self.ms(i)), last_funding_ms=self.ms(i))
        self.cash -= qty * spot_px + self.book.margin + fees
        self.fees_total += fees
        self.trades.append(Trade(self.ms(i), None, qty, spot_px, perp_px, fees=fees))
        self.move(i, CarryTrigger.LEGS_FILLED, "both legs filled")
        return True

    def close(self, i: int, reason: str, stop: bool = False) -> None:
        self.fill_to(i + 1)  # the position lived through this minute's prices before the close
        v = self.view(i, ZERO)
        bk, slip = self.book, self.strat.slippage
        if stop:
            self.move(i, CarryTrigger.FAULT, reason)
        else:
            self.move(i, CarryTrigger.CLOSE_SIGNAL, reason)
        spot_px, perp_px = v.spot * (1 - slip), v.mark * (1 + slip)
        fees = bk.spot_qty * spot_px * self.inst.spot_taker_fee + bk.short_qty * perp_px * self.inst.perp_taker_fee
        self.order_events(i, "spot", "sell", bk.spot_qty, spot_px, False)
        self.order_events(i, "perp", "buy", bk.short_qty, perp_px, False)
        perp_pnl = bk.short_qty * (bk.perp_entry - perp_px)
        self.cash += bk.spot_qty * spot_px + bk.margin + perp_pnl - fees
        self.fees_total += fees
        pnl = (bk.spot_qty * (spot_px - bk.spot_entry) + perp_pnl + bk.funding + bk.realized - bk.fees - fees)
        self._finish(i, pnl, bk.fees + fees, reason)
        self.move(i, CarryTrigger.CLOSED, reason)

    def liquidate(self, i: int) -> None:
        """The venue took the short: its isolated margin is gone. The engine sells the spot and stops."""
        self.fill_to(i + 1)
        bk = self.book
        v = self.view(i, ZERO)
        self.emit(i, AuditCode.CARRY_LIQUIDATED, "mark reached the liquidation price",
                  {"mark": str(v.mark), "liq_price": str(dec.liquidation_price(bk, self.inst))}, Severity.CRITICAL)
        self.liquidations += 1
        self.move(i, CarryTrigger.FAULT, "liquidated")
        spot_px = v.spot * (1 - self.strat.slippage)
        fee = bk.spot_qty * spot_px * self.inst.spot_taker_fee
        self.cash += bk.spot_qty * spot_px - fee
        self.fees_total += fee
        # Lost: the margin we posted (opening + top-ups); the funding booked into it went with it.
        pnl = bk.spot_qty * (spot_px - bk.spot_entry) - (bk.margin - bk.funding) + bk.realized - bk.fees - fee
        self._finish(i, pnl, bk.fees + fee, "LIQUIDATED")
        self.move(i, CarryTrigger.CLOSED, "liquidated")

    def stop_fired(self, i: int, trigger: Decimal) -> None:
        """The venue-side disaster stop bought the short back (at the trigger, or the minute's mark when it
        gapped through); the engine finds its short gone at the next scan, sells the spot and stops."""
        self.fill_to(i + 1)
        bk, slip = self.book, self.strat.slippage
        v = self.view(i, ZERO)
        self.emit(i, AuditCode.CARRY_CLOSE, "disaster stop fired", {"reason": "DISASTER_STOP",
                                                                     "trigger": str(trigger)}, Severity.CRITICAL)
        self.move(i, CarryTrigger.FAULT, "disaster stop fired")
        perp_px = max(trigger, v.mark) * (1 + slip)
        spot_px = v.spot * (1 - slip)
        fees = bk.short_qty * perp_px * self.inst.perp_taker_fee + bk.spot_qty * spot_px * self.inst.spot_taker_fee
        perp_pnl = bk.short_qty * (bk.perp_entry - perp_px)
        self.cash += bk.spot_qty * spot_px + bk.margin + perp_pnl - fees
        self.fees_total += fees
        pnl = bk.spot_qty * (spot_px - bk.spot_entry) + perp_pnl + bk.funding + bk.realized - bk.fees - fees
        self._finish(i, pnl, bk.fees + fees, "DISASTER_STOP")
        self.move(i, CarryTrigger.CLOSED, "disaster stop fired")

    def _finish(self, i: int, pnl: Decimal, fees: Decimal, reason: str) -> None:
        tr = self.trades[-1]
        tr.closed_ms, tr.pnl, tr.reason, tr.funding, tr.fees = self.ms(i), pnl, reason, self.book.funding, fees
        self.emit(i, AuditCode.CARRY_CLOSE, reason, {"reason": reason, "net_pnl": str(pnl)})
        was = self.breaker.tripped
        self.breaker = g.breaker_record_close(self.breaker, pnl, self.ms(i), self.risk)
        if self.breaker.tripped and not was:
            self.emit(i, AuditCode.CARRY_BREAKER_TRIPPED, self.breaker.reason,
                      {"consecutive_losses": self.breaker.consecutive_losses,
                       "day_loss": str(self.breaker.day_loss)}, Severity.WARN)
        self.book = dec.PairBook(symbol=self.inst.symbol)

    def topup(self, i: int) -> None:
        self.fill_to(i + 1)
        v = self.view(i, ZERO)
        self.move(i, CarryTrigger.REBALANCE_NEEDED, "margin health under the top-up line")
        need = dec.topup_amount(self.book, v.mark, self.risk, self.inst)
        cut = dec.delever_qty(self.book, v, need, self.cash + self.reserve, self.inst.qty_step)
        if cut >= self.inst.min_qty:
            self.delever(i, v, cut)
            need = dec.topup_amount(self.book, v.mark, self.risk, self.inst)
        amount = min(need, self.cash + self.reserve)
        if amount > 0:
            from_reserve = max(ZERO, amount - self.cash)
            self.reserve -= from_reserve  # funding -> trading first, then add margin
            self.cash -= amount - from_reserve
            tid = dec.topup_transfer_id(self.inst.symbol, self.book.opened_ms, len(self.book.topup_ids) + 1)
            self.book = dec.book_topup(self.book, amount, tid)
            self.topups += 1
            self.topup_usdt += amount
            self.trades[-1].topups += 1
            self.emit(i, AuditCode.CARRY_MARGIN_TOPUP, "margin health under the top-up line",
                      {"amount": str(amount), "needed": str(need), "transfer_id": tid,
                       "health_after": str(dec.margin_health(self.book, v.mark))})
        self.move(i, CarryTrigger.REBALANCED, "top-up done" if amount > 0 else "no funds left for a top-up")

    def delever(self, i: int, v: dec.MarketView, qty: Decimal) -> None:
        """Both legs cut by ``qty``: the spot sold, the short bought back (its margin released pro rata);
        the cash pays the smaller short's top-up."""
        slip = self.strat.slippage
        spot_px, perp_px = v.spot * (1 - slip), v.mark * (1 + slip)
        spot_fee = qty * spot_px * self.inst.spot_taker_fee
        perp_fee = qty * perp_px * self.inst.perp_taker_fee
        released = self.book.margin * qty / self.book.short_qty
        self.order_events(i, "spot", "sell", qty, spot_px, False)
        self.order_events(i, "perp", "buy", qty, perp_px, False)
        before = self.book
        self.book = dec.book_reduce(dec.book_reduce(before, "spot", qty, spot_px, spot_fee), "perp", qty, perp_px,
                                    perp_fee)
        self.cash += qty * spot_px - spot_fee + released + qty * (before.perp_entry - perp_px) - perp_fee
        self.fees_total += spot_fee + perp_fee
        self.delevers += 1
        self.emit(i, AuditCode.CARRY_REBALANCED, "delever: the reserve cannot pay the top-up",
                  {"qty": str(qty), "short_after": str(self.book.short_qty)})

    # -- the scans ----------------------------------------------------------------------------------
    def decide_holding(self, i: int, rate: Decimal) -> str:
        """One scan while holding: close, else top-up. Returns 'closed', 'topped' or ''."""
        v = self.view(i, rate)
        reason = dec.check_close(self.book, v, self.inst, self.strat, self.risk)
        if reason is not None:
            self.close(i, reason)
            return "closed"
        if dec.check_rebalance(self.book, v, self.strat, self.risk, self.inst) == "REBALANCE_MARGIN_HEALTH":
            self.topup(i)
            return "topped"
        return ""

    def hold_until(self, start: int, stop: int, rate: Decimal) -> None:
        """Minutes [start, stop) while holding: find candidate minutes with numpy, act at scan times."""
        pos = start
        rk = self.risk
        while pos < stop and not self.book.is_flat:
            bk = self.book
            q, sq = float(bk.short_qty), float(bk.spot_qty)
            mark, spot = self.mark_f[pos:stop], self.spot_f[pos:stop]
            upnl = (float(bk.perp_entry) - mark) * q
            health = (float(bk.margin) + upnl) / float(bk.margin_at_open)
            close_fee = (sq * spot * float(self.inst.spot_taker_fee + self.strat.slippage)
                         + q * mark * float(self.inst.perp_taker_fee + self.strat.slippage))
            net = (sq * (spot - float(bk.spot_entry)) + upnl + float(bk.funding + bk.realized - bk.fees) - close_fee)
            ret = net / float(bk.capital_committed)
            trig = (health < float(rk.close_health)) | (ret >= float(self.strat.take_profit)) | (
                ret <= -float(self.strat.stop_loss))
            liq = dec.liquidation_price(bk, self.inst)
            if rk.topups_enabled:
                trig |= health < float(rk.topup_health)
                if liq is not None:
                    trig |= mark > float(liq) / (1.0 + float(rk.topup_liq_distance))
            liq_hits = np.flatnonzero(mark >= float(liq)) if liq is not None else np.empty(0, dtype=int)
            stop_px = dec.disaster_stop_price(bk, rk.disaster_stop_health, self.inst.tick)
            stop_hits = np.flatnonzero(mark >= float(stop_px)) if stop_px is not None else np.empty(0, dtype=int)
            hits = np.flatnonzero(trig)
            first_liq = pos + int(liq_hits[0]) if liq_hits.size else None
            first_stop = pos + int(stop_hits[0]) if stop_hits.size else None
            # The venue acts on every minute: the stop first, unless the mark gapped through both at once.
            venue_at = min(x for x in (first_liq, first_stop, stop) if x is not None)
            j = pos + int(hits[0]) if hits.size else stop
            s = -(-j // self.scan_min) * self.scan_min  # the first scan at or after minute j
            if venue_at < stop and venue_at <= s:
                if first_liq is not None and first_liq == venue_at:
                    self.liquidate(first_liq)
                else:
                    assert stop_px is not None
                    self.stop_fired(venue_at, stop_px)
                return
            if hits.size == 0:
                return
            if s >= stop:
                return  # the settlement at ``stop`` scans first
            self.decide_holding(s, rate)
            pos = s + 1

    def run(self) -> None:
        t = self.t
        f_ts = t.funding_ts_ms
        rate: Decimal | None = None
        for k in range(f_ts.size):
            i = (int(f_ts[k]) - self.t0) // MINUTE_MS
            if i >= self.n:
                break
            if i < 0:
                continue
            if self.state == CarryState.STOPPED:
                break
            rate = t.rate(k)
            if not self.book.is_flat:
                self.fill_to(i)
                mark = t.price(t.mark_ticks[i])
                pay = dec.funding_payment(self.book.short_qty, mark, rate)
                self.book = dec.book_funding(self.book, pay, rate, int(f_ts[k]))
                self.funding_total += pay
                if self.audit:
                    self.emit(i, AuditCode.CARRY_FUNDING_SETTLED, "settlement",
                              {"amount": str(pay), "rate": str(rate), "mark": str(mark),
                               "bill_id": f"bt{int(f_ts[k])}"})
                    self.emit(i, AuditCode.SIGNAL_ACCEPTED, "funding settlement booked", {"rate": str(rate)})
                self.decide_holding(i, rate)
            elif self.audit:
                self.emit(i, AuditCode.SIGNAL_ACCEPTED, "funding settlement evaluated", {"rate": str(rate)})
            nxt = (int(f_ts[k + 1]) - self.t0) // MINUTE_MS if k + 1 < f_ts.size else self.n
            nxt = min(nxt, self.n)
            if self.book.is_flat and self.state == CarryState.IDLE:
                # The rate only changes at a settlement: scan now, and again while a spike holds it back.
                s = i
                while s < nxt and not self.try_open(s, rate) and self.last_refusal == "OPEN_PRICE_SPIKE":
                    s += self.scan_min
                if not self.book.is_flat:
                    self.hold_until(s + 1, nxt, rate)
            elif not self.book.is_flat:
                self.hold_until(i + 1, nxt, rate)
        self.fill_to(self.n)


def _max_drawdown(eq: np.ndarray) -> float:
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak)) if eq.size else 0.0


def run_backtest(tape: Tape, cfg: CarryConfig, audit: bool = False, flatten_at_end: bool = False) -> RunResult:
    """One pair over one tape. ``audit`` also builds the audit events (for ``gridbridge gate``);
    ``flatten_at_end`` closes a pair still held at the last minute (reason ``END_OF_TAPE``)."""
    inst = _instrument_for(tape, cfg)
    grid_cfg = cfg.strategy.grid
    if grid_cfg.enabled:
        # The grid's allocation comes out of the carry's capital: the two share the pair's capital.
        cfg = cfg.model_copy(update={"strategy": cfg.strategy.model_copy(update={
            "capital_usdt": cfg.strategy.capital_usdt * (1 - grid_cfg.capital_fraction)})})
    sim = _Sim(tape, cfg, inst, audit)
    sim.run()
    if flatten_at_end and not sim.book.is_flat:
        sim.filled = min(sim.filled, sim.n - 1)
        sim.close(sim.n - 1, "END_OF_TAPE")
        sim.eq[-1] = float(sim.cash + sim.reserve)  # the last minute's equity after the close: all cash
    eq = sim.eq
    capital = float(cfg.strategy.capital_usdt)
    grid_metrics: dict[str, Any] = {}
    if grid_cfg.enabled:
        from crypto.carry.grid import simulate_grid

        total = float(cfg.strategy.capital_usdt) / (1 - float(grid_cfg.capital_fraction))
        g_res = simulate_grid(tape.mark_f(), total, float(grid_cfg.capital_fraction), float(cfg.strategy.leverage),
                              grid_cfg.levels, float(grid_cfg.range_pct), float(grid_cfg.adx_max),
                              float(inst.perp_maker_fee), float(inst.perp_taker_fee), grid_cfg.adx_period)
        eq = eq + g_res.equity
        capital = total
        grid_metrics = {"grid_pnl": round(float(g_res.equity[-1]) - total * float(grid_cfg.capital_fraction), 2),
                        "grid_trades": g_res.trades, "grid_runs": g_res.grids, "grid_stops": g_res.stops,
                        "grid_fees": round(g_res.fees, 2), "grid_max_margin": round(g_res.max_margin, 2)}
    days = tape.ts_ms.size / 1440.0
    final = eq[-1]
    closed = [tr for tr in sim.trades if tr.pnl is not None]
    holding = ~np.isnan(sim.health)
    metrics = {
        "symbol": tape.symbol, "regime": tape.meta.get("regime"), "days": round(days, 3),
        "capital_usdt": str(round(capital, 2)), "final_equity": round(float(final), 2),
        "net_pnl": round(float(final) - capital, 2),
        "apr": round((float(final) / capital - 1) * 365.0 / days, 5) if days else 0.0,
        "funding_received": str(sim.funding_total), "fees_paid": str(sim.fees_total),
        "trades": len(sim.trades), "closed_trades": len(closed),
        "winning_trades": sum(1 for tr in closed if tr.pnl is not None and tr.pnl > 0),
        "max_drawdown": round(_max_drawdown(eq), 5),
        "time_in_market": round(float(holding.mean()), 4),
        "worst_naked_exposure": 0.0,
        "liquidations": sim.liquidations, "topups": sim.topups, "topup_usdt": str(sim.topup_usdt),
        "delevers": sim.delevers,
        "min_margin_health": None if not holding.any() else round(float(np.nanmin(sim.health)), 4),
        "min_liq_distance": None if not holding.any() else round(float(np.nanmin(sim.liqd)), 4),
        "breaker_tripped": sim.breaker.tripped, "final_state": sim.state.value,
        "close_reasons": _count(tr.reason for tr in closed),
        **grid_metrics,
    }
    events = sim.events
    if audit:
        events = _with_snapshots(sim, events)
    return RunResult(tape.symbol, str(tape.meta.get("regime")), sim.trades, metrics, tape.ts_ms, eq, sim.health,
                     sim.liqd, tape.funding_ts_ms, tape.funding_rate_e9 / 1e9, events)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _with_snapshots(sim: _Sim, events: list[AuditEvent]) -> list[AuditEvent]:
    """Hourly EQUITY_SNAPSHOTs (equity at the hour, the worst liquidation distance within it), merged in
    time order with the decision events: what the gate reads."""
    n = sim.n - sim.n % 60
    hours = n // 60
    eq = sim.eq[:n].reshape(hours, 60)
    liq = sim.liqd[:n].reshape(hours, 60)
    snaps = []
    for h in range(hours):
        row = liq[h]
        worst = None if np.all(np.isnan(row)) else f"{float(np.nanmin(row)):.6f}"
        snaps.append(AuditEvent(ts=ms_to_dt(sim.ms(h * 60 + 59)), code=AuditCode.EQUITY_SNAPSHOT,
                                severity=Severity.INFO, cause="hourly risk", symbol=sim.inst.symbol,
                                data={"equity": f"{float(eq[h, -1]):.2f}", "liq_distance_p95": worst}))
    return sorted(events + snaps, key=lambda e: e.ts)


def _instrument_for(tape: Tape, cfg: CarryConfig) -> InstrumentConfig:
    for p in cfg.instruments.pairs:
        if tape.symbol in (p.venue_id, p.symbol):
            return p
    base = tape.symbol.split("-")[0]
    return cfg.instruments.pairs[0].model_copy(update={
        "symbol": f"{base}/USDT:USDT", "spot_symbol": f"{base}/USDT", "venue_id": tape.symbol})


def result_json(result: RunResult) -> str:
    return json.dumps({"metrics": result.metrics, "trades": [tr.to_dict() for tr in result.trades]}, indent=2)
