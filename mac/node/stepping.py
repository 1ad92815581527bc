"""Feeding new 1-minute bars to the grid core (``mac.grid.core.step``) and turning what it decides into
the shared file's signals, with the node's own refusals (blocked buys, catch-up bars, rejection backoff)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from mac.grid.core import (
    BUY,
    GridEvent,
    GridSignal,
    GridState,
    PoolView,
    StepContext,
    apply_reject,
    close_all,
    step,
    unplaced_sell_shares,
)
from mac.grid.risk_policy import NORMAL_MODE, GridRiskMode, GridRiskPolicy, grid_risk_mode
from mac.node.results import backoff_key
from mac.node.state import NodeSettings, SymbolRuntime
from shared_schema.models import PoolFile, QuoteFile, ResultFile, ResultStatus, Signal, symbol_key
from shared_schema.types import ms_to_datetime, to_fen


def step_new_bars(
    rt: SymbolRuntime, quotes: QuoteFile | None, pool: PoolFile | None, block: str, results: ResultFile | None,
    settings: NodeSettings,
) -> tuple[list[Signal], bool]:
    """Step the bars newer than the runtime's market clock; returns the signals to send and whether any bar
    was stepped. ``block`` (a reason, or "") refuses new buys; ``results`` is the last good result file."""
    if quotes is None or rt.code not in quotes.quotes:
        return [], False
    quote = quotes.quotes[rt.code]
    bars = [b for b in quote.bars if b.t > rt.last_bar_t]
    if not bars:
        return [], False
    # The sell budget (mac.grid.core.sell_budget): the venue's can_use_volume already excludes our
    # sells resting there, so only the ones it has not seen yet are deducted; unknown positions: none.
    position = quotes.positions.get(rt.code)
    known = position is not None and quotes.positions_ok
    sellable = position.can_use_volume if position is not None and known else 0
    held = position.volume if position is not None and known else None
    at_venue = sells_at_venue(rt, results)
    newest = quote.bars[-1].t
    mode = risk_mode(pool, settings.risk_policy)
    out: list[Signal] = []
    for bar in bars:
        view = pool_view(rt, pool)
        unplaced = unplaced_sell_shares(rt.grid, at_venue)  # sells decided on earlier bars count too
        ctx = StepContext(sellable_volume=sellable, buy_step_multiplier=mode.buy_step_multiplier,
                          position_volume=held, unplaced_sell_shares=unplaced)
        rt.grid, signals, events = step(rt.grid, bar, view, rt.params, ctx)
        if mode.close_all and (newest - bar.t) / 1000 <= settings.signal_ttl_s:
            # FUSE: every sellable lot not already being sold goes, bar after bar until none is left.
            unplaced = unplaced_sell_shares(rt.grid, at_venue)
            rt.grid, closing = close_all(rt.grid, bar, rt.params, sellable, held, unplaced)
            signals += closing
        rt.last_bar_t = bar.t
        for event in events:
            rt.events.append(_event_dict(event))
            rt.counters[f"event_{event.kind.value}"] += 1
        if view is not None:
            rt.history.append([bar.t, view.utilization, rt.grid.penalty_on])  # exact, as the grid saw it
        for sig in signals:
            refusal = (block or mode.buy_refusal(sig.layer_index)) if sig.side == BUY else ""
            if not refusal and (newest - bar.t) / 1000 > settings.signal_ttl_s:
                refusal = "CATCH_UP_EXPIRED"  # decided on a bar too old to trade on now
            hold = rt.backoff.get(backoff_key(sig.side, sig.release_client_order_ids, sig.layer_index))
            if not refusal and hold is not None and bar.t < hold[1]:
                refusal = "REJECT_BACKOFF"  # the executor rejected this order: wait (alerted once, when it came)
            if refusal:
                rt.grid = apply_reject(rt.grid, sig.client_order_id)
                if refusal != "REJECT_BACKOFF":
                    rt.events.append({"t": ms_to_datetime(bar.t).isoformat(), "kind": "BUY_BLOCKED"
                                      if sig.side == BUY else "SELL_BLOCKED", "detail": refusal,
                                      "client_order_id": sig.client_order_id})
                rt.counters[f"blocked_{refusal}"] += 1
                continue
            signal = to_signal(sig, settings.signal_ttl_s)
            rt.outbox[sig.client_order_id] = signal.model_dump(mode="json")
            rt.counters[f"signal_{sig.side}"] += 1
            out.append(signal)
    rt.last_indicators = _indicator_view(rt.grid)
    return out, True


def sells_at_venue(rt: SymbolRuntime, results: ResultFile | None) -> frozenset[str]:
    """Our pending sells the executor reports as placed (SENT/PARTIAL): the venue's can_use_volume
    already leaves their shares out. A sell without such a result may not have reached it yet."""
    if results is None:
        return frozenset()
    placed = (ResultStatus.SENT, ResultStatus.PARTIAL)
    return frozenset(client_order_id for client_order_id in rt.outbox
                     if (r := results.results.get(client_order_id)) is not None and r.status in placed)


def risk_mode(pool: PoolFile | None, policy: GridRiskPolicy) -> GridRiskMode:
    """The grid's risk mode from the executor's published state (no pool file: buys are blocked anyway)."""
    if pool is None:
        return NORMAL_MODE
    return grid_risk_mode(pool.risk_state, pool.halted, policy)


def pool_view(rt: SymbolRuntime, pool: PoolFile | None) -> PoolView | None:
    """The pool as the grid sees it: the vault's committed cash plus our buys it has not frozen yet."""
    if pool is None:
        return None
    key_used = {c: getattr(pool, f"used_{symbol_key(c)}") + getattr(pool, f"frozen_{symbol_key(c)}")
                for c in ("159201.SZ", "512890.SH")}
    # Our own buys that the vault has not frozen yet count as committed, so two quick layer-0 buys
    # cannot together break the reserve the vault will enforce anyway.
    pending = sum(Decimal(str(p["amount"])) for client_order_id, p in rt.outbox.items()
                  if p["direction"] == BUY and not _known_to_vault(pool, client_order_id, p["code"]))
    committed = to_fen(sum(key_used.values(), Decimal(0)) + pending)
    symbol_committed = to_fen(key_used.get(rt.code, Decimal(0)) + pending)
    cap = to_fen(getattr(pool, f"nominal_cap_{symbol_key(rt.code)}"))
    return PoolView.of(committed, to_fen(pool.physical_pool), symbol_committed, cap)


