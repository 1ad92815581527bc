"""Pure decisions of the execution engine: what to cancel and what to send for one symbol this cycle.

Data in (target, position, market, book, live orders, risk snapshot, configs, time), a ``SymbolPlan`` out;
no IO, no clock. The core does the judging: ``core.execution.rebalance.plan_rebalance`` (delta with
hysteresis and a minimum interval; only exposure-reducing trades in COOLDOWN, FUSE and REDUCE_ONLY),
``core.risk.checks.check_order`` (halt, freeze, dust lock, state, cross margin, leverage whitelist, event
window, liquidation block), ``core.execution.filters.apply_venue_filters`` (step and tick rounded down,
minimums, dust). What is crypto here is only the order's shape: a limit price off the touch, splits by
notional and by visible depth, a re-post after ``max_order_age_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from core.events import AuditCode, AuditEvent, Severity
from core.execution.filters import VenueFilters, apply_venue_filters, filter_target
from core.execution.pricing import RestingOrder, repost_decision, split_order
from core.execution.pricing import limit_price as core_limit_price
from core.execution.rebalance import RebalanceConfig, plan_rebalance
from core.risk.checks import MarginMode, OrderIntent, Side, check_order
from core.risk.config import RiskConfig
from core.risk.snapshot import RiskSnapshot
from crypto.execution.config import ExecConfig
from crypto.execution.orders import LiveOrder, Purpose
from crypto.venue.types import Book, Market, OrderType
from crypto.venue.types import Side as VenueSide

ZERO = Decimal(0)
ONE = Decimal(1)
BP = Decimal("0.0001")


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def filters_of(market: Market) -> VenueFilters:
    """The core's filter record for a venue market (base units; no minimum notional when the venue has none)."""
    return VenueFilters(
        qty_step=market.qty_step, tick=market.tick, min_qty=market.min_qty,
        min_notional=market.min_notional if market.min_notional > 0 else None, max_leverage=market.max_leverage,
    )


def limit_price(side: VenueSide, book: Book, cfg: ExecConfig, tick: Decimal) -> Decimal | None:
    """The core's limit price (offset off our own touch, rounded the safe way) on this book; None without
    both sides."""
    if not book.bids or not book.asks:
        return None
    core_side = Side.BUY if side == "buy" else Side.SELL
    return core_limit_price(core_side, book.bids[0][0], book.asks[0][0], tick, cfg.limit_policy())


def first_child(qty: Decimal, price: Decimal, side: VenueSide, book: Book, cfg: ExecConfig,
                f: VenueFilters) -> Decimal:
    """The first child of the core's split (max notional, share of the depth near the touch); 0 when the
    book cannot take a tradable child now. One child per cycle: the next cycle sees the rest again."""
    try:
        plan = split_order(qty, price, f, cfg.limit_policy(), book.asks if side == "buy" else book.bids)
    except ValueError:
        return qty  # the notional cap is under the venue minimum: send the order whole
    if plan.children:
        return plan.children[0]
    # Nothing tradable: for want of depth, wait; otherwise the order itself is under the minimum and the
    # venue filters say what it is (ignored, or dust when it closes).
    return ZERO if plan.capped_by_depth else qty


@dataclass(frozen=True)
class OrderPlan:
    symbol: str
    side: VenueSide
    qty: Decimal
    type: OrderType
    price: Decimal | None
    reduce_only: bool
    purpose: Purpose
    opens: bool
    trigger_price: Decimal | None = None
    target: Decimal | None = None


@dataclass(frozen=True)
class SymbolPlan:
    cancels: tuple[tuple[str, str], ...] = ()  # (client_order_id, why)
    order: OrderPlan | None = None
    events: tuple[AuditEvent, ...] = ()
    dust_lock: bool = False
    reason: str = ""


@dataclass(frozen=True)
class SymbolView:
    """What the engine knows of one symbol this cycle."""

    symbol: str
    market: Market
    book: Book
    mark: Decimal
    position: Decimal
    live: Sequence[LiveOrder]  # non-terminal orders of the symbol
    last_trade_ms: int | None
    leverage: Decimal
    margin_mode: str | None  # the venue position's margin mode; None when flat


def _event(now: datetime, code: AuditCode, cause: str, symbol: str, sev: Severity = Severity.INFO,
           **data: object) -> AuditEvent:
    return AuditEvent(now, code, sev, cause, symbol, {k: (str(v) if isinstance(v, Decimal) else v)
                                                      for k, v in data.items()})


