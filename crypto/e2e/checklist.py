"""The design's exchange checklist against the local exchange, one check at a time.

Every check drives the real engine (``crypto.execution``) through the real ccxt ``okx`` class on the local
exchange (``crypto.fakex``) and reads the outcome from three places that cannot agree by accident: the
engine's journal and audit log, the venue's answers, and the exchange model itself (``fx.exchange``: how
many venue orders carry a client id). The engine's clock is the exchange's model clock, moved by the run.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.audit import read_log_events
from core.control.commands import ControlAction, new_command, sign_command
from core.control.file_door import read_ack, write_command_file
from core.events import AuditCode
from core.oms.order_fsm import OrderState
from core.oms.reasons import VenueReason
from core.risk.state import REDUCING_STATES, RiskState
from crypto.e2e.engine_proc import KILL_INTENT, KILL_PREFIX, kill_plan
from crypto.e2e.runtime import MsClock, fake_credentials
from crypto.execution.config import ExecConfig
from crypto.execution.decisions import OrderPlan
from crypto.execution.engine import AUDIT_FILE, JOURNAL_FILE, CryptoEngine
from crypto.execution.loop import TrendLoop
from crypto.execution.orders import LiveOrder
from crypto.trend.strategy import TargetPosition, TrendConfig
from crypto.venue.protocol import Venue
from crypto.venue.types import OrderRequest, VenueError

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SECRET = "e2e-control-secret"
ZERO = Decimal(0)


@dataclass
class Check:
    name: str
    title: str
    passed: bool = False
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def distribution(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": round(statistics.fmean(values), 3) if values else 0.0,
            "p50": round(percentile(values, 50), 3), "p90": round(percentile(values, 90), 3),
            "p99": round(percentile(values, 99), 3), "max": round(max(values), 3) if values else 0.0}


class Checklist:
    """One run: the local exchange ``fx`` (a ``crypto.fakex.server.FakeExchange``), a venue on it, the engine
    on ``state_dir``."""

    def __init__(self, fx: Any, venue: Venue, state_dir: Path, orders: int, bars: int,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.fx = fx
        self.venue = venue
        self.state_dir = state_dir
        self.orders = orders
        self.bars = bars
        self.log = log
        self.cfg = ExecConfig(limit_offset_bps=Decimal("-2"), min_interval_ms=60_000, max_order_age_ms=120_000,
                              rate_capacity=Decimal(20), rate_per_second=Decimal(20))
        self.engine = CryptoEngine(venue, state_dir, self.cfg, clock=MsClock(fx.now_ms),
                                   environ={"GRIDBRIDGE_CONTROL_SECRET": SECRET})
        self.checks: list[Check] = []
        self.errors: list[str] = []
        self.started_ms = 0
        self.ended_ms = 0

    # -- helpers -------------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A direct venue read or engine reconciliation, retried while the venue answers "rate limit" (the
        checks read a lot in little wall time; the venue's windows are 1-2 s)."""
        for _ in range(40):
            try:
                return fn(*args, **kwargs)
            except VenueError as exc:
                if exc.reason is not VenueReason.RATE_LIMIT:
                    raise
                time.sleep(0.25)
        return fn(*args, **kwargs)

    def between_cycles(self) -> None:
        """A second of model time and a little wall time between two engine cycles (the venue's read limits
        are in wall time: a loop that spins without pause would only measure its own refusals)."""
        time.sleep(0.4)
        self.fx.advance(1_000)

    def place_until_sent(self, plan: OrderPlan, intent_id: str) -> LiveOrder:
        """Place through the engine; while its own guard holds the send (bucket, backoff) or the venue
        refuses for rate, wait and ask again for the same intent (same client id once journaled)."""
        for _ in range(200):
            order = self.engine.place(plan, intent_id=intent_id)
            if order is not None and order.state is not OrderState.NEW:
                return order
            time.sleep(0.05)
            self.fx.advance(50)
        raise RuntimeError(f"{intent_id}: not sent after 200 tries")

    def cancel_until_done(self, order: LiveOrder) -> LiveOrder:
        for _ in range(100):
            order = self.engine.cancel(self.engine.book.orders[order.client_order_id], "PROBE")
            if order.is_terminal:
                return order
            time.sleep(0.05)
            self.fx.advance(50)
        return order

    def venue_orders_with(self, coid: str) -> int:
        return sum(1 for o in self.fx.exchange.orders() if o.cl_ord_id == coid)

    def audit_codes(self, since_ms: int = 0) -> list[str]:
        return [e.code.value for e in read_log_events(self.state_dir / AUDIT_FILE)
                if e.ts.timestamp() * 1000 >= since_ms]

    def far_buy(self, symbol: str, qty: Decimal | None = None, depth: Decimal = Decimal("0.9")) -> OrderPlan:
        m = self.engine.markets[symbol]
        bid = self.engine.books[symbol].bids[0][0] if symbol in self.engine.books else \
            self.call(self.venue.order_book, symbol, 1).bids[0][0]
        price = (bid * depth / m.tick).to_integral_value() * m.tick
        return OrderPlan(symbol, "buy", qty if qty is not None else m.min_qty * 10, "limit", price, False,
                         "probe", True)

    def run_check(self, name: str, title: str, fn: Callable[[Check], None]) -> Check:
        check = Check(name, title)
        time.sleep(0.5)  # between checks: the venue's 1-2 s request windows drain a little
        started = time.perf_counter()
        self.log(f"check {name}: {title}")
        try:
            fn(check)
        except Exception as exc:  # a check that raises fails with the reason; the run goes on
            check.passed = False
            check.detail = f"uncaught {type(exc).__name__}: {exc}"
            self.errors.append(f"{name}: {check.detail}")
        check.seconds = round(time.perf_counter() - started, 3)
        self.checks.append(check)
        self.log(f"  -> {'PASS' if check.passed else 'FAIL'} {check.detail}")
        return check

    def set_exec(self, **update: Any) -> None:
        self.engine.cfg = self.engine.cfg.model_copy(update=update)

    # -- the run -------------------------------------------------------------------------------------
    def run(self, kill_state: Path) -> list[Check]:
        self.started_ms = self.fx.now_ms()
        self.call(self.engine.start)
        try:
            self.run_check("trend_loop", "the trend loop approaches its targets on BTC and ETH", self.trend_loop)
            self.run_check("close_all", "economic full close (dust aside)", self.close_all)
            self.run_check("place_cancel", f"place/cancel success and latency over {self.orders} orders",
                           self.place_cancel)
            self.run_check("idempotency", "one client id sent 5 times (and after a lost response): one venue "
                           "order", self.idempotency)
            self.run_check("event_window", "event window: leverage 1x and a 2x open refused", self.event_window)
            self.run_check("filters", "off-lot request rounded, undersized one ignored and audited", self.filters)
            self.run_check("partial_fill", "a partial fill updates the position and the remaining order",
                           self.partial_fill)
            self.run_check("rate_limit", "rate limit hit: backoff and downgrade, no uncaught error",
                           self.rate_limit)
            self.run_check("insufficient_margin", "insufficient margin: rejected and REDUCE_ONLY",
                           self.insufficient_margin)
            self.run_check("kill9_restart", "kill -9 mid-order, restart: clean reconciliation in one cycle, "
                           "no duplicate", lambda c: self.kill9_restart(c, kill_state))
            self.run_check("final_reconcile", "the main engine reconciles clean and closes out",
                           self.final_reconcile)
        finally:
            self.ended_ms = self.fx.now_ms()
            self.engine.close()
        return self.checks

    # -- the checks ----------------------------------------------------------------------------------
    def trend_loop(self, c: Check) -> None:
        trend = TrendConfig(fast_span=2, slow_span=5, breakout_window=4, atr_period=3, vol_window=5,
                            periods_per_year=365 * 24 * 60, target_vol=Decimal("0.5"),
                            max_gross_leverage=Decimal("1"))
        loop = TrendLoop(self.engine, trend, 60_000)
        # One bar of model time per step; the wall pace keeps the reads under the venue's limits (OKX allows
        # 10 mark-price and 10 position reads per 2 s).
        pace_s, last = 0.5, 0.0
        for _ in range(self.bars):
            wait = pace_s - (time.perf_counter() - last)
            if wait > 0:
                time.sleep(wait)
            last = time.perf_counter()
            self.fx.advance(60_000)
            loop.step()
        ev = self.audit_codes(self.started_ms)
        fills = ev.count(AuditCode.ORDER_FILLED.value) + ev.count(AuditCode.ORDER_PARTIAL.value)
        rec = self.call(self.engine.reconcile)
        positions = {s: str(q) for s, q in self.engine.book.positions.items()}
        c.figures = {"bars": loop.bars_seen, "targets": {s: str(t.qty) for s, t in loop.targets.items()},
                     "signals": ev.count(AuditCode.SIGNAL_ACCEPTED.value), "fills": fills,
                     "positions": positions, "reconcile_clean": rec.clean}
        c.passed = fills > 0 and rec.clean and loop.bars_seen >= trend.warmup_bars
        c.detail = f"{loop.bars_seen} bars, {fills} fill reports, positions {positions}, reconcile " \
                   f"{'clean' if rec.clean else 'NOT clean'}"
        self.engine.targets = {}

    def close_all(self, c: Check) -> None:
        before = {s: str(q) for s, q in self.engine.book.positions.items() if q != 0}
        self.engine.close_all(wait=self.between_cycles)
        venue_left = {p.symbol: str(p.qty) for p in self.call(self.venue.positions, list(self.cfg.symbols))
                      if p.qty != 0}
        dust = sorted(self.engine.risk.dust_locked)
        c.figures = {"before": before, "venue_after": venue_left, "dust_locked": dust}
        c.passed = all(s in dust for s in venue_left) and not self.engine.book.live()
        c.detail = f"closed {before or 'nothing'}; left at the venue {venue_left or 'nothing'}"

    def place_cancel(self, c: Check) -> None:
        stats = self.engine.stats
        sent0, acc0, canc0, ok0 = stats.sent, stats.accepted, stats.cancels, stats.cancel_ok
        lat0, clat0 = len(stats.place_latency_ms), len(stats.cancel_latency_ms)
        placed = cancelled = refused_locally = 0
        # The local exchange counts POST and GET trade/order in one window of 60 per 2 s, and a probe costs
        # three there (the placement, its confirming lookup, the lookup after the cancel): 10 probes a second.
        pace_s = 0.105
        wall = last = time.perf_counter()
        for i in range(self.orders):
            symbol = BTC if i % 2 == 0 else ETH
            now = time.perf_counter()
            if now - last < pace_s:
                time.sleep(pace_s - (now - last))
            self.fx.advance(int((time.perf_counter() - last) * 1000) or 1)
            last = time.perf_counter()
            sent_before = stats.sent
            order = self.place_until_sent(self.far_buy(symbol), f"probe-{i}")
            refused_locally += stats.sent - sent_before > 1
            placed += order.state in (OrderState.SENT, OrderState.ACK)
            after = self.cancel_until_done(order)
            cancelled += after.state is OrderState.CANCELLED
        wall = time.perf_counter() - wall
        sends, accepted = stats.sent - sent0, stats.accepted - acc0
        cancels, cancel_ok = stats.cancels - canc0, stats.cancel_ok - ok0
        c.figures = {
            "orders": self.orders, "sends": sends, "accepted": accepted, "cancels": cancels,
            "cancel_ok": cancel_ok, "probes_resent": refused_locally, "wall_s": round(wall, 2),
            "place_success_rate": round(accepted / sends, 4) if sends else 0.0,
            "cancel_success_rate": round(cancel_ok / cancels, 4) if cancels else 0.0,
            "place_latency_ms": distribution(stats.place_latency_ms[lat0:]),
            "cancel_latency_ms": distribution(stats.cancel_latency_ms[clat0:]),
        }
        c.passed = placed == self.orders and cancelled == self.orders
        c.detail = (f"{accepted}/{sends} placed, {cancel_ok}/{cancels} cancelled; place p50 "
                    f"{c.figures['place_latency_ms']['p50']} ms p99 {c.figures['place_latency_ms']['p99']} ms")

    def idempotency(self, c: Check) -> None:
        plan = self.far_buy(BTC)
        first = [self.engine.place(plan, intent_id="idem-five") for _ in range(5)]
        coids = {o.client_order_id for o in first if o is not None}
        five = self.venue_orders_with(next(iter(coids))) if len(coids) == 1 else -1
        self.fx.inject("lose_response", path="/api/v5/trade/order", method="POST", count=1)
        lost = [self.engine.place(plan, intent_id="idem-lost") for _ in range(5)]
        lost_ids = {o.client_order_id for o in lost if o is not None}
        lost_coid = next(iter(lost_ids)) if len(lost_ids) == 1 else ""
        after_lost = self.venue_orders_with(lost_coid) if lost_coid else -1
        unknown = self.engine.stats.unknown
        # Raw: the same request straight to the venue five times; the venue refuses the repeats.
        raw_coid = f"{self.cfg.id_prefix}raw{self.fx.now_ms() % 10**9}"
        refusals: list[str] = []
        for _ in range(5):
            try:
                self.venue.place_order(OrderRequest(BTC, "buy", plan.qty, "limit", raw_coid, price=plan.price,
                                                    margin_mode="isolated"))
            except VenueError as exc:
                refusals.append(exc.reason.value)
        raw = self.venue_orders_with(raw_coid)
        self.call(self.venue.cancel_order, BTC, raw_coid)
        for o in self.engine.book.live():
            self.engine.cancel(o, "CHECK_DONE")
        c.figures = {"engine_five_sends_venue_orders": five, "lost_response_venue_orders": after_lost,
                     "unknown_outcomes_seen": unknown, "raw_five_sends_venue_orders": raw,
                     "raw_refusals": refusals}
        c.passed = five == 1 and after_lost == 1 and raw == 1 and len(refusals) == 4 and unknown >= 1
        c.detail = (f"engine: 5 sends -> {five} order; lost response -> {after_lost} order; raw venue: 5 sends "
                    f"-> {raw} order, {len(refusals)} refused {sorted(set(refusals))}")

    def event_window(self, c: Check) -> None:
        self.engine.set_event_window(True)
        inst = self.engine.markets[BTC].venue_id
        lev = self.fx.exchange.leverage(inst, "isolated")
        since = self.fx.now_ms()
        refused = self.engine.request_open(self.far_buy(BTC), Decimal(2))
        allowed = self.engine.request_open(self.far_buy(BTC), Decimal(1))
        codes = self.audit_codes(since)
        if allowed is not None:
            self.engine.cancel(allowed, "CHECK_DONE")
        self.engine.set_event_window(False)
        c.figures = {"venue_leverage_in_window": str(lev), "open_2x": "refused" if refused is None else "sent",
                     "open_1x": "sent" if allowed is not None else "refused",
                     "leverage_after": str(self.fx.exchange.leverage(inst, "isolated"))}
        c.passed = lev == 1 and refused is None and allowed is not None and \
            AuditCode.RISK_ORDER_REFUSED.value in codes
        c.detail = f"venue leverage {lev}x in the window; 2x open {c.figures['open_2x']}, 1x open " \
                   f"{c.figures['open_1x']}"

    def filters(self, c: Check) -> None:
        self.set_exec(min_interval_ms=0, limit_offset_bps=Decimal(0))
        step = self.engine.markets[BTC].qty_step
        base = self.engine.book.position(BTC)
        wanted = base + step * Decimal("123.7")  # 123.7 steps: off the lot
        self.fx.advance(1_000)
        since = self.fx.now_ms()
        self.engine.cycle({BTC: TargetPosition(BTC, wanted), ETH: TargetPosition(ETH, Decimal("0.00005"))})
        sent = [o for o in self.engine.book.orders.values() if o.symbol == BTC and o.created_ms >= since
                and o.purpose in ("target", "close")]
        codes = self.audit_codes(since)
        ignored = AuditCode.EXEC_FILTER_IGNORE.value in codes
        eth_orders = [o for o in self.engine.book.orders.values() if o.symbol == ETH and o.created_ms >= since]
        self.engine.targets = {}
        for o in self.engine.book.live():
            self.engine.cancel(o, "CHECK_DONE")
        qty = sent[0].qty if sent else None
        c.figures = {"requested": str(wanted - base), "sent": None if qty is None else str(qty),
                     "step": str(step), "undersized_target": "0.00005 ETH", "filter_ignore_audited": ignored,
                     "eth_orders": [f"{o.side} {o.qty} {o.purpose} {o.intent_id}" for o in eth_orders]}
        c.passed = qty == step * 123 and ignored and not eth_orders
        c.detail = f"asked {wanted - base}, sent {qty} (step {step}); 0.00005 ETH target ignored: {ignored}"
        self.set_exec(min_interval_ms=self.cfg.min_interval_ms, limit_offset_bps=self.cfg.limit_offset_bps)

    def partial_fill(self, c: Check) -> None:
        book = self.call(self.venue.order_book, BTC, 5)
        best_ask, top_qty = book.asks[0]
        qty = top_qty * 3  # more than the best level holds, at the best level's price: the rest rests
        pos0 = self.engine.book.position(BTC)
        order = self.engine.place(OrderPlan(BTC, "buy", qty, "limit", best_ask, False, "target", True),
                                  intent_id=f"partial-{self.fx.now_ms()}")
        assert order is not None
        self.engine.sync_orders()
        order = self.engine.book.orders[order.client_order_id]
        venue_pos = next((p.qty for p in self.call(self.venue.positions, [BTC]) if p.symbol == BTC), ZERO)
        venue_order = self.call(self.venue.fetch_order, BTC, order.client_order_id)
        pos1 = self.engine.book.position(BTC)
        c.figures = {"qty": str(qty), "filled": str(order.filled), "remaining": str(order.remaining),
                     "state": order.state.value, "position_delta": str(pos1 - pos0), "venue_position": str(venue_pos),
                     "venue_remaining": None if venue_order is None else str(venue_order.remaining)}
        c.passed = (order.state is OrderState.PARTIAL and order.filled > 0 and pos1 - pos0 == order.filled
                    and venue_pos == pos1 and venue_order is not None and venue_order.remaining == order.remaining)
        c.detail = f"{order.filled} of {qty} filled, position +{pos1 - pos0}, remaining {order.remaining} live"
        self.engine.cancel(order, "CHECK_DONE")

    def rate_limit(self, c: Check) -> None:
        since = self.fx.now_ms()
        self.fx.set_rate_limit("trade/order", 2, 60_000)
        sent: list[str] = []
        # Two orders pass the venue's (overridden) limit, the next ones are refused until the guard backs off.
        attempts = 2 + self.cfg.rate_refusals_to_backoff
        for i in range(attempts):
            self.fx.advance(200)
            order = self.engine.place(self.far_buy(ETH), intent_id=f"rl-{since}-{i}")
            if order is not None:
                sent.append(order.client_order_id)
        degraded = self.engine.downgraded
        self.fx.ctx.limiter.clear_overrides()
        self.fx.advance(self.cfg.rate_quiet_ms // 2)
        self.engine.cycle()  # past the backoff, still degraded: the risk kernel sees the pace; retries go out
        state_in = self.engine.risk.state.value
        for _ in range(3):
            self.fx.advance(self.cfg.rate_quiet_ms + self.cfg.backoff_cap_ms)
            self.engine.cycle()
        codes = self.audit_codes(since)
        per_id = {coid: self.venue_orders_with(coid) for coid in sent}
        for o in self.engine.book.live():
            self.engine.cancel(o, "CHECK_DONE")
        c.figures = {"attempts": attempts, "rate_limited": codes.count(AuditCode.EXEC_RATE_LIMITED.value),
                     "backoffs": codes.count(AuditCode.EXEC_RATE_LIMIT_BACKOFF.value),
                     "downgraded": degraded, "risk_state_while_degraded": state_in,
                     "recovered": AuditCode.EXEC_RATE_LIMIT_RECOVERED.value in codes,
                     "venue_orders_per_id": sorted(set(per_id.values()))}
        c.passed = (c.figures["rate_limited"] >= 1 and c.figures["backoffs"] >= 1 and degraded
                    and c.figures["recovered"] and all(n == 1 for n in per_id.values()))
        c.detail = (f"{c.figures['rate_limited']} refusals, {c.figures['backoffs']} backoff, downgraded "
                    f"({state_in}), recovered {c.figures['recovered']}; each id one venue order")

    def insufficient_margin(self, c: Check) -> None:
        since = self.fx.now_ms()
        equity = self.engine.equity or Decimal(100_000)
        plan = self.far_buy(BTC, depth=Decimal("0.95"))
        qty = (equity * 10 / plan.price / self.engine.markets[BTC].qty_step).to_integral_value() * \
            self.engine.markets[BTC].qty_step
        order = self.engine.place(OrderPlan(BTC, "buy", qty, "limit", plan.price, False, "target", True),
                                  intent_id=f"margin-{since}")
        state = self.engine.risk.state
        refused_open = self.engine.request_open(self.far_buy(BTC), Decimal(1))
        # The operator's door: a signed RESUME (same code as the ETF side) lifts the latched cause.
        cmd = new_command(ControlAction.RESUME, "e2e", self.engine.now())
        write_command_file(self.state_dir, sign_command(cmd, SECRET.encode()))
        self.fx.advance(1_000)
        self.engine.cycle()
        ack = read_ack(self.state_dir, cmd.command_id) or {}
        codes = self.audit_codes(since)
        c.figures = {"qty": str(qty), "order_state": None if order is None else order.state.value,
                     "risk_state_after": state.value, "open_while_reduce_only": "sent" if refused_open else "refused",
                     "resume_accepted": ack.get("accepted"), "risk_state_after_resume": self.engine.risk.state.value}
        c.passed = (order is not None and order.state is OrderState.REJECTED and state is RiskState.REDUCE_ONLY
                    and refused_open is None and AuditCode.ORDER_REJECTED.value in codes
                    and ack.get("accepted") is True and self.engine.risk.state not in REDUCING_STATES)
        c.detail = (f"{qty} BTC refused ({c.figures['order_state']}), risk {state.value}, an open then "
                    f"{c.figures['open_while_reduce_only']}; RESUME -> {self.engine.risk.state.value}")

    def kill9_restart(self, c: Check, kill_state: Path) -> None:
        hold = kill_state / "held.txt"
        kill_state.mkdir(parents=True, exist_ok=True)
        time.sleep(1.0)  # the child shares the venue's request windows: let them drain first
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                            os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-m", "crypto.e2e.engine_proc", "--url", self.fx.url,
                                 "--state", str(kill_state), "--hold", str(hold)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not hold.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not hold.exists():
            proc.kill()
            err = proc.communicate(timeout=10)[1].decode(errors="replace")[-500:]
            raise RuntimeError(f"the engine process never reached the send (exit {proc.returncode}): {err}")
        coid = hold.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        journal = (kill_state / JOURNAL_FILE).read_text()
        intent_only = f'"coid":"{coid}"' in journal and '"k":"sent"' not in journal
        engine = CryptoEngine(self.venue, kill_state, ExecConfig(symbols=(BTC,), id_prefix=KILL_PREFIX),
                              clock=MsClock(self.fx.now_ms))
        try:
            report = self.call(engine.start)
            again = engine.place(kill_plan(self.venue, BTC), intent_id=KILL_INTENT)
            engine.cycle()
            second = engine.last_reconcile
            venue_orders = self.venue_orders_with(coid)
            ours = [o for o in self.fx.exchange.orders(live=True)
                    if o.cl_ord_id.startswith(engine.cfg.id_prefix) and o.cl_ord_id == coid]
            c.figures = {"exit_signal": -proc.returncode, "journal_had_intent_only": intent_only,
                         "resolved_at_start": list(report.resolved), "first_reconcile_clean": report.clean,
                         "venue_orders_for_id": venue_orders, "live_venue_orders_for_intent": len(ours),
                         "same_order_after_restart": again is not None and again.client_order_id == coid,
                         "next_cycle_clean": second is not None and second.clean}
            c.passed = (proc.returncode == -signal.SIGKILL and intent_only and report.clean
                        and coid in report.resolved and venue_orders == 1 and len(ours) == 1
                        and c.figures["same_order_after_restart"])
            c.detail = (f"killed -9 after the send of {coid}; restart resolved it by client id, reconciliation "
                        f"{'clean' if report.clean else 'NOT clean'} in one cycle, {venue_orders} venue order")
            if again is not None:
                engine.cancel(engine.book.orders[coid], "CHECK_DONE")
        finally:
            engine.close()

    def final_reconcile(self, c: Check) -> None:
        self.engine.close_all(wait=self.between_cycles)
        time.sleep(1.0)  # let the venue's read windows drain before the last full reconciliation
        rec = self.call(self.engine.reconcile)
        live = self.fx.exchange.open_orders()
        ours = [o.cl_ord_id for o in live if o.cl_ord_id.startswith(self.cfg.id_prefix)]
        c.figures = {"clean": rec.clean, "severity": rec.positions.severity.value, "orphans": list(rec.orphans),
                     "live_orders_left": ours, "risk_state": self.engine.risk.state.value}
        c.passed = rec.clean and not ours
        c.detail = f"reconciliation {rec.positions.severity.value}, {len(ours)} live orders left"


def fake_venue(url: str) -> Venue:
    from crypto.venue.factory import make_venue

    return make_venue("okx-fake", url, fake_credentials())  # type: ignore[arg-type]
