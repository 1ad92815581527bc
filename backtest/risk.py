"""The account risk machine inside the realistic backtest: grid risk equity, lazy evaluation, audit trail.

Risk equity is the ETF executor's (``windows.risk_shell.ExecutorRisk.account``) seen from the grid: the
physical pool plus, per symbol, the grid's cash flows (``GridState.cash``) and its open lots at the last
close. ``core.risk.evaluate`` (~19 us) decides the state with the bar time as ``now``; the grid applies the
state through ``mac.grid.risk_policy.grid_risk_mode``, exactly as the live node does.

Evaluating every minute of five years would cost more than the backtest itself, so ``tick`` tracks the
equity and its peak in floats and calls ``evaluate`` only when it could change something: a drawdown
within float error of a threshold the current state can cross (DEGRADED at 8 %, COOLDOWN at 12 %, FUSE
at 20 %, the recovery line below 7 %), a timer that is due (cooldown end, recovery stage, observation
window), and once per trading day (for the day's EQUITY_SNAPSHOT). Between
evaluations NORMAL far from every line would change nothing but the observed fields; the peak that rose
meanwhile is handed to the snapshot (exact, recomputed from the state at the peak) before the next
evaluation. ``every_bar=True`` evaluates on every timestamp (tests compare both paths).

FUSE never ends in a backtest: its exit is a manual Reset FUSE, which a replay has no operator for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from core.events import AuditCode, AuditEvent, Severity
from core.gate import GateConfig
from core.oms.account import AccountState
from core.risk import RiskConfig, RiskInputs, RiskSnapshot, RiskState, evaluate, initial_snapshot
from core.risk.replay import equity_snapshot_event
from mac.grid.core import BUY, GridSignal, GridState, price_decimal
from mac.grid.risk_policy import GridRiskMode, GridRiskPolicy, grid_risk_mode
from shared_schema.types import ms_to_datetime

_MS_PER_DAY = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000
_EPS = 1e-6  # float drawdown vs the exact one: evaluate a little early rather than a minute late


@dataclass(frozen=True)
class BacktestRisk:
    """Risk settings of a realistic run (``None`` for the run's ``risk`` disables the machine)."""

    config: RiskConfig = field(default_factory=RiskConfig)
    policy: GridRiskPolicy = field(default_factory=GridRiskPolicy)
    audit: bool = True  # collect the audit events the gate reads
    every_bar: bool = False  # evaluate on every timestamp (reference for the lazy path)


def _ms(dt: datetime | None) -> float:
    return float("inf") if dt is None else dt.timestamp() * 1000


class RiskTracker:
    """Per-run risk state: call ``sync`` when a symbol's grid state changes, ``mark`` on every bar and
    ``tick`` at the first bar of every new timestamp (before the grid decides on it)."""

    def __init__(self, settings: BacktestRisk, codes: list[str], pool_yuan: Decimal) -> None:
        self.settings = settings
        self.cfg = settings.config
        self.codes = codes
        self.pool = pool_yuan
        self.pool_f = float(pool_yuan)
        n = len(codes)
        self.cash: list[Decimal] = [Decimal(0)] * n
        self.cash_f = [0.0] * n
        self.held = [0] * n
        self.closes = [0.0] * n
        self.peak_f = self.pool_f
        self.peak_parts: tuple[tuple[Decimal, ...], tuple[int, ...], tuple[float, ...]] | None = None
        self.snapshot: RiskSnapshot = initial_snapshot(
            AccountState(equity=pool_yuan, peak_equity=pool_yuan, cash=pool_yuan)
        )
        self.mode: GridRiskMode = grid_risk_mode("NORMAL", False, settings.policy)
        self.audit: list[AuditEvent] | None = [] if settings.audit else None
        self.evaluations = 0
        self.ticks = 0
        self.segments: list[tuple[int, str]] = [(0, "NORMAL")]  # (tick index, state entered)
        self.transitions: list[tuple[int, str, str]] = []  # (t ms, from, to)
        self.blocked: Counter[str] = Counter()
        self.cancelled_buys = 0
        self.first_t = 0
        self.last_t = 0
        self.next_day_ms = -(10**15)
        self.max_dd = 0.0
        self._set_lines()

    # ------------------------------------------------------------------------------- equity inputs

    def sync(self, k: int, state: GridState) -> None:
        """The grid state of symbol ``k`` changed: refresh its cash and held shares."""
        self.cash[k] = state.cash
        self.cash_f[k] = float(state.cash)
        held = 0
        for lot in state.lots:
            held += lot.shares
        self.held[k] = held

    def equity_exact(self, cash=None, held=None, closes=None) -> Decimal:
        cash = self.cash if cash is None else cash
        held = self.held if held is None else held
        closes = self.closes if closes is None else closes
        total = self.pool
        for c, h, p in zip(cash, held, closes, strict=True):
            total += c
            if h:
                total += price_decimal(p) * h
        return total

    # ------------------------------------------------------------------------------------ the tick

    def tick(self, t: int) -> bool:
        """Fold the equity at the close of the previous timestamp; True when the grid's mode changed."""
        if not self.ticks:
            self.first_t = t
        self.ticks += 1
        eq = self.pool_f
        for c, h, p in zip(self.cash_f, self.held, self.closes, strict=False):
            eq += c + h * p
        if eq > self.peak_f:
            self.peak_f = eq
            self.peak_parts = (tuple(self.cash), tuple(self.held), tuple(self.closes))
            dd = 0.0
        else:
            dd = 1.0 - eq / self.peak_f
            if dd > self.max_dd:
                self.max_dd = dd
        if t >= self.next_day_ms:
            day = (t + _CST_OFFSET_MS) // _MS_PER_DAY
            self.next_day_ms = (day + 1) * _MS_PER_DAY - _CST_OFFSET_MS
            return self._evaluate(t, True)  # once a day: refresh the snapshot and write EQUITY_SNAPSHOT
        if self.quiet_lo <= dd < self.quiet_hi and t < self.due_ms:
            return False  # nothing the current state could cross, no timer due
        return self._evaluate(t, False)

    def fold(self, ts: np.ndarray, closes: list[np.ndarray]) -> int:
        """``tick`` over the timestamps ``ts`` at once, while no grid state changes: ``closes[k][j]`` is symbol
        ``k``'s close held at ``ts[j]`` (its last close before it). Folds the ticks up to the first one that
        would evaluate (a new day, a due timer, a drawdown outside the state's quiet band) and returns how
        many it folded; the tracker is then exactly as after that many ``tick`` calls. Same arithmetic in
        the same order as ``tick``: the equity per timestamp, its running peak, the drawdown."""
        lo, hi = self.quiet_lo, self.quiet_hi
        m = ts.shape[0]
        if not m or not lo < hi or ts[0] >= self.next_day_ms:
            return 0
        eq = np.full(m, self.pool_f)
        for c, h, p in zip(self.cash_f, self.held, closes, strict=True):
            eq = eq + (c + h * p)  # tick's additions, in tick's order
        peak = np.maximum.accumulate(np.concatenate(([self.peak_f], eq)))[:-1]  # the peak before each tick
        new_peak = eq > peak
        dd = 1.0 - eq / peak
        dd[new_peak] = 0.0
        ok = (dd >= lo) & (dd < hi) & (ts < self.due_ms) & (ts < self.next_day_ms)
        f = m if ok.all() else int(np.argmin(ok))
        if not f:
            return 0
        if not self.ticks:
            self.first_t = int(ts[0])
        self.ticks += f
        peaks = np.flatnonzero(new_peak[:f])
        if peaks.size:
            last = int(peaks[-1])
            self.peak_f = float(eq[last])
            self.peak_parts = (tuple(self.cash), tuple(self.held), tuple(float(p[last]) for p in closes))
        worst = float(dd[:f].max())
        if worst > self.max_dd:
            self.max_dd = worst
        return f

    def _set_lines(self) -> None:
        """The drawdown band in which ``evaluate`` could change nothing, and the next due timer, for the
        current snapshot (recomputed after every evaluation that produced events)."""
        cfg, snap = self.cfg, self.snapshot
        inf = float("inf")
        fuse = float(cfg.fuse_drawdown) - _EPS
        cool = float(cfg.cooldown_drawdown) - _EPS
        degraded = float(cfg.degraded_drawdown) - _EPS
        recover = float(cfg.degraded_drawdown - cfg.recovery_hysteresis) + _EPS
        state = snap.state
        if self.settings.every_bar:
            lo, hi = inf, -inf  # empty band: evaluate on every timestamp
        elif state is RiskState.NORMAL:
            lo, hi = -inf, degraded
        elif state is RiskState.FUSE:
            lo, hi = -inf, inf  # only a manual reset leaves FUSE
        elif state is RiskState.DEGRADED:
            lo, hi = recover, min(cool, fuse)
        else:  # COOLDOWN (its end is a timer) and REDUCE_ONLY: only FUSE is reachable by drawdown
            lo, hi = -inf, fuse
        self.quiet_lo, self.quiet_hi = lo, hi
        due = inf
        if state is RiskState.COOLDOWN:
            due = _ms(snap.cooldown_until)
        if snap.recovery_stage is not None and snap.recovery_stage_since is not None:
            due = min(due, _ms(snap.recovery_stage_since + cfg.recovery_stage_interval))
        if snap.observe_until is not None:
            due = min(due, _ms(snap.observe_until))
        self.due_ms = due

    def _evaluate(self, t: int, snapshot_event: bool) -> bool:
        now = ms_to_datetime(t)
        snap = self.snapshot
        if self.peak_parts is not None:
            peak = self.equity_exact(*self.peak_parts)
            self.peak_parts = None
            if peak > snap.peak_equity:
                snap = replace(snap, peak_equity=peak)
        equity = self.equity_exact()
        account = AccountState(equity=equity, peak_equity=max(snap.peak_equity, equity), cash=equity)
        result = evaluate(snap, RiskInputs(account=account), now, self.cfg)
        self.evaluations += 1
        before = self.snapshot.state
        self.snapshot = result.snapshot
        self.peak_f = max(self.peak_f, float(result.snapshot.peak_equity))
        changed = result.snapshot.state is not before
        if self.audit is not None:
            self.audit.extend(result.events)
            if snapshot_event or changed:
                self.audit.append(equity_snapshot_event(result.snapshot, now))
        if result.changed_state:
            for ev in result.events:
                if ev.code is AuditCode.RISK_STATE_CHANGE:
                    self.transitions.append((t, str(ev.data["from"]), str(ev.data["to"])))
        if changed or result.events:
            self._set_lines()
        if not changed:
            return False
        self.segments.append((self.ticks - 1, result.snapshot.state.value))
        mode = grid_risk_mode(result.snapshot.state.value, result.snapshot.halted, self.settings.policy)
        if mode == self.mode:
            return False
        self.mode = mode
        return True

    def finish(self, t: int) -> None:
        """A last evaluation and EQUITY_SNAPSHOT at the end of the data."""
        self.last_t = t
        if self.ticks:
            self._evaluate(t, True)

    # -------------------------------------------------------------------------------- audit helpers

    def note(self, code: AuditCode, t: int, symbol: str, cause: str, **data: Any) -> None:
        if self.audit is not None:
            self.audit.append(
                AuditEvent(ts=ms_to_datetime(t), code=code, severity=Severity.INFO, cause=cause, symbol=symbol,
                           data=data)
            )  # fmt: skip

    def signal_sent(self, sig: GridSignal) -> None:
        """A signal the executor accepted and sent (the vault approved it, or a sell)."""
        if self.audit is None:
            return
        data = {"signal_id": sig.client_order_id, "client_order_id": sig.client_order_id, "side": sig.side}
        self.note(AuditCode.SIGNAL_ACCEPTED, sig.t, sig.code, "signal passed the pipeline", **data)
        self.note(AuditCode.ORDER_SUBMITTED, sig.t, sig.code, "order sent", client_order_id=sig.client_order_id,
                  side=sig.side, shares=sig.shares, price=str(sig.price), reason=sig.reason)  # fmt: skip

    def signal_refused(self, sig: GridSignal, reason: str) -> None:
        self.note(AuditCode.SIGNAL_REJECTED, sig.t, sig.code, f"vault refused: {reason}",
                  signal_id=sig.client_order_id, reason=reason, side=sig.side)  # fmt: skip

    def filled(self, t: int, code: str, client_order_id: str, side: str, shares: int, price_milli: int) -> None:
        self.note(AuditCode.ORDER_FILLED, t, code, "FILLED", client_order_id=client_order_id, side=side, filled=shares,
                  price=str(Decimal(price_milli) / 1000), opens=side == BUY,
                  risk_state=self.snapshot.state.value, leverage="1", max_leverage="1")  # fmt: skip

    def cancelled(self, t: int, code: str, client_order_id: str, side: str, why: str) -> None:
        self.note(AuditCode.ORDER_CANCELLED, t, code, why, client_order_id=client_order_id, side=side, filled=0,
                  opens=side == BUY, risk_state=self.snapshot.state.value)  # fmt: skip

    # -------------------------------------------------------------------------------------- metrics

    def summary(self) -> dict[str, Any]:
        """Time in each risk state (share of timestamps), transitions, evaluations, blocked buys."""
        share: Counter[str] = Counter()
        bounds = self.segments + [(self.ticks, "")]
        for (start, state), (end, _) in zip(bounds, bounds[1:], strict=False):
            share[state] += end - start
        total = max(self.ticks, 1)
        first_day = (self.first_t + _CST_OFFSET_MS) // _MS_PER_DAY
        last_day = (self.last_t + _CST_OFFSET_MS) // _MS_PER_DAY
        return {
            # the whole replay as a gate period: midnight (CST) of the first day to midnight after the last
            "period_from": ms_to_datetime(first_day * _MS_PER_DAY - _CST_OFFSET_MS).isoformat(),
            "period_to": ms_to_datetime((last_day + 1) * _MS_PER_DAY - _CST_OFFSET_MS).isoformat(),
            "final_state": self.snapshot.state.value,
            "time_in_state": {s.value: share.get(s.value, 0) / total for s in RiskState},
            "transitions": len(self.transitions),
            "transition_list": [
                {"t": ms_to_datetime(t).isoformat(), "from": a, "to": b} for t, a, b in self.transitions
            ],
            "max_drawdown": self.max_dd,  # of the grid's risk equity, sampled once a minute
            "evaluations": self.evaluations,
            "blocked_buys": dict(self.blocked),
            "cancelled_buys": self.cancelled_buys,
        }


def replay_gate_config(gate: GateConfig, times_ms: np.ndarray) -> GateConfig:
    """The gate config for a replay: ``gate`` with the data's own holidays (weekdays without bars), so
    activity is counted per trading day of the replayed calendar."""
    from marketdata.bars import session_holidays

    holidays = tuple(sorted(set(gate.holidays) | set(session_holidays(times_ms))))
    return gate.model_copy(update={"holidays": holidays})
