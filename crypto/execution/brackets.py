"""Protective orders of the engine's positions through the core's bracket state machine
(``core.execution.protective``): the stop (reduce-only stop-market) first, confirmed within
``attach_timeout_ms``; the take-profit (reduce-only limit) second; one filled cancels the other (OCO); a
stop that fails or stays unconfirmed refuses new exposure (REDUCE_ONLY or a frozen symbol,
EXEC_PROTECTIVE_ORDER_MISSING), a take-profit that fails is audited (EXEC_TP_ATTACH_FAILED).

The bracket decides; this shell only turns its actions into engine orders and the venue's answers into
bracket events. Brackets live in memory, their orders in the journal: at start (``adopt_at_start``), after
reconciliation has read every journaled order back from the venue by client id, a live stop that fits the
reconciled position (its size, the closing side) is adopted as the position's bracket, ARMED with its
take-profit when that is live too (else a fresh take-profit is sent): the position is never without its
stop across a restart. Protective orders that do not fit (another size, a second stop) are cancelled, and
the next cycle attaches a fresh bracket as usual.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from core.events import AuditCode, Severity
from core.execution.filters import round_down
from core.execution.protective import (
    Bracket,
    BracketAction,
    BracketActionKind,
    BracketEvent,
    BracketState,
    BracketStep,
    BracketTrigger,
    MissingSlPolicy,
    ProtectiveConfig,
    ProtectiveKind,
    ProtectiveOrder,
    fold_attach_failure,
    open_bracket,
    step_bracket,
    tick_bracket,
)
from core.oms.order_fsm import OrderState
from crypto.execution.decisions import OrderPlan
from crypto.execution.orders import LiveOrder

if TYPE_CHECKING:
    from crypto.execution.engine import CryptoEngine

ONE = Decimal(1)


class BracketKeeper:
    def __init__(self, engine: CryptoEngine) -> None:
        self.engine = engine
        self.brackets: dict[str, Bracket] = {}

    @property
    def pcfg(self) -> ProtectiveConfig:
        c = self.engine.cfg
        return ProtectiveConfig(enabled=c.protective, attach_timeout_ms=c.attach_timeout_ms,
                                missing_sl_policy=MissingSlPolicy(c.missing_sl_policy))

    def is_protected(self, symbol: str) -> bool:
        b = self.brackets.get(symbol)
        return b is not None and b.is_protected

    def work(self, symbol: str, stop_price: Decimal | None) -> None:
        """Keep the symbol's bracket in line with its position this cycle."""
        eng = self.engine
        market = eng.markets[symbol]
        position = eng.book.position(symbol)
        size = round_down(abs(position), market.qty_step)
        b = self.brackets.get(symbol)
        if b is not None and b.state is not BracketState.CLOSED:
            fits = size > 0 and b.sl.qty == size and (b.sl.close_side == "SELL") == (position > 0)
            if not fits:
                self.apply(symbol, step_bracket(b, BracketEvent(BracketTrigger.POSITION_CLOSED), eng.now()))
                return
            self.apply(symbol, tick_bracket(b, eng.now(), self.pcfg))
            return
        if size == 0 or size < market.min_qty:
            self.brackets.pop(symbol, None)
            return
        if any(o.purpose in ("sl", "tp") for o in eng.book.live(symbol)):
            return  # the previous bracket's orders are still being cancelled
        mark = eng.marks[symbol]
        direction = ONE if position > 0 else -ONE
        sl = stop_price if stop_price is not None else mark * (ONE - direction * eng.cfg.stop_distance)
        tp_dist = eng.cfg.take_profit_distance
        tp = None if tp_dist is None else mark * (ONE + direction * tp_dist)
        signed = size if position > 0 else -size
        b = open_bracket(symbol, signed, round_down(sl, market.tick),
                         None if tp is None else round_down(tp, market.tick),
                         eng.reserve_client_order_id(), None if tp is None else eng.reserve_client_order_id(),
                         f"{symbol}|{eng.now_ms()}")
        self.apply(symbol, step_bracket(b, BracketEvent(BracketTrigger.START), eng.now()))

    def adopt_at_start(self) -> None:
        """Adopt the live stop (and take-profit) a previous run left on each position; cancel the rest."""
        eng = self.engine
        for symbol in eng.cfg.symbols:
            live = [o for o in eng.book.live(symbol) if o.purpose in ("sl", "tp")]
            if not live:
                continue
            position = eng.book.position(symbol)
            size = round_down(abs(position), eng.markets[symbol].qty_step)
            close_side = "sell" if position > 0 else "buy"
            fits = [o for o in live if size > 0 and o.remaining == size and o.side == close_side and o.reduce_only
                    and o.state in (OrderState.ACK, OrderState.SENT)]
            stops = [o for o in fits if o.purpose == "sl" and o.trigger_price is not None]
            tps = [o for o in fits if o.purpose == "tp" and o.price is not None]
            keep: list[LiveOrder] = []
            if stops:
                sl = stops[0]
                keep = [sl] + tps[:1]
                self._adopt(symbol, position, size, sl, tps[0] if tps else None)
            for order in live:
                if order not in keep:
                    eng.cancel(order, "RESTART_UNFIT")  # not this position's stop: a fresh one is attached

    def _adopt(self, symbol: str, position: Decimal, size: Decimal, sl: LiveOrder, tp: LiveOrder | None) -> None:
        eng = self.engine
        now = eng.now()
        side = "SELL" if position > 0 else "BUY"
        group = f"{symbol}|adopted|{eng.now_ms()}"
        assert sl.trigger_price is not None
        sl_order = ProtectiveOrder(ProtectiveKind.SL, symbol, size, sl.trigger_price, side, group)
        tp_order = None if tp is None or tp.price is None else \
            ProtectiveOrder(ProtectiveKind.TP, symbol, size, tp.price, side, group)
        if tp_order is not None and tp is not None:
            bracket = Bracket(sl_order, tp_order, sl.client_order_id, tp.client_order_id, BracketState.ARMED,
                              now, now)
            self.brackets[symbol] = bracket
            eng.note(AuditCode.EXEC_PROTECTIVE_ATTACHED, "stop-loss and take-profit adopted at restart", symbol,
                     kind="SL+TP", client_order_id=sl.client_order_id, tp_client_order_id=tp.client_order_id,
                     state=bracket.state.value, adopted=True)
            return
        tp_dist = eng.cfg.take_profit_distance
        mark = eng.marks.get(symbol)
        if tp_dist is None or mark is None:
            self.brackets[symbol] = Bracket(sl_order, None, sl.client_order_id, None, BracketState.ARMED, now)
        else:
            # The stop is live; the take-profit is missing: send a fresh one (the bracket waits for its ack).
            direction = ONE if position > 0 else -ONE
            tp_px = round_down(mark * (ONE + direction * tp_dist), eng.markets[symbol].tick)
            tp_order = ProtectiveOrder(ProtectiveKind.TP, symbol, size, tp_px, side, group)
            bracket = Bracket(sl_order, tp_order, sl.client_order_id, eng.reserve_client_order_id(),
                              BracketState.TP_PENDING, now, now)
            self.brackets[symbol] = bracket
            assert bracket.tp_client_id is not None
            self._act(symbol, BracketAction(BracketActionKind.PLACE, tp_order, bracket.tp_client_id, "adopted stop"))
        eng.note(AuditCode.EXEC_PROTECTIVE_ATTACHED, "stop-loss adopted at restart", symbol, kind="SL",
                 client_order_id=sl.client_order_id, adopted=True)

    def apply(self, symbol: str, step: BracketStep) -> None:
        """Record the step (audit, risk) and carry out its actions; answers feed back as new steps."""
        eng = self.engine
        self.brackets[symbol] = step.bracket
        eng.audit_events(step.events)
        if step.refused is not None:
            eng.note(AuditCode.OMS_ILLEGAL_TRANSITION, str(step.refused), symbol, Severity.WARN)
        res = fold_attach_failure(step, eng.risk, eng.now(), eng.risk_cfg, self.pcfg)
        eng.risk = res.snapshot
        eng.audit_events(res.events)
        for action in step.actions:
            self._act(symbol, action)

    def _act(self, symbol: str, action: BracketAction) -> None:
        eng = self.engine
        kind = action.order.kind
        existing = eng.book.orders.get(action.client_order_id)
        if action.kind is BracketActionKind.PLACE:
            p = action.order
            side = "sell" if p.close_side == "SELL" else "buy"
            plan = (OrderPlan(symbol, side, p.qty, "stop_market", None, True, "sl", False, trigger_price=p.trigger_price)
                    if kind is ProtectiveKind.SL else
                    OrderPlan(symbol, side, p.qty, "limit", p.trigger_price, True, "tp", False))
            order = eng.place(plan, intent_id=f"{symbol}|{kind.value}|{action.client_order_id}",
                              client_order_id=action.client_order_id)
            self.answer(order, kind)
        elif action.kind in (BracketActionKind.CANCEL, BracketActionKind.RESIZE):
            if existing is not None:
                eng.cancel(existing, f"BRACKET_{action.reason}")
        elif action.kind is BracketActionKind.LOOKUP and existing is not None:
            self.answer(eng.resolve(existing, force=True), kind)

    def answer(self, order: LiveOrder | None, kind: ProtectiveKind) -> None:
        """The venue's answer to a protective order as a bracket event (nothing while still unknown)."""
        if order is None or order.state is OrderState.NEW:
            return  # held by the rate guard or unknown outcome: the attach timeout decides
        b = self.brackets.get(order.symbol)
        if b is None:
            return
        sl = kind is ProtectiveKind.SL
        trigger = {
            OrderState.SENT: BracketTrigger.SL_ACK if sl else BracketTrigger.TP_ACK,
            OrderState.ACK: BracketTrigger.SL_ACK if sl else BracketTrigger.TP_ACK,
            OrderState.PARTIAL: BracketTrigger.SL_ACK if sl else BracketTrigger.TP_ACK,
            OrderState.FILLED: BracketTrigger.SL_FILLED if sl else BracketTrigger.TP_FILLED,
            OrderState.REJECTED: BracketTrigger.SL_FAILED if sl else BracketTrigger.TP_FAILED,
        }.get(order.state)
        if trigger is None:
            return  # a cancel we asked for: the bracket already knows
        self.apply(order.symbol, step_bracket(b, BracketEvent(trigger), self.engine.now()))

    def on_report(self, order: LiveOrder) -> None:
        """A protective order changed at the venue (fill, reject): tell its bracket."""
        b = self.brackets.get(order.symbol)
        if b is None or order.client_order_id not in (b.sl_client_id, b.tp_client_id):
            return
        self.answer(order, ProtectiveKind.SL if order.client_order_id == b.sl_client_id else ProtectiveKind.TP)