def plan_symbol(
    view: SymbolView,
    target: Decimal | None,
    snapshot: RiskSnapshot,
    risk_cfg: RiskConfig,
    cfg: ExecConfig,
    now_ms: int,
    downgraded: bool = False,
    halted: bool = False,
    liq_cut: Decimal | None = None,
) -> SymbolPlan:
    """Cancel stale orders or send the next child toward ``target`` (None: the engine has no target for it,
    only forced reductions apply)."""
    now = utc(now_ms)
    working = [o for o in view.live if o.purpose in ("target", "close")]
    if working:
        cancels: list[tuple[str, str]] = []
        events: list[AuditEvent] = []
        for o in working:
            if o.cancel_requested or o.state.value == "NEW" or o.price is None:
                continue
            fresh = limit_price(o.side, view.book, cfg, view.market.tick) or o.price
            resting = RestingOrder(o.client_order_id, o.symbol, Side.BUY if o.side == "buy" else Side.SELL,
                                   o.price, utc(o.created_ms))
            verdict = repost_decision(resting, fresh, now, cfg.limit_policy())
            if verdict.repost:
                cancels.append((o.client_order_id, f"REPOST_{verdict.reason}"))
                events.extend(() if verdict.event is None else (verdict.event,))
        # One working order per symbol: a re-post waits until the venue has ended the previous one.
        return SymbolPlan(cancels=tuple(cancels), events=tuple(events), reason="WORKING")
    if halted:
        return SymbolPlan(reason="HALTED")
    f = filters_of(view.market)
    position = view.position
    forced = position != 0 and (snapshot.force_reduce_all or snapshot.state.value in ("COOLDOWN", "FUSE")
                                or bool(snapshot.liq_blocked and liq_cut))
    events: list[AuditEvent] = []
    wanted = position if target is None else target
    if snapshot.force_reduce_all:
        wanted = ZERO
    elif snapshot.liq_blocked and liq_cut and position != 0:
        # Liquidation distance under the line: the core's nearest-first cut for this symbol.
        cut = min(liq_cut, abs(position))
        wanted = position - (cut if position > 0 else -cut)
        events.append(_event(now, AuditCode.RISK_FORCED_REDUCTION, "liquidation distance under the line",
                             view.symbol, Severity.WARN, position=position, target=wanted, cut=cut))
    elif target is not None:
        # A target under the venue minimum becomes 0, audited EXEC_FILTER_IGNORE.
        filtered = filter_target(view.symbol, target, view.mark, f, now)
        events.extend(filtered.events)
        if filtered.events:
            wanted = ZERO
    decision = plan_rebalance(
        position, wanted, ONE, view.mark, f, snapshot.state,
        None if view.last_trade_ms is None else utc(view.last_trade_ms), now,
        RebalanceConfig(hysteresis=cfg.hysteresis, min_interval=timedelta(milliseconds=cfg.min_interval_ms)),
        forced=forced,
    )
    if decision.delta_qty == 0:
        if decision.reason == "AT_TARGET" and position != 0 and wanted == 0 and not decision.reduces:
            # Nothing to trade but a position should go: it is under the venue step (dust).
            return _dust(view, f, now, tuple(events))
        return SymbolPlan(events=tuple(events), reason=decision.reason)
    side: VenueSide = "buy" if decision.delta_qty > 0 else "sell"
    qty = abs(decision.delta_qty)
    opens = not decision.reduces
    leverage = view.leverage
    intent = OrderIntent(
        view.symbol, Side.BUY if side == "buy" else Side.SELL, qty, opens, leverage,
        MarginMode.CROSS if view.margin_mode == "cross" else MarginMode.ISOLATED,
    )
    refusal = check_order(snapshot, intent, risk_cfg)
    if refusal is not None:
        events.append(_event(now, AuditCode.RISK_ORDER_REFUSED, f"order refused: {refusal.value}", view.symbol,
                             Severity.WARN, reason=refusal.value, side=side, qty=qty, opens=opens,
                             leverage=leverage))
        return SymbolPlan(events=tuple(events), reason=refusal.value)
    if downgraded and opens:
        return SymbolPlan(events=tuple(events), reason="RATE_DOWNGRADED")
    order_type: OrderType = cfg.forced_order_type if forced else cfg.order_type
    price = limit_price(side, view.book, cfg, view.market.tick)
    if price is None:
        return SymbolPlan(events=tuple(events), reason="NO_BOOK")
    qty = first_child(qty, price, side, view.book, cfg, f)
    if qty == 0:
        return SymbolPlan(events=tuple(events), reason="NO_DEPTH")
    outcome = apply_venue_filters(view.symbol, qty, price, f, position, decision.reduces, now, leverage)
    events.extend(outcome.events)
    if outcome.order is None:
        return SymbolPlan(events=tuple(events), dust_lock=outcome.dust_lock, reason=outcome.reason or "")
    purpose: Purpose = "close" if decision.reduces else "target"
    return SymbolPlan(
        order=OrderPlan(
            view.symbol, side, outcome.order.qty, order_type,
            outcome.order.price if order_type == "limit" else None,
            decision.reduces, purpose, opens, target=decision.target_qty,
        ),
        events=tuple(events),
        reason="TRADE",
    )


def _dust(view: SymbolView, f: VenueFilters, now: datetime, events: tuple[AuditEvent, ...]) -> SymbolPlan:
    side: VenueSide = "sell" if view.position > 0 else "buy"
    outcome = apply_venue_filters(view.symbol, abs(view.position), view.mark, f, view.position, True, now)
    if outcome.order is not None:  # tradable after all (cannot happen when plan_rebalance saw no delta)
        return SymbolPlan(events=events, reason="AT_TARGET")
    return SymbolPlan(events=events + outcome.events, dust_lock=outcome.dust_lock, reason=outcome.reason or side)


def vet_target(symbol: str, qty: Decimal, stop_price: Decimal | None, symbols: Sequence[str],
               mark: Decimal | None, equity: Decimal | None, leverage_cap: Decimal) -> str | None:
    """Why a strategy's target cannot be approached (None: it can). A target is one entry from outside the
    engine: not a number, an unknown symbol, a stop at or under 0, or a notional beyond what the equity
    carries at the symbol's leverage cap (a 1e30 target would otherwise be chased order after order until
    the margin ran out) is refused whole, and the symbol keeps its previous target."""
    if symbol not in symbols:
        return "UNKNOWN_SYMBOL"
    if not isinstance(qty, Decimal) or not qty.is_finite():
        return "TARGET_NOT_A_NUMBER"
    if stop_price is not None and (not isinstance(stop_price, Decimal) or not stop_price.is_finite()
                                   or stop_price <= 0):
        return "STOP_NOT_A_PRICE"
    if mark is not None and equity is not None and mark > 0 and abs(qty) * mark > max(equity, ZERO) * leverage_cap:
        return "TARGET_OVER_LEVERAGE_CAP"
    return None
