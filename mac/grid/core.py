"""The pure grid core: ``step(state, bar, pool_view, params, ctx) -> (state, signals, events)``.

One function drives both the backtest and the live node. It reads one bar, the pool as the vault sees it
(``PoolView``, or ``None`` in reference mode) and returns a new frozen ``GridState`` with the signals to
send and typed events to log. No IO, no clock, no threads.

Modes (``params.mode``):

* ``reference`` - reference-grid.md bar for bar: every decision fills at the deciding bar's close, one
  symbol, no pool, no T+1, no penalty. Cash is exact (``Decimal``), commission ``rate * shares * P``.
* ``realistic`` - the same decisions plus the pool rules (layer-0 reserve, buy-step penalty with
  hysteresis), T+1 with a base position, and real order handling: a signal stays *pending* until the
  caller reports its outcome with ``apply_fill`` / ``apply_reject``; a lot with a pending order gets no
  new signal.

Decision arithmetic is IEEE double in the order reference-grid.md writes it; money is ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import NamedTuple, Protocol, cast

from mac.grid.indicators import IndicatorPeriods, IndicatorState, IndicatorValues, update_indicators
from mac.grid.params import CompiledParams, GridParams, compile_params
from shared_schema.ledger_math import sell_budget as ledger_sell_budget
from shared_schema.ledger_math import split_shares, utilization
from shared_schema.order_ids import base36

FAR_PAST = -(10**9)
BUY = "BUY"
SELL = "SELL"

# lot status
PENDING_BUY = "PENDING_BUY"
OPEN = "OPEN"
PENDING_SELL = "PENDING_SELL"

# signal reasons
GRID_BUY = "GRID_BUY"
TAKE_PROFIT = "TAKE_PROFIT"
FLOAT_STOP = "FLOAT_STOP"
FUSE_CLOSE = "FUSE_CLOSE"

_MS_PER_DAY = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000
_FEN = Decimal("0.01")
_EMPTY: tuple[()] = ()


class EventKind(str, Enum):
    PENALTY_ON = "PENALTY_ON"
    PENALTY_OFF = "PENALTY_OFF"
    LAYER0_REFUSED_RESERVE = "LAYER0_REFUSED_RESERVE"
    NOMINAL_CAP = "NOMINAL_CAP"  # a triggered buy would pass the symbol's nominal cap
    POOL_EXHAUSTED = "POOL_EXHAUSTED"  # a triggered buy would pass the physical pool
    BREAKER_PAUSE = "BREAKER_PAUSE"  # a triggered buy was skipped: ATR > ATR_AVG * mult
    COOLING = "COOLING"  # a triggered buy was skipped: cooling-off after going flat
    FLOAT_STOP = "FLOAT_STOP"
    ALL_LAYERS_OPEN = "ALL_LAYERS_OPEN"  # a buy filled the last layer
    NOT_SELLABLE_T1 = "NOT_SELLABLE_T1"  # a lot reached take-profit but cannot be sold today


@dataclass(frozen=True, slots=True)
class GridEvent:
    kind: EventKind
    t: int
    code: str
    detail: str = ""


class BarLike(Protocol):
    @property
    def t(self) -> int: ...
    @property
    def h(self) -> float: ...
    @property
    def l(self) -> float: ...  # noqa: E743
    @property
    def c(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PoolView:
    """The shared pool as the vault reports it: ``committed_fen`` is used + frozen over all symbols."""

    committed_fen: int
    physical_pool_fen: int
    utilization: float
    symbol_committed_fen: int | None = None  # this symbol's used + frozen
    symbol_cap_fen: int | None = None  # this symbol's nominal cap

    @classmethod
    def of(
        cls,
        committed_fen: int,
        physical_pool_fen: int,
        symbol_committed_fen: int | None = None,
        symbol_cap_fen: int | None = None,
    ) -> PoolView:
        return cls(
            committed_fen,
            physical_pool_fen,
            utilization(committed_fen, physical_pool_fen),  # the one shared function, exact amounts
            symbol_committed_fen,
            symbol_cap_fen,
        )


class StepContext(NamedTuple):
    """Per-bar extras. ``precomputed=True`` means ``indicators`` holds this bar's values (``None`` in
    warm-up) computed outside, e.g. vectorised by the backtest; otherwise the state's incremental
    indicators are updated. ``buy_step_multiplier`` widens the buy step on top of the penalty (the risk
    mode's DEGRADED widening, ``mac.grid.risk_policy``); sells and the take-profit are never affected.

    The venue's view of the position, for the sell budget (``sell_budget``): ``sellable_volume`` is the
    broker's ``can_use_volume`` (net of sells resting at the venue), ``position_volume`` its ``volume``,
    ``unplaced_sell_shares`` the unfilled shares of this grid's pending sells that have not reached the
    venue yet (``None``: assume none has, so all are deducted)."""

    indicators: IndicatorValues | None = None
    precomputed: bool = False
    sellable_volume: int | None = None
    buy_step_multiplier: float = 1.0
    position_volume: int | None = None
    unplaced_sell_shares: int | None = None


@dataclass(frozen=True, slots=True)
class Lot:
    client_order_id: str
    shares: int  # held (filled) shares
    cost: Decimal  # exact cost of the held shares, yuan, fees excluded
    buy_price: float  # the take-profit is measured from this price
    status: str  # PENDING_BUY / OPEN / PENDING_SELL
    layer_index: int
    buy_day: int  # trading day number (CST) of the buy, for T+1
    requested_shares: int = 0


@dataclass(frozen=True, slots=True)
class PendingOrder:
    client_order_id: str
    side: str
    price_milli: int
    shares: int
    release_client_order_ids: tuple[str, ...]
    reason: str
    t: int
    prev_anchor: float | None  # anchor before this order moved it
    prev_last_flat: int
    set_anchor: float | None  # anchor this order set (None: it did not move it)
    set_last_flat: int | None
    filled_shares: int = 0
    filled_value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Signal:
    code: str
    side: str
    price_milli: int  # limit price in 0.001 ticks
    shares: int
    layer_index: int
    client_order_id: str
    release_client_order_ids: tuple[str, ...]
    reason: str
    t: int  # the deciding bar's time (epoch ms)

    @property
    def price(self) -> Decimal:
        return Decimal(self.price_milli) / 1000

    @property
    def amount_fen(self) -> int:
        """Notional in fen (exact for whole lots; half up for odd ones)."""
        return (self.price_milli * self.shares + 5) // 10


@dataclass(frozen=True, slots=True)
class GridState:
    code: str
    lots: tuple[Lot, ...] = ()
    anchor: float | None = None
    last_flat_index: int = FAR_PAST
    penalty_on: bool = False
    cash: Decimal = Decimal(0)
    orders: tuple[PendingOrder, ...] = ()
    indicators: IndicatorState = IndicatorState()
    signals_sent: int = 0

    @property
    def open_shares(self) -> int:
        return sum(lot.shares for lot in self.lots)

    @property
    def cost(self) -> Decimal:
        return sum((lot.cost for lot in self.lots), Decimal(0))

    def order(self, client_order_id: str) -> PendingOrder | None:
        for o in self.orders:
            if o.client_order_id == client_order_id:
                return o
        return None


class GridError(ValueError):
    """A call that contradicts the grid state (unknown order, bad fill)."""


def initial_state(params: GridParams | CompiledParams) -> GridState:
    p = params.source if isinstance(params, CompiledParams) else params
    periods = IndicatorPeriods(
        p.atr_period, p.ma_period, p.slope_lag, p.slope_span, p.atr_avg_period, p.rsi_period
    )
    return GridState(code=p.code, indicators=IndicatorState(periods))


# ------------------------------------------------------------------------------------------ helpers


def trading_day(t_ms: int) -> int:
    """Day number of an epoch-ms timestamp in China time (pure arithmetic, no clock)."""
    return (t_ms + _CST_OFFSET_MS) // _MS_PER_DAY


def make_client_order_id(code_tag: str, side: str, t_ms: int, n: int) -> str:
    """``G`` + 4 code digits + B/S + base-36 CST day + HHMM + base-36 index within the bar.

    E.g. ``G9201B FTV 0931 0`` -> ``G9201BFTV09310`` (14 chars, ASCII). Deterministic from symbol, bar
    time and counter, unique across days (the day is absolute) and restarts (a replayed bar yields the
    same id, which the executor deduplicates).
    """
    local = t_ms + _CST_OFFSET_MS
    day, ms = divmod(local, _MS_PER_DAY)
    minutes = ms // 60_000
    return f"G{code_tag}{side[0]}{base36(day)}{minutes // 60:02d}{minutes % 60:02d}{base36(n)}"


def price_decimal(price: float) -> Decimal:
    return Decimal(repr(price))


def commission(params: CompiledParams, value: Decimal) -> Decimal:
    """Reference: exact ``rate * value``. Realistic: that, at least the minimum, rounded to the fen."""
    fee = params.commission_rate * value
    if params.realistic:
        fee = (
            max(fee, params.commission_min).quantize(_FEN, rounding=ROUND_HALF_UP)
            if value > 0
            else Decimal(0)
        )
    return fee


def penalty_after(on: bool, utilization: float, trigger: float, release: float) -> bool:
    """The buy-step penalty's hysteresis: on above ``trigger``, off only below ``release``, else unchanged.

    The one definition of the rule: the grid step, the node and the dashboard all call it.
    """
    if on:
        return not utilization < release
    return utilization > trigger


def unplaced_sell_shares(state: GridState, at_venue: Collection[str]) -> int:
    """Unfilled shares of this grid's pending sells whose ``client_order_id`` is not in ``at_venue``."""
    return sum(
        o.shares - o.filled_shares for o in state.orders if o.side == SELL and o.client_order_id not in at_venue
    )


def sell_budget(
    state: GridState,
    base_position_shares: int,
    sellable_volume: int | None,
    position_volume: int | None = None,
    unplaced: int | None = None,
) -> int | None:
    """Shares the grid may still put into new sells now; ``None`` when the venue's view is unknown.

    T+1 with a base position (domain notes): shares are fungible at the exchange, so any grid lot,
    one bought today included, may be sold while the venue's ``can_use_volume`` covers it; selling
    today's lot uses base shares, and today's buy restores the base (sellable again tomorrow). The
    budget is ``can_use_volume`` minus the grid's sells the venue does not know yet (resting sells are
    already out of ``can_use_volume``; ``unplaced=None`` deducts every pending sell, the safe reading),
    and never more than ``position_volume - base - unfilled pending sells``, so the position never ends
    under the configured base even when the books and the venue disagree. The arithmetic is
    ``shared_schema.ledger_math.sell_budget``, the one the executor's forced reduction uses too.
    """
    if sellable_volume is None:
        return None
    pending = sum(o.shares - o.filled_shares for o in state.orders if o.side == SELL) if state.orders else 0
    return ledger_sell_budget(
        sellable_volume, pending if unplaced is None else unplaced, position_volume, base_position_shares, pending
    )


# ------------------------------------------------------------------------------------------ the step


def step(
    state: GridState,
    bar: BarLike,
    pool_view: PoolView | None,
    params: CompiledParams | GridParams,
    ctx: StepContext | IndicatorValues | None = None,
) -> tuple[GridState, tuple[Signal, ...], tuple[GridEvent, ...]]:
    """Decide on one bar at its close. Returns the new state, the signals and the events.

    ``ctx`` may be ``None`` (indicators updated incrementally from the state, the live node's way), a
    ``StepContext``, or an ``IndicatorValues`` as shorthand for precomputed indicators.

    Reference mode applies every signal at once (fill at the close). Realistic mode leaves BUY lots
    ``PENDING_BUY`` and sold lots ``PENDING_SELL`` until ``apply_fill`` / ``apply_reject``.
    """
    cp = params if isinstance(params, CompiledParams) else compile_params(params)
    ind: IndicatorValues | None
    sctx: StepContext | None = None
    if ctx.__class__ is IndicatorValues:
        ind = ctx  # shorthand for StepContext(ctx, precomputed=True): the backtest's hot loop
    else:
        sctx = cast("StepContext | None", ctx)
        if sctx is not None and sctx.precomputed:
            ind = sctx.indicators
        else:
            ind_state, ind = update_indicators(state.indicators, bar.h, bar.l, bar.c)
            state = replace(state, indicators=ind_state)
    if ind is None:
        return state, _EMPTY, _EMPTY
    if cp.no_trade_minutes and ((bar.t + _CST_OFFSET_MS) % _MS_PER_DAY) // 60_000 in cp.no_trade_minutes:
        # This bar closes a session: an order decided on it would reach the venue after the bell.
        return state, _EMPTY, _EMPTY

    price = bar.c
    lots = state.lots
    anchor = state.anchor
    changed = False
    if anchor is None:
        anchor = price
        changed = True
    realistic = cp.realistic

    # penalty hysteresis: on above the trigger, off only below the release, unchanged in between
    penalty = state.penalty_on
    events: list[GridEvent] | None = None
    if realistic and pool_view is not None:
        u = pool_view.utilization
        now_on = penalty_after(penalty, u, cp.penalty_trigger, cp.penalty_release)
        if now_on != penalty:
            kind = EventKind.PENALTY_ON if now_on else EventKind.PENALTY_OFF
            events = [GridEvent(kind, bar.t, cp.code, f"{u:.4f}")]
            penalty = now_on
            changed = True

    if realistic:
        n_before = 0
        for lot in lots:
            if lot.status != PENDING_SELL:
                n_before += 1
    else:
        n_before = len(lots)

    # 1. step, take-profit and size
    atr = ind.atr
    step_ = atr / price * cp.atr_grid_factor
    floor = cp.grid_step_floor
    if floor > step_:
        step_ = floor
    tp = cp.sell_profit_threshold
    size = 1.0
    slope = ind.slope
    if slope > 0:
        step_ *= cp.up_step_mult
        tp *= cp.up_tp_mult
        size = cp.up_size
    elif slope < 0:
        step_ *= cp.down_step_mult
        tp *= cp.down_tp_mult
        size = cp.down_size
    step_ += cp.layer_step_bonus * n_before
    if penalty:
        step_ *= cp.penalty_multiplier  # buys only: the take-profit is never penalised
    if sctx is not None and sctx.buy_step_multiplier != 1.0:
        step_ *= sctx.buy_step_multiplier  # risk mode (DEGRADED widen): buys only, like the penalty

    # 2. breaker and trigger, on the lots and anchor before any sell
    pause = atr > ind.atr_avg * cp.breaker_mult
    triggered = price <= anchor * (1 - step_)

    signals: list[Signal] | None = None
    last_flat = state.last_flat_index
    n_after = n_before
    usable_index = ind.usable_index

    # 3. sells (a cheap scan first: on most bars no lot is near its take-profit)
    need_sells = cp.float_stop
    if n_before and not need_sells:
        mult = 1 + tp * cp.sell_threshold_factor
        for lot in lots:
            if price >= lot.buy_price * mult:
                need_sells = True
                break
    if need_sells and n_before:
        sells, new_lots, ev = _decide_sells(state, lots, cp, bar, price, tp, sctx)
        if ev:
            events = (events or []) + ev
        if sells:
            changed = True
            signals = []
            n_after = n_before - sum(len(ids) for ids, _ in sells)
            flat_now = n_after == 0
            prev_anchor, prev_flat = anchor, last_flat
            if flat_now:
                last_flat = usable_index
                anchor = price
            cash = state.cash
            orders = list(state.orders)
            for i, (ids, reason) in enumerate(sells):
                sold = [lot for lot in lots if lot.client_order_id in ids]
                shares = sum(lot.shares for lot in sold)
                coid = make_client_order_id(cp.code_tag, SELL, bar.t, i)
                sig = Signal(
                    cp.code, SELL, _milli(price) - cp.limit_offset_ticks, shares, sold[0].layer_index, coid, ids, reason,
                    bar.t
                )
                signals.append(sig)
                if realistic:
                    orders.append(
                        PendingOrder(
                            coid,
                            SELL,
                            sig.price_milli,
                            shares,
                            ids,
                            reason,
                            bar.t,
                            prev_anchor,
                            prev_flat,
                            anchor if flat_now else None,
                            last_flat if flat_now else None,
                        )
                    )
                else:
                    value = price_decimal(price) * shares
                    cash += value - commission(cp, value)
            state = replace(state, lots=new_lots, cash=cash, orders=tuple(orders))
            lots = new_lots

    # 4. buy
    if n_after < cp.layers and triggered:
        if pause:
            events = (events or []) + [GridEvent(EventKind.BREAKER_PAUSE, bar.t, cp.code)]
        elif (
            cp.cooling
            and n_after == 0
            and (usable_index - last_flat)
            < (cp.cooling_bars_oversold if ind.rsi < cp.cooling_rsi else cp.cooling_bars)
        ):
            events = (events or []) + [GridEvent(EventKind.COOLING, bar.t, cp.code)]
        else:
            k = n_after
            money = cp.nominal_cap * cp.weights[k] / cp.sum_weights * size
            shares = int(money / price / cp.lot) * cp.lot
            if shares > 0:
                pm = _milli(price) + cp.limit_offset_ticks
                amount_fen = (pm * shares + 5) // 10
                refused = _pool_refusal(pool_view, amount_fen, k, cp) if realistic and pool_view else None
                if refused is not None:
                    events = (events or []) + [GridEvent(refused, bar.t, cp.code, f"amount_fen={amount_fen}")]
                else:
                    changed = True
                    n_sig = len(signals) if signals else 0
                    coid = make_client_order_id(cp.code_tag, BUY, bar.t, n_sig)
                    sig = Signal(cp.code, BUY, pm, shares, k, coid, (), GRID_BUY, bar.t)
                    signals = (signals or []) + [sig]
                    day = trading_day(bar.t)
                    if realistic:
                        lot = Lot(coid, 0, Decimal(0), price, PENDING_BUY, k, day, shares)
                        order = PendingOrder(
                            coid, BUY, pm, shares, (), GRID_BUY, bar.t, anchor, last_flat, price, None
                        )
                        state = replace(state, lots=lots + (lot,), orders=state.orders + (order,))
                    else:
                        value = price_decimal(price) * shares
                        lot = Lot(coid, shares, value, price, OPEN, k, day, shares)
                        state = replace(
                            state, lots=lots + (lot,), cash=state.cash - value - commission(cp, value)
                        )
                        if k + 1 == cp.layers:
                            events = (events or []) + [GridEvent(EventKind.ALL_LAYERS_OPEN, bar.t, cp.code)]
                    anchor = price

    if not changed:
        return state, _EMPTY, tuple(events) if events else _EMPTY
    new_state = replace(
        state,
        anchor=anchor,
        last_flat_index=last_flat,
        penalty_on=penalty,
        signals_sent=state.signals_sent + (len(signals) if signals else 0),
    )
    return new_state, tuple(signals) if signals else _EMPTY, tuple(events) if events else _EMPTY


def _pool_refusal(pv: PoolView, amount_fen: int, layer_index: int, cp: CompiledParams) -> EventKind | None:
    """The vault's rules, checked before sending so a full pool does not turn into a refusal storm.

    Same order as ``GlobalVault.check_allocation``: nominal cap, physical pool, then the layer-0 reserve.
    """
    if pv.symbol_cap_fen is not None and pv.symbol_committed_fen is not None:
        if pv.symbol_committed_fen + amount_fen > pv.symbol_cap_fen:
            return EventKind.NOMINAL_CAP
    after = pv.committed_fen + amount_fen
    if after > pv.physical_pool_fen:
        return EventKind.POOL_EXHAUSTED
    if layer_index == 0 and Decimal(after) > Decimal(pv.physical_pool_fen) * (1 - cp.reserve_ratio):
        return EventKind.LAYER0_REFUSED_RESERVE
    return None


def _milli(price: float) -> int:
    return int(round(price * 1000))


def _decide_sells(
    state: GridState,
    lots: tuple[Lot, ...],
    cp: CompiledParams,
    bar: BarLike,
    price: float,
    tp: float,
    ctx: StepContext | None,
) -> tuple[list[tuple[tuple[str, ...], str]], tuple[Lot, ...], list[GridEvent] | None]:
    """Which lots to sell on this bar: ``[(release ids, reason)]``, the lots after it, events."""
    realistic = cp.realistic
    events: list[GridEvent] | None = None
    if realistic:
        today = trading_day(bar.t)
        budget = (
            None
            if ctx is None
            else sell_budget(
                state, cp.base_position_shares, ctx.sellable_volume, ctx.position_volume, ctx.unplaced_sell_shares
            )
        )

        def sellable(lot: Lot) -> bool:
            # With the venue's view known, today's lots may go against sellable base shares (the budget
            # decides); without it only lots bought before today, which T+1 surely allows.
            return lot.status == OPEN and lot.shares > 0 and (budget is not None or lot.buy_day < today)

    if cp.float_stop:
        held = [lot for lot in lots if lot.status == OPEN] if realistic else list(lots)
        shares = 0
        cost = 0.0
        for lot in held:
            shares += lot.shares
            cost += float(lot.cost)
        if held and shares * price - cost < -cp.max_cycle_float_loss:
            chosen = [lot for lot in held if sellable(lot)] if realistic else held
            if realistic and budget is not None:
                chosen = _within_budget(chosen, budget)
            events = [GridEvent(EventKind.FLOAT_STOP, bar.t, cp.code, f"lots={len(chosen)}")]
            if not chosen:
                return [], lots, events
            ids = tuple(lot.client_order_id for lot in chosen)
            return [(ids, FLOAT_STOP)], _mark_sold(lots, ids, realistic), events

    mult = 1 + tp * cp.sell_threshold_factor
    sells: list[tuple[tuple[str, ...], str]] = []
    for lot in lots:
        if price >= lot.buy_price * mult:
            if realistic:
                if lot.status != OPEN:
                    continue
                if not sellable(lot) or (budget is not None and lot.shares > budget):
                    events = (events or []) + [
                        GridEvent(EventKind.NOT_SELLABLE_T1, bar.t, cp.code, lot.client_order_id)
                    ]
                    continue
                if budget is not None:
                    budget -= lot.shares
            sells.append(((lot.client_order_id,), TAKE_PROFIT))
    if not sells:
        return sells, lots, events
    ids = tuple(i for pair in sells for i in pair[0])
    return sells, _mark_sold(lots, ids, realistic), events


def _within_budget(lots: list[Lot], budget: int) -> list[Lot]:
    out = []
    for lot in lots:
        if lot.shares <= budget:
            out.append(lot)
            budget -= lot.shares
    return out


def _mark_sold(lots: tuple[Lot, ...], ids: tuple[str, ...], realistic: bool) -> tuple[Lot, ...]:
    if realistic:
        return tuple(replace(lot, status=PENDING_SELL) if lot.client_order_id in ids else lot for lot in lots)
    return tuple(lot for lot in lots if lot.client_order_id not in ids)


# ------------------------------------------------------------------------------------ close all (FUSE)


def close_all(
    state: GridState,
    bar: BarLike,
    params: CompiledParams | GridParams,
    sellable_volume: int | None = None,
    position_volume: int | None = None,
    unplaced_sell_shares: int | None = None,
) -> tuple[GridState, tuple[Signal, ...]]:
    """FUSE's economic full close: a SELL (``FUSE_CLOSE``) for every OPEN lot that may be sold today.

    One signal per lot at the close minus ``limit_offset_ticks``, each lot marked ``PENDING_SELL``. T+1
    aware, with the take-profit's rule (``sell_budget``): with the venue's ``can_use_volume`` known, lots
    go oldest first while it covers them (today's lots against sellable base shares), never taking the
    position under the base; without it a lot bought today stays. A lot left over is offered again on a
    later bar, as is one whose sell was rejected or expired. No signal on a bar that closes a session.
    When nothing is left open the anchor moves to the close (as when take-profits go flat), so a later
    reset does not buy against the pre-crash anchor; a sell that fails restores it.
    """
    cp = params if isinstance(params, CompiledParams) else compile_params(params)
    if not cp.realistic:
        raise GridError("close_all needs realistic mode (orders are pending until their outcome is known)")
    if cp.no_trade_minutes and ((bar.t + _CST_OFFSET_MS) % _MS_PER_DAY) // 60_000 in cp.no_trade_minutes:
        return state, _EMPTY
    today = trading_day(bar.t)
    budget = sell_budget(state, cp.base_position_shares, sellable_volume, position_volume, unplaced_sell_shares)
    chosen = [
        lot
        for lot in state.lots
        if lot.status == OPEN and lot.shares > 0 and (budget is not None or lot.buy_day < today)
    ]
    if budget is not None:
        chosen = _within_budget(chosen, budget)
    if not chosen:
        return state, _EMPTY
    ids = tuple(lot.client_order_id for lot in chosen)
    lots = _mark_sold(state.lots, ids, True)
    flat_now = all(lot.status == PENDING_SELL for lot in lots)
    prev_anchor = state.anchor
    anchor = bar.c if flat_now else state.anchor
    price_milli = _milli(bar.c) - cp.limit_offset_ticks
    used = {o.client_order_id for o in state.orders}
    signals: list[Signal] = []
    orders = list(state.orders)
    n = 0
    for lot in chosen:
        coid = make_client_order_id(cp.code_tag, SELL, bar.t, n)
        while coid in used:  # a take-profit sell decided on this same bar took the index
            n += 1
            coid = make_client_order_id(cp.code_tag, SELL, bar.t, n)
        used.add(coid)
        release = (lot.client_order_id,)
        signals.append(
            Signal(cp.code, SELL, price_milli, lot.shares, lot.layer_index, coid, release, FUSE_CLOSE, bar.t)
        )
        orders.append(
            PendingOrder(
                coid,
                SELL,
                price_milli,
                lot.shares,
                release,
                FUSE_CLOSE,
                bar.t,
                prev_anchor,
                state.last_flat_index,
                anchor if flat_now else None,
                state.last_flat_index if flat_now else None,
            )
        )
    new_state = replace(
        state, lots=lots, orders=tuple(orders), anchor=anchor, signals_sent=state.signals_sent + len(signals)
    )
    return new_state, tuple(signals)


# ------------------------------------------------------------------------------------ order outcomes


def apply_fill(
    state: GridState,
    client_order_id: str,
    filled_shares: int,
    avg_price: float | Decimal,
    final: bool,
    params: CompiledParams | GridParams | None = None,
    fees: Decimal | None = None,
) -> GridState:
    """Apply an order's *cumulative* fill. Unknown ids and stale totals change nothing (idempotent).

    A BUY lot holds what filled (``final`` makes it OPEN; a final fill of 0 is a reject). A SELL moves cash
    as it fills; when final, fully sold lots leave and a partial fill returns every lot with the unsold
    part pro rata (the vault's rule), so the grid and the vault agree on what each lot still holds.
    ``fees`` is the order's cumulative commission; without it the params' commission model is used.
    """
    order = state.order(client_order_id)
    if order is None or filled_shares < order.filled_shares:
        return state
    if filled_shares > order.shares:
        raise GridError(f"{client_order_id}: filled {filled_shares} > ordered {order.shares}")
    if final and filled_shares == 0:
        return apply_reject(state, client_order_id)
    avg = avg_price if isinstance(avg_price, Decimal) else price_decimal(float(avg_price))
    value = avg * filled_shares
    if fees is None:
        cp = (
            None
            if params is None
            else params
            if isinstance(params, CompiledParams)
            else compile_params(params)
        )
        fees = commission(cp, value) if cp is not None else Decimal(0)
    d_value = value - order.filled_value
    d_fees = fees - order.fees
    new_order = replace(order, filled_shares=filled_shares, filled_value=value, fees=fees)
    if order.side == BUY:
        cash = state.cash - d_value - d_fees
        lots = []
        for lot in state.lots:
            if lot.client_order_id == client_order_id:
                lot = replace(lot, shares=filled_shares, cost=value)
                if final:
                    lot = replace(lot, status=OPEN, buy_price=float(avg))
            lots.append(lot)
    else:
        cash = state.cash + d_value - d_fees
        lots = list(state.lots)
        if final:
            lots = _settle_sell(lots, order, filled_shares)
    orders = tuple(o for o in state.orders if o.client_order_id != client_order_id)
    if not final:
        orders = tuple(new_order if o.client_order_id == client_order_id else o for o in state.orders)
    state = replace(state, lots=tuple(lots), cash=cash, orders=orders)
    if final and order.side == SELL and filled_shares < order.shares:
        state = _undo_flatten(state, order)
    return state


def _settle_sell(lots: list[Lot], order: PendingOrder, filled: int) -> list[Lot]:
    """The lots after a sell's final fill: the shares sold are split as the vault splits them."""
    return take_sold_shares(lots, order.release_client_order_ids, filled)


def take_sold_shares(
    lots: Sequence[Lot], release_ids: Sequence[str], filled: int, open_only: bool = False
) -> list[Lot]:
    """``lots`` after ``filled`` shares were sold from the lots ``release_ids`` names (``open_only``: only
    those still OPEN). The shares are split as the vault splits them (``split_shares`` over the named lots'
    holdings, in the order named), so both books agree per lot; each lot keeps its unsold part, OPEN, with
    its cost in proportion."""
    eligible = {lot.client_order_id: lot.shares for lot in lots if not open_only or lot.status == OPEN}
    named = [c for c in dict.fromkeys(release_ids) if c in eligible]
    taken = dict(zip(named, split_shares(filled, [eligible[c] for c in named]), strict=True))
    out = []
    for lot in lots:
        if lot.client_order_id not in taken:
            out.append(lot)
            continue
        start = lot.shares
        left = start - taken[lot.client_order_id]
        if left > 0:
            cost = (lot.cost * left / start) if start else Decimal(0)
            out.append(replace(lot, shares=left, cost=cost, status=OPEN))
    return out


def _undo_flatten(state: GridState, order: PendingOrder) -> GridState:
    """A sell that flattened the lots did not complete: if nothing moved since, restore anchor/last flat."""
    if order.set_anchor is None:
        return state
    if state.anchor == order.set_anchor and state.last_flat_index == order.set_last_flat:
        return replace(state, anchor=order.prev_anchor, last_flat_index=order.prev_last_flat)
    return state


def apply_reject(state: GridState, client_order_id: str) -> GridState:
    """The order ended without (further) fills: rejected, cancelled or expired.

    A BUY with nothing filled removes its pending lot and restores the anchor (if no later decision moved
    it); a partly filled BUY keeps the lot with what filled. A SELL returns its lots to OPEN (a partly
    filled one keeps the unsold part). Unknown ids change nothing.
    """
    order = state.order(client_order_id)
    if order is None:
        return state
    if order.filled_shares > 0:
        return apply_fill(
            state,
            client_order_id,
            order.filled_shares,
            order.filled_value / order.filled_shares,
            True,
            fees=order.fees,
        )
    orders = tuple(o for o in state.orders if o.client_order_id != client_order_id)
    if order.side == BUY:
        lots = tuple(lot for lot in state.lots if lot.client_order_id != client_order_id)
        anchor = state.anchor
        if anchor == order.set_anchor:
            anchor = order.prev_anchor
        return replace(state, lots=lots, orders=orders, anchor=anchor)
    ids = order.release_client_order_ids
    lots = tuple(replace(lot, status=OPEN) if lot.client_order_id in ids else lot for lot in state.lots)
    return _undo_flatten(replace(state, lots=lots, orders=orders), order)
