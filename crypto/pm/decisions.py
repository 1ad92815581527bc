"""The position manager's decisions: pure functions of (position, market view, config, time) -> plan.

No IO, no wall clock (time arrives as epoch ms), exact Decimal. The shell (``crypto.pm.manager``) reads
Redis and the venue, calls ``govern`` and hands the plan's actions to the execution port.

Conventions: ``direction`` is +1 for a long and -1 for a short; ``qty`` is the open quantity in base units
(always > 0); ``margin`` is the isolated margin posted (for spot, the cost basis, i.e. 1x).

- PnL = (mark - entry) x Q x dir; ROE = PnL / margin; liquidation buffer LB = |mark - liq| / mark.
- Stops only tighten (``tighten``): a long stop never moves down, a short stop never moves up.
- Ladder take-profit: rungs fire once each, in ROE order; after each partial close Q and the margin are
  recomputed (margin pro rata) and the next rung's size is a fraction of what is left. The average entry
  does **not** change on a sell (WAC: a sell removes basis at the average cost), so neither PnL per unit
  nor the stop levels move because of a take-profit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Literal

from crypto.pm.config import LockLevel, PmConfig, Rung

ZERO = Decimal(0)
ONE = Decimal(1)

ActionKind = Literal["STOP_MOVE", "TP_PARTIAL", "ADD_ON", "RISK_DOWNGRADE", "EXIT"]
EventKind = Literal["ENTRY", "EXIT", "ADD", "STOP_MOVE", "TP_PARTIAL", "STAGNATED", "RISK_DOWNGRADE"]


# --- formulas -------------------------------------------------------------------------------------------

def pnl(mark: Decimal, entry: Decimal, qty: Decimal, direction: int) -> Decimal:
    """Unrealised PnL of a perp (or spot, direction +1): (mark - entry) x Q x dir."""
    return (mark - entry) * qty * direction


def roe(pnl_value: Decimal, margin: Decimal) -> Decimal:
    """Return on (isolated) margin; 0 when no margin is posted (nothing at stake)."""
    return pnl_value / margin if margin > 0 else ZERO


def liq_buffer(mark: Decimal, liq: Decimal) -> Decimal:
    """|mark - liq| / mark: how far (as a fraction of the mark) the price is from liquidation."""
    if mark <= 0:
        raise ValueError("mark must be > 0")
    return abs(mark - liq) / mark


def tighten(prev: Decimal | None, candidate: Decimal, direction: int) -> Decimal:
    """The tighter of two stops: max for a long, min for a short. A stop never loosens."""
    if prev is None:
        return candidate
    return max(prev, candidate) if direction > 0 else min(prev, candidate)


def to_tick(price: Decimal, tick: Decimal | None, direction: int) -> Decimal:
    """Round a stop to the tick toward the position's favour (long up, short down), so a lock level
    locks at least what it promises."""
    if not tick or tick <= 0:
        return price
    steps = (price / tick).to_integral_value(rounding=ROUND_CEILING if direction > 0 else ROUND_FLOOR)
    return steps * tick


def to_step(qty: Decimal, step: Decimal | None) -> Decimal:
    """Quantity rounded down to the lot step (never more than asked)."""
    if not step or step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def atr_stop(entry: Decimal, atr: Decimal, k: Decimal, direction: int, prev: Decimal | None = None,
             tick: Decimal | None = None) -> Decimal:
    """ATR stop: long max(prev, entry - k x ATR), short min(prev, entry + k x ATR)."""
    candidate = to_tick(entry - direction * k * atr, tick, direction)
    return tighten(prev, candidate, direction)


def lock_level_reached(current_roe: Decimal, locks: tuple[LockLevel, ...]) -> int | None:
    """Index of the highest lock level whose trigger ROE has been reached, None below the first."""
    reached = None
    for i, level in enumerate(locks):
        if current_roe >= level.trigger_roe:
            reached = i
    return reached


def roe_lock_stop(entry: Decimal, margin: Decimal, qty: Decimal, direction: int, lock_roe: Decimal,
                  prev: Decimal | None = None, tick: Decimal | None = None) -> Decimal:
    """Stop that locks ``lock_roe`` of the margin: long max(prev, entry + rho x margin / Q), short mirrored."""
    candidate = to_tick(entry + direction * lock_roe * margin / qty, tick, direction)
    return tighten(prev, candidate, direction)


def add_on_qty(q0: Decimal, j: int, gamma: Decimal) -> Decimal:
    """Q_add(j) = Q0 x gamma^j for the j-th add (j = 1, 2, ...)."""
    if j < 1:
        raise ValueError("add-on index starts at 1")
    return q0 * gamma**j


def stop_crossed(mark: Decimal, stop: Decimal, direction: int) -> bool:
    """True when the mark is at or beyond the stop (a long's mark <= stop)."""
    return mark <= stop if direction > 0 else mark >= stop


# --- the position and the plan ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ManagedPosition:
    """One governed position as the manager keeps it (Redis ``pos:*`` and the snapshot store)."""

    pos_id: str
    symbol: str
    kind: Literal["swap", "spot"]
    direction: int
    qty: Decimal
    entry: Decimal
    margin: Decimal
    q0: Decimal
    opened_ms: int
    stop: Decimal | None = None
    stop_coid: str | None = None  # client order id of the live reduce-only stop
    stop_seq: int = 0
    lock_index: int = -1  # highest ROE lock applied
    ladder_fired: tuple[int, ...] = ()
    add_count: int = 0
    adds_qty: Decimal = ZERO
    best_roe: Decimal = ZERO
    last_progress_ms: int = 0
    last_action_ms: int = 0
    stagnated: bool = False
    realised_pnl: Decimal = ZERO
    downgrades: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError("direction must be +1 or -1")
        if self.kind == "spot" and self.direction != 1:
            raise ValueError("a spot position is long only")


@dataclass(frozen=True)
class MarketView:
    """What a governance pass knows of the market, all as of ``ts_ms``."""

    mark: Decimal
    ts_ms: int
    atr: Decimal | None = None
    regime: str | None = None
    liq_price: Decimal | None = None
    signal: int | None = None  # +1 / -1 trend signal, None when there is none
    tick: Decimal | None = None
    qty_step: Decimal | None = None
    min_qty: Decimal = ZERO


@dataclass(frozen=True)
class Action:
    """One thing to do at the venue. ``intent_id`` is deterministic from the position and its counters, so
    the same decision made twice (a retry, a restart) is the same intent and the same client order id."""

    kind: ActionKind
    intent_id: str
    pos_id: str
    symbol: str
    qty: Decimal = ZERO  # base units (TP_PARTIAL, ADD_ON, RISK_DOWNGRADE, EXIT; STOP_MOVE: stop size)
    side: Literal["buy", "sell"] = "sell"
    stop: Decimal | None = None  # STOP_MOVE: the new trigger price
    cancel_coids: tuple[str, ...] = ()  # STOP_MOVE: stops to cancel once the new one is acknowledged
    reduce_only: bool = True
    reason: str = ""


@dataclass(frozen=True)
class Event:
    kind: EventKind
    pos_id: str
    symbol: str
    ts_ms: int
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    position: ManagedPosition  # the state once every action has been carried out
    actions: tuple[Action, ...]
    events: tuple[Event, ...]
    pnl: Decimal
    roe: Decimal
    liq_buffer: Decimal | None

    @property
    def reduces_only(self) -> bool:
        return all(a.reduce_only for a in self.actions)


def close_side(direction: int) -> Literal["buy", "sell"]:
    return "sell" if direction > 0 else "buy"


def open_side(direction: int) -> Literal["buy", "sell"]:
    return "buy" if direction > 0 else "sell"


def stop_coid_for(pos_id: str, seq: int) -> str:
    return f"{pos_id}:sl:{seq}"


def entry_stop_plan(pos: ManagedPosition, view: MarketView, cfg: PmConfig) -> Plan:
    """The protective stop of a new position (placed within 1 s of the fill)."""
    return _with_stop(pos, _fallback_stop(pos, view, cfg), view, "ENTRY_STOP", ())


def restop_plan(pos: ManagedPosition, view: MarketView, reason: str = "RESIZE") -> Plan:
    """Re-place the stop at its level for the position's current size (after a reconciliation)."""
    if pos.stop is None:
        raise ValueError("no stop to re-place")
    return _with_stop(pos, pos.stop, view, reason, ())


def _fallback_stop(pos: ManagedPosition, view: MarketView, cfg: PmConfig) -> Decimal:
    """The ATR stop when an ATR is known, else the stop at the liquidation-buffer distance (entry moved by
    ``liq_buffer_min`` against the position)."""
    k = cfg.atr_k.get(view.regime or cfg.default_regime, cfg.atr_k[cfg.default_regime])
    if view.atr is not None and view.atr > 0:
        return atr_stop(pos.entry, view.atr, k, pos.direction, None, view.tick)
    return to_tick(pos.entry * (ONE - pos.direction * cfg.liq_buffer_min), view.tick, pos.direction)


def _with_stop(pos: ManagedPosition, level: Decimal, view: MarketView, reason: str,
               events: tuple[Event, ...]) -> Plan:
    seq = pos.stop_seq + 1
    coid = stop_coid_for(pos.pos_id, seq)
    cancels = (pos.stop_coid,) if pos.stop_coid else ()
    action = Action("STOP_MOVE", coid, pos.pos_id, pos.symbol, pos.qty, close_side(pos.direction), level,
                    cancels, True, reason)
    new = replace(pos, stop=level, stop_coid=coid, stop_seq=seq, last_action_ms=view.ts_ms)
    p = pnl(view.mark, pos.entry, pos.qty, pos.direction)
    ev = Event("STOP_MOVE", pos.pos_id, pos.symbol, view.ts_ms,
               {"from": "" if pos.stop is None else str(pos.stop), "to": str(level), "reason": reason})
    return Plan(new, (action,), (*events, ev), p, roe(p, pos.margin), None)


def govern(pos: ManagedPosition, view: MarketView, cfg: PmConfig, *, reduce_only: bool = False) -> Plan:
    """One governance pass over one position.

    Order: guard a crossed stop (exit), liquidation-buffer downgrade, ladder take-profit, stop tightening
    (ATR and ROE locks), add-on, stagnation. ``reduce_only`` (the OMS is down, or risk says so) forbids the
    add-on and anything else that adds exposure.
    """
    now = view.ts_ms
    p = pnl(view.mark, pos.entry, pos.qty, pos.direction)
    r = roe(p, pos.margin)
    lb = liq_buffer(view.mark, view.liq_price) if view.liq_price is not None and view.mark > 0 else None
    actions: list[Action] = []
    events: list[Event] = []
    cur = pos
    if pos.closed or pos.qty <= 0:
        return Plan(pos, (), (), p, r, lb)

    # A stop the venue should have fired but the position is still there (stop missing, or market data
    # was down and we guard on the last mid): close it now, reduce-only.
    if cur.stop is not None and stop_crossed(view.mark, cur.stop, cur.direction):
        return _exit(cur, view, "STOP_GUARD", p, r, lb)

    if lb is not None and lb < cfg.liq_buffer_min:
        q = to_step(cur.qty * cfg.downgrade_fraction, view.qty_step)
        if q >= max(view.min_qty, ZERO) and q > 0:
            if cur.qty - q < view.min_qty or cur.qty - q <= 0:
                return _exit(cur, view, "LIQ_BUFFER", p, r, lb)
            n = cur.downgrades + 1
            intent = f"{cur.pos_id}:dg:{n}"  # numbered per position: a redecided downgrade is the same intent
            actions.append(Action("RISK_DOWNGRADE", intent, cur.pos_id, cur.symbol, q, close_side(cur.direction),
                                  reason="LIQ_BUFFER"))
            events.append(Event("RISK_DOWNGRADE", cur.pos_id, cur.symbol, now,
                                {"liq_buffer": str(lb), "qty": str(q)}))
            cur = replace(_reduced(cur, q, view.mark, now), downgrades=n)

    # Ladder take-profit: each rung once, sizes on what is left after the previous rung.
    for i, rung in enumerate(cfg.ladder):
        if i in cur.ladder_fired or r < rung.roe:
            continue
        q = _rung_qty(cur, rung, view)
        fired = tuple(sorted((*cur.ladder_fired, i)))
        if q <= 0:  # below the lot or the minimum: the rung is spent, nothing to send (dust)
            cur = replace(cur, ladder_fired=fired)
            continue
        if q >= cur.qty:
            plan = _exit(replace(cur, ladder_fired=fired), view, f"TP_RUNG_{i}", p, r, lb)
            return Plan(plan.position, (*actions, *plan.actions), (*events, *plan.events), p, r, lb)
        actions.append(Action("TP_PARTIAL", f"{cur.pos_id}:tp:{i}", cur.pos_id, cur.symbol, q,
                              close_side(cur.direction), reason=f"TP_RUNG_{i}"))
        events.append(Event("TP_PARTIAL", cur.pos_id, cur.symbol, now,
                            {"rung": str(i), "qty": str(q), "roe": str(r), "price": str(view.mark)}))
        cur = replace(_reduced(cur, q, view.mark, now), ladder_fired=fired)

    # Stops: the tighter of the current stop, the ATR stop and the highest ROE lock reached. A position
    # found without a stop (a crash between the fill and the stop) gets the entry stop first.
    level = cur.stop
    reason = ""
    if level is None:
        level, reason = _fallback_stop(cur, view, cfg), "ENTRY_STOP"
    if view.atr is not None and view.atr > 0:
        k = cfg.atr_k.get(view.regime or cfg.default_regime, cfg.atr_k[cfg.default_regime])
        cand = atr_stop(cur.entry, view.atr, k, cur.direction, level, view.tick)
        if cand != level:
            level, reason = cand, "ATR"
    reached = lock_level_reached(r, cfg.locks)
    lock_index = cur.lock_index
    if reached is not None and reached > cur.lock_index:
        cand = roe_lock_stop(cur.entry, cur.margin, cur.qty, cur.direction, cfg.locks[reached].lock_roe, level,
                             view.tick)
        lock_index = reached
        if cand != level:
            level, reason = cand, f"ROE_LOCK_{reached}"
    cur = replace(cur, lock_index=lock_index)
    if level is not None:
        if cur.stop is None or level != cur.stop:
            plan = _with_stop(cur, level, view, reason or "STOP", ())
            actions.extend(plan.actions)
            events.extend(plan.events)
            cur = plan.position
        elif actions:
            # The stop's size follows the position: re-place it for the smaller quantity (same level).
            plan = _with_stop(cur, level, view, "RESIZE", ())
            actions.extend(plan.actions)
            cur = plan.position

    # Add-on: same-direction signal, ROE at or above a positive gate, count and eta caps.
    if not reduce_only and not actions:
        add = decide_add_on(cur, view, cfg, r)
        if isinstance(add, Decimal):
            j = cur.add_count + 1
            actions.append(Action("ADD_ON", f"{cur.pos_id}:add:{j}", cur.pos_id, cur.symbol, add,
                                  open_side(cur.direction), reduce_only=False, reason=f"ADD_{j}"))
            events.append(Event("ADD", cur.pos_id, cur.symbol, now, {"j": str(j), "qty": str(add)}))
            cur = _added(cur, add, view.mark, now)
            if cur.stop is not None:
                # The stop covers the whole position: re-place it for the new size, at the tighter of the
                # old level and the ATR stop from the new average entry.
                level = cur.stop
                if view.atr is not None and view.atr > 0:
                    k = cfg.atr_k.get(view.regime or cfg.default_regime, cfg.atr_k[cfg.default_regime])
                    level = atr_stop(cur.entry, view.atr, k, cur.direction, level, view.tick)
                plan = _with_stop(cur, level, view, "ADD_RESIZE", ())
                actions.extend(plan.actions)
                cur = plan.position

    # Progress and stagnation.
    best = max(cur.best_roe, r)
    progress_ms = cur.last_progress_ms
    if r >= cur.best_roe + cfg.stagnation_min_progress:
        progress_ms = now
    cur = replace(cur, best_roe=best, last_progress_ms=progress_ms)
    if actions:
        cur = replace(cur, last_action_ms=now, stagnated=False)
    elif is_stagnated(cur, now, cfg) and not cur.stagnated:
        events.append(Event("STAGNATED", cur.pos_id, cur.symbol, now,
                            {"best_roe": str(best), "roe": str(r)}))
        cur = replace(cur, stagnated=True)
        if cfg.stagnation_exit:
            plan = _exit(cur, view, "STAGNATED", p, r, lb)
            return Plan(plan.position, plan.actions, (*events, *plan.events), p, r, lb)
    return Plan(cur, tuple(actions), tuple(events), p, r, lb)


def is_stagnated(pos: ManagedPosition, now_ms: int, cfg: PmConfig) -> bool:
    """STAGNATED: for ``stagnation_ms`` neither has ROE gained ``stagnation_min_progress`` over its best nor
    has the manager acted (stop move, take-profit, add-on, downgrade)."""
    last = max(pos.last_progress_ms, pos.last_action_ms, pos.opened_ms)
    return now_ms - last >= cfg.stagnation_ms


def decide_add_on(pos: ManagedPosition, view: MarketView, cfg: PmConfig, current_roe: Decimal) -> Decimal | str:
    """The add-on quantity, or the reason code why not."""
    a = cfg.add_on
    if view.signal is None or view.signal == 0:
        return "ADD_NO_SIGNAL"
    if view.signal != pos.direction:
        return "ADD_SIGNAL_AGAINST"
    if a.gate_roe <= 0 or current_roe < a.gate_roe:  # gate > 0 is also a config rule; never average down
        return "ADD_ROE_BELOW_GATE"
    if pos.add_count >= a.cap:
        return "ADD_COUNT_CAP"
    q = to_step(add_on_qty(pos.q0, pos.add_count + 1, a.gamma), view.qty_step)
    if q <= 0 or q < view.min_qty:
        return "ADD_BELOW_MIN_QTY"
    if pos.adds_qty + q > a.eta * pos.q0:
        return "ADD_ETA_CAP"
    return q


def _rung_qty(pos: ManagedPosition, rung: Rung, view: MarketView) -> Decimal:
    q = to_step(pos.qty * rung.fraction, view.qty_step)
    if q < view.min_qty:
        return ZERO
    if pos.qty - q < view.min_qty:  # what would be left is dust: close it all
        return pos.qty
    return q


def _reduced(pos: ManagedPosition, q: Decimal, price: Decimal, now: int) -> ManagedPosition:
    """After a partial close: Q down, margin pro rata, entry unchanged (WAC), realised PnL booked."""
    left = pos.qty - q
    margin = pos.margin * left / pos.qty
    realised = (price - pos.entry) * q * pos.direction
    return replace(pos, qty=left, margin=margin, realised_pnl=pos.realised_pnl + realised, last_action_ms=now)


def unfilled_reduction(pos: ManagedPosition, action: Action, filled: Decimal, fill_price: Decimal | None,
                       decided_price: Decimal, unit_margin: Decimal) -> ManagedPosition:
    """The plan booked all of ``action.qty`` closed at ``decided_price``; the venue filled only ``filled`` (a
    market order whose rest expired, or a rejection: 0). The unfilled part is still open, at the same average
    entry (WAC) and at ``unit_margin`` (the position's margin per unit: a pro-rata reduction keeps it);
    realised PnL is the filled part, at the fill price when the venue gave one. Nothing is invented: the
    books hold what the venue did."""
    filled = max(ZERO, min(filled, action.qty))
    unfilled = action.qty - filled
    price = fill_price if fill_price is not None and fill_price.is_finite() and fill_price > 0 else decided_price
    realised = (pos.realised_pnl - (decided_price - pos.entry) * action.qty * pos.direction
                + (price - pos.entry) * filled * pos.direction)
    if unfilled == 0:
        return replace(pos, realised_pnl=realised)
    qty = pos.qty + unfilled
    return replace(pos, qty=qty, margin=unit_margin * qty, realised_pnl=realised, closed=False)


def _added(pos: ManagedPosition, q: Decimal, price: Decimal, now: int) -> ManagedPosition:
    """After an add-on: the average entry is the quantity-weighted one; margin grows at the current
    leverage (margin / (entry x Q) of the position as it stands)."""
    new_qty = pos.qty + q
    entry = (pos.qty * pos.entry + q * price) / new_qty
    margin_rate = pos.margin / (pos.entry * pos.qty)
    margin = pos.margin + q * price * margin_rate
    return replace(pos, qty=new_qty, entry=entry, margin=margin, add_count=pos.add_count + 1,
                   adds_qty=pos.adds_qty + q, last_action_ms=now)


def _exit(pos: ManagedPosition, view: MarketView, reason: str, p: Decimal, r: Decimal,
          lb: Decimal | None) -> Plan:
    action = Action("EXIT", f"{pos.pos_id}:exit", pos.pos_id, pos.symbol, pos.qty, close_side(pos.direction),
                    cancel_coids=(pos.stop_coid,) if pos.stop_coid else (), reason=reason)
    realised = (view.mark - pos.entry) * pos.qty * pos.direction
    new = replace(pos, qty=ZERO, closed=True, realised_pnl=pos.realised_pnl + realised, last_action_ms=view.ts_ms)
    ev = Event("EXIT", pos.pos_id, pos.symbol, view.ts_ms, {"reason": reason, "price": str(view.mark)})
    return Plan(new, (action,), (ev,), p, r, lb)