def _known_to_vault(pool: PoolFile, client_order_id: str, code: str) -> bool:
    allocations = getattr(pool, f"allocations_{symbol_key(code)}")
    return any(a.client_order_id == client_order_id for a in allocations)


def to_signal(sig: GridSignal, signal_ttl_s: float) -> Signal:
    """The shared file's signal for a grid decision: its client_order_id is its signal_id."""
    created = ms_to_datetime(sig.t)
    return Signal(
        signal_id=sig.client_order_id,
        client_order_id=sig.client_order_id,
        code=sig.code,
        direction=sig.side,
        price=sig.price,
        shares=sig.shares,
        layer_index=sig.layer_index,
        release_client_order_ids=list(sig.release_client_order_ids),
        created_at=created,
        expires_at=created + timedelta(seconds=signal_ttl_s),
        source=f"node:{sig.reason}",
    )


def _event_dict(event: GridEvent) -> dict[str, Any]:
    return {"t": ms_to_datetime(event.t).isoformat(), "kind": event.kind.value, "detail": getattr(event, "detail", "")}


def _indicator_view(grid: GridState) -> dict[str, float]:
    ind = grid.indicators
    view: dict[str, float] = {}
    p = ind.periods
    if len(ind.trs) == p.atr:
        view["atr"] = sum(ind.trs) / p.atr
    if ind.slope is not None:
        view["slope"] = ind.slope
    if len(ind.atrs) == p.atr_avg:
        view["atr_avg"] = sum(ind.atrs) / p.atr_avg
    if ind.prev_close is not None:
        view["close"] = ind.prev_close
    return view
