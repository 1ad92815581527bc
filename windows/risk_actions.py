"""What the risk state demands of the executor each turn: kill-switch commands, cancels, forced reduction.

The risk kernel (``windows.risk_shell.ExecutorRisk``) says which state the account is in; this room acts
on it: it reconciles the venue's positions with the vault, cancels resting buys when a reducing state
begins, and sells grid lots under COOLDOWN and Force Reduce (``windows.reduction`` plans which), each sell
a signal through the same pipeline, vault and journal as a node's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from core.control.killswitch import KillAction
from core.events import AuditCode, Severity
from core.oms.order_fsm import OrderState
from core.oms.reconcile import reconcile
from core.risk.snapshot import cooldown_exposure_target
from settings.resolve import declared_base_positions
from shared_schema.models import ReductionStatus
from shared_schema.types import fen_to_yuan
from windows.intake import reserve
from windows.journal_records import HaltRecord, IntentRecord, ResultRecord
from windows.pipeline import decide
from windows.reduction import (
    Attempt,
    Book,
    GridLot,
    Holding,
    ReductionPlan,
    is_reduction_id,
    next_attempt,
    plan_reduction,
    reduction_id,
    reduction_mode,
    reduction_signal,
)

if TYPE_CHECKING:
    from windows.executor import Executor

BUY_FORBIDDING_STATES = frozenset({"COOLDOWN", "FUSE", "REDUCE_ONLY"})


class RiskActions:
    """Acts on the executor ``ex``'s risk state: control commands, risk cancels, reconcile, forced reduction.

    The turn calls ``control`` and ``evaluate``; ``reconcile(force=True)`` runs once at start. The market
    view and the sweeper report ``market_moved`` / ``inputs_changed``; the publisher shows ``reduction``."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.config = ex.config
        self.state = ex.state
        self.journal = ex.journal
        self.broker = ex.broker
        self.risk = ex.risk
        self.wall_clock = ex.wall_clock
        self._risk_dirty = True  # evaluate the risk state on this turn (quotes, health, a command changed)
        self._reduce_due = True  # plan a forced reduction on this turn (new quotes, risk change, start)
        self.reduction: ReductionStatus | None = None  # the running forced reduction, as published
        self._risk_seen = ""  # the risk state the last reducing-state check saw
        self._last_reconcile: datetime | None = None
        self._baseline: dict[str, int] | None = None

    def inputs_changed(self) -> None:
        """Something the risk state depends on changed (data or trade health): evaluate it on this turn."""
        self._risk_dirty = True

    def market_moved(self) -> None:
        """New quotes reached the venue: evaluate the risk state and plan a forced reduction on this turn."""
        self._risk_dirty = True
        self._reduce_due = True

    def control(self) -> None:
        """Kill-switch commands from every door; their actions become journal records and cancels."""
        ex = self.ex
        now = ex.now()
        actions = self.risk.poll_commands(self.wall_clock.now(), now)
        for action in actions:
            if action is KillAction.STOP_NEW_ORDERS and not self.state.halted:
                ex._commit(HaltRecord(on=True, why="FORCE_HALT", at=now))
            elif action is KillAction.RESUME_ORDERS and self.state.halted:
                ex._commit(HaltRecord(on=False, why="RESUME", at=now))
            elif action is KillAction.CANCEL_OPEN_ORDERS:
                ex.sweeper.cancel_open(now, "HALTED")
            elif action is KillAction.REDUCE_EXPOSURE:
                self._reduce_due = True  # evaluate() cancels the buys and sells the lots this turn
        if actions:
            self._risk_dirty = True
            ex._dirty = True

    def base_positions(self) -> dict[str, int]:
        """The long-term base position declared per code in the config's grid section (shares)."""
        return declared_base_positions(self.config)

    def evaluate(self) -> None:
        """Risk state for this turn, then what a reducing state demands, in the same turn: entering one
        (by drawdown, data or trade health, reconciliation or a control command) cancels resting buys, and
        COOLDOWN / Force Reduce sell grid lots (``_reduce``)."""
        if self.ex.market.market_now is None:
            return  # risk events are stamped with market time; there is none before the first quote
        self.reconcile()
        if self._risk_dirty:
            self._risk_dirty = False
            account = self.risk.account(self.state.vault, self.ex.market.marks(), self.base_positions())
            for note in self.risk.evaluate(account, self.ex.now(), exposure=self._grid_exposure()):
                self.ex.alerts.post(note)
        state = self.risk.state_name
        if state != self._risk_seen:
            self._risk_seen = state
            self.ex._dirty = True
            self._reduce_due = True
            if state in BUY_FORBIDDING_STATES:
                # A resting buy must not fill under a state that only allows reducing.
                self._cancel_buys_for_risk(state)
        self._reduce()

    def _cancel_buys_for_risk(self, state: str) -> None:
        now = self.ex.now()
        buys = [o.record.client_order_id for o in self.state.open_orders()
                if o.record.side == "BUY" and not o.cancel_requested and o.record.state is not OrderState.NEW]
        self.ex.sweeper.cancel_open(now, "RISK", buys_only=True)
        if buys:
            self.risk.emit(AuditCode.RISK_FORCED_REDUCTION, now, f"entering {state}: resting buys cancelled",
                           severity=Severity.WARN, action="CANCEL_BUYS", state=state, client_order_ids=buys)

    def _grid_exposure(self) -> Decimal:
        """Grid exposure for the risk kernel: the cost basis of the open grid lots (vault ``used``), yuan."""
        return Decimal(sum(self.state.vault.get_used_map().values())) / 100

    # ------------------------------------------------------------------------------- forced reduction

    def _reduce(self) -> None:
        """COOLDOWN and Force Reduce sell grid lots (``windows.reduction`` decides which); each sell is a
        signal through the same pipeline, vault and journal as a node's, with a deterministic id per lot
        and attempt, so a restart finds what it already decided and never sends it twice."""
        if not self._reduce_due:
            return
        self._reduce_due = False
        ex = self.ex
        snap = self.risk.snapshot
        mode = reduction_mode(snap)
        if mode is None or self.state.halted:
            self._set_reduction(None)
            return
        now = ex.now()
        retry = timedelta(seconds=self.config.executor.reduction_retry_s)
        in_sell = frozenset(self.state.lots_in_sell)
        lots: list[GridLot] = []
        cooling: set[str] = set()
        attempts: dict[str, int] = {}
        for alloc in self.state.vault.allocations.values():  # insertion order: oldest first
            if alloc.frozen > 0 or alloc.holding_shares <= 0:
                continue
            lot_id = alloc.client_order_id
            lots.append(GridLot(lot_id, alloc.symbol, alloc.holding_shares, alloc.used, alloc.layer_index))
            if lot_id in in_sell:
                continue
            number, waiting = next_attempt(lot_id, self._latest_reduction(lot_id), now, retry)
            if waiting:
                cooling.add(lot_id)
            elif number is not None:
                attempts[lot_id] = number
            else:
                in_sell |= {lot_id}  # our previous sell of it is still open at the venue
        positions = self.broker.query_positions() if self._baseline is not None else None
        unfilled: dict[str, int] = {}
        unplaced: dict[str, int] = {}
        for live in self.state.open_orders():
            if live.record.side != "SELL":
                continue
            left = live.record.shares - live.record.filled_shares
            unfilled[live.record.symbol] = unfilled.get(live.record.symbol, 0) + left
            if live.outcome_unknown or live.record.state is OrderState.NEW:  # the venue may not count it yet
                unplaced[live.record.symbol] = unplaced.get(live.record.symbol, 0) + left
        holdings = {} if positions is None or self._baseline is None else {
            p.code: Holding(p.volume, p.can_use_volume, self._baseline[p.code],
                            unfilled_sells=unfilled.get(p.code, 0), unplaced_sells=unplaced.get(p.code, 0))
            for p in positions if p.code in self._baseline}
        model = ex.market.quotes.last_good
        wall = self.wall_clock.now()
        books = {} if model is None else {
            code: Book(Decimal(str(q.bid1)) if q.bid1 > 0 else None, Decimal(str(q.prev_close)))
            for code, q in model.quotes.items() if ex.market.is_quote_time_ok(q.quote_time, wall)}
        target = cooldown_exposure_target(snap, self.config.risk)
        plan = plan_reduction(
            mode, lots, now=now, market=self.config.market, books=books, holdings=holdings,
            in_sell=in_sell, cooling=frozenset(cooling),
            target_fen=None if target is None else int((target * 100).to_integral_value(ROUND_FLOOR)),
        )
        if not plan.sells:
            self._set_reduction(plan)
            return
        ctx = ex.market.context()
        expiry = timedelta(seconds=self.config.executor.reduction_expiry_s)
        to_send: list[str] = []
        sent: list[dict[str, Any]] = []
        for sell in plan.sells:
            attempt = attempts.get(sell.lot.client_order_id)
            if attempt is None:
                continue
            payload = reduction_signal(sell, mode, attempt, now, expiry)
            records = decide(self.state, payload, ctx, self.config, ex.seen_inputs)
            if any(isinstance(r, IntentRecord) for r in records) and not ex._take_order_token(wall):
                self._reduce_due = True  # the venue's order rate is the bound: the rest next turn
                break
            for record in records:
                ex._commit(record)
                if isinstance(record, IntentRecord):
                    to_send.append(record.client_order_id)
                    ctx = reserve(ctx, record, self.config)
                elif isinstance(record, ResultRecord):
                    ex.alerts.post(f"forced reduction ({mode.value}): sell of lot {sell.lot.client_order_id} "
                                   f"refused: {record.detail or ''} {record.message or ''}")
            sent.append({"signal_id": payload["signal_id"], "lot": sell.lot.client_order_id, "code": sell.lot.code,
                         "shares": sell.lot.shares, "price": str(sell.price),
                         "accepted": any(isinstance(r, IntentRecord) for r in records)})
        self.risk.emit(AuditCode.RISK_FORCED_REDUCTION, now, f"{mode.value}: selling {len(to_send)} grid lot(s)",
                       severity=Severity.WARN, action="SELL", mode=mode.value, sells=sent,
                       held_back=dict(plan.held_back), exposure=fen_to_yuan(plan.exposure_fen),
                       target=None if plan.target_fen is None else fen_to_yuan(plan.target_fen),
                       after=fen_to_yuan(plan.after_fen))
        ex.alerts.post(f"forced reduction ({mode.value}): selling {len(to_send)} grid lot(s), exposure "
                       f"{fen_to_yuan(plan.exposure_fen)} -> {fen_to_yuan(plan.after_fen)}")
        if to_send:
            self.journal.sync()  # every intent durable before the venue hears of any
            for client_order_id in to_send:
                ex._send(client_order_id)
        self._set_reduction(plan)
        ex._dirty = True

    def _latest_reduction(self, lot: str) -> Attempt | None:
        """The newest reduction attempt of ``lot`` in the replayed state (ids are deterministic)."""
        latest: Attempt | None = None
        n = 0
        while (sid := reduction_id(lot, n)) in self.state.signals:
            live = self.state.orders.get(sid)
            open_at_venue = live is not None and not live.record.state.is_terminal
            latest = Attempt(n, not open_at_venue, self.state.signals[sid].result.updated_at)
            n += 1
        return latest

    def _set_reduction(self, plan: ReductionPlan | None) -> None:
        """What the pool file shows of the running reduction (None when none runs)."""
        if plan is None:
            view = None
        else:
            selling = sorted(o.record.client_order_id for o in self.state.open_orders()
                             if is_reduction_id(o.record.client_order_id))
            view = ReductionStatus(
                mode=plan.mode.value, exposure=fen_to_yuan(plan.exposure_fen),
                target=None if plan.target_fen is None else fen_to_yuan(plan.target_fen),
                selling=selling, held_back=dict(plan.held_back))
        if view != self.reduction:
            self.reduction = view
            self.ex._dirty = True

    def reconcile(self, force: bool = False) -> None:
        """Windows positions vs the vault's lots plus the base: on start and every reconcile interval."""
        ex = self.ex
        if ex.market.market_now is None:
            return
        now = ex.now()
        if not force and self._last_reconcile is not None and \
                (now - self._last_reconcile).total_seconds() < self.config.executor.reconcile_interval_s:
            return
        if any(o.record.side == "BUY" or o.release_ids for o in self.state.open_orders()):
            return  # fills in flight: the venue and the ledger may briefly differ
        positions = self.broker.query_positions()
        if positions is None:
            return
        self._last_reconcile = now
        held: dict[str, int] = {code: 0 for code in self.config.codes}
        for alloc in self.state.vault.allocations.values():
            held[alloc.symbol] = held.get(alloc.symbol, 0) + alloc.holding_shares
        broker = {p.code: p.volume for p in positions if p.code in held}
        declared = self.base_positions()
        if self._baseline is None:
            # Without a declared base, what the venue held beyond the grid's lots at start is the base.
            self._baseline = {c: declared.get(c, broker.get(c, 0) - held.get(c, 0)) for c in held}
        local = {c: Decimal(self._baseline.get(c, 0) + held.get(c, 0)) for c in held}
        result = reconcile(local, {c: Decimal(broker.get(c, 0)) for c in held}, None, None)
        if result.mismatches:
            self.risk.emit(AuditCode.OMS_RECONCILE_MISMATCH, now, "venue positions differ from the vault's lots",
                           severity=Severity.WARN, severity_level=result.severity.value,
                           mismatches=[str(m) for m in result.mismatches])
            ex.alerts.post(f"reconcile: {result.severity.value} mismatch: {[str(m) for m in result.mismatches]}")
        account = self.risk.account(self.state.vault, ex.market.marks(), self.base_positions())
        self.risk.evaluate(account, now, result)
        ex._dirty = True
