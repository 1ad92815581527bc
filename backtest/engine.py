"""Backtest engine: the grid core's ``step`` over bars, one symbol or both on one shared ``GlobalVault``.

Reference mode fills every decision at the deciding bar's close (reference-grid.md). Realistic mode
sends each signal as a limit order at the deciding close and fills it with the *limit-on-bar* model:

* a BUY rests from the next bar on; it fills whole on the first bar whose low <= limit, at
  ``min(open, limit)`` (a gap down fills at the open, never above the limit);
* a SELL fills whole on the first bar whose high >= limit, at ``max(open, limit)``;
* an order not filled within ``order_ttl_bars`` bars, or at the end of its day, expires; the vault
  releases its frozen money and the grid rolls the lot back (``apply_reject``).

T+1 is the venue's: per symbol the engine keeps what was held at the start of the trading day and what was
sold since, and hands ``step`` the ``can_use_volume`` and ``volume`` a venue would report
(``mac.grid.rules.sell_budget`` decides), so today's lots may be sold against the base position.

Every BUY first asks the vault (``request_allocation``) exactly as the executor would: its amount plus
the commission estimate of the executor's fee model (``windows.pipeline.fee_model``); a refusal rolls
the pending lot back. Fills go to the vault (``on_fill`` / ``apply_sell_fill``) and to the grid state
(``apply_fill``). Commission: the one formula (``shared_schema.ledger_math.commission``, through the grid's
``commission``): ``rate * value``, at least ``commission_min``, rounded half up to the fen.

Indicators are computed once, vectorised and bit-identical to the incremental ones
(``backtest.fastind``), and handed to ``step`` through ``StepContext``; the rest is the very function
the live node calls bar by bar. ``step`` runs only on the bars where it might act (``backtest.kernel``):
on the others it would return the state unchanged and emit nothing, which a property test holds
(``tests/backtest/test_kernel.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from backtest.fastind import compute_indicators
from backtest.fill_model import Trade, cancel_buys, close_all_now, venue_volumes, work_orders
from backtest.kernel import EVENT_NAMES, FIRST_WINDOW, MAX_WINDOW, BarColumns, QuietScan, candidate_bars
from mac.grid.core import (
    BUY,
    EventKind,
    GridState,
    PoolView,
    StepContext,
    apply_reject,
    commission,
    initial_state,
    step,
    trading_day,
)
from mac.grid.indicators import IndicatorPeriods
from mac.grid.params import compile_params
from marketdata.bars import Bars
from settings.config import GridbridgeConfig
from settings.grid import GridParams

if TYPE_CHECKING:
    from backtest.risk import BacktestRisk, RiskTracker
    from windows.vault import GlobalVault

# backtest.risk, windows.pipeline and windows.vault (the risk machine, the fee model, the vault: ~50 ms of
# imports) are imported by the realistic functions that use them; a reference run never loads them.


@dataclass
class SymbolResult:
    code: str
    state: GridState
    trades: list[Trade] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)  # vault decisions other than APPROVED
    signals: list = field(default_factory=list)  # every signal step emitted (for parity tests)
    penalty_bars: int = 0
    bars: int = 0
    all_layers: int = 0
    expired: int = 0
    times: np.ndarray | None = None
    closes: np.ndarray | None = None
    penalty: np.ndarray | None = None


@dataclass
class RunResult:
    mode: str
    symbols: dict[str, SymbolResult]
    vault: GlobalVault | None = None
    util_t: np.ndarray | None = None
    util: np.ndarray | None = None
    risk: RiskTracker | None = None  # realistic mode with the risk machine on

    @property
    def trades(self) -> list[Trade]:
        out = [t for r in self.symbols.values() for t in r.trades]
        out.sort(key=lambda x: (x.t, x.code, x.client_order_id))
        return out


def _periods(p: GridParams) -> IndicatorPeriods:
    return IndicatorPeriods(
        p.atr_period, p.ma_period, p.slope_lag, p.slope_span, p.atr_avg_period, p.rsi_period
    )


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="bar", unit_scale=True, mininterval=0.5)


# --------------------------------------------------------------------------------------- reference


def run_reference(
    bars: Bars, params: GridParams, progress: bool = False, indicators: dict[str, np.ndarray] | None = None
) -> RunResult:
    """reference-grid.md on one symbol: decisions fill at the deciding bar's close.

    ``step`` runs only on the bars where it might act (``backtest.kernel.candidate_bars``); on every other
    bar it would return the state unchanged and emit nothing, so skipping them changes no result.
    ``indicators``: ``compute_indicators`` of these bars with the parameters' periods, when the caller has
    them already (a sweep computes them once for every point that shares the periods)."""
    cp = compile_params(params.model_copy(update={"mode": "reference"}))
    ind = indicators if indicators is not None else compute_indicators(bars.h, bars.l, bars.c, _periods(cp.source))
    cols = BarColumns.of(bars, ind, cp)
    state = initial_state(cp)
    res = SymbolResult(cp.code, state)
    trades = res.trades
    events = res.events
    n = len(bars)
    bar_ = _progress(n, progress, cp.code)
    usable = np.flatnonzero(cols.usable_index >= 0)
    i = int(usable[0]) if usable.size else n
    window = FIRST_WINDOW
    while i < n:
        stop = min(n, i + window)
        window = min(window * 2, MAX_WINDOW)
        for j in map(int, candidate_bars(state, cp, cols, i, stop)):  # usually left at the first
            bar = cols.bar(j)
            new_state, sigs, evs = step(state, bar, None, cp, cols.indicators(j))
            if evs:
                for e in evs:
                    events[e.kind.value] += 1
            if sigs:
                for s in sigs:
                    value = Decimal(s.price_milli) * s.shares / 1000
                    trades.append(
                        Trade(bar.t, s.code, s.side, s.price_milli, s.shares, s.reason, s.client_order_id,
                              s.layer_index, commission(cp, value), bar.t)
                    )  # fmt: skip
                    if s.side == BUY and s.layer_index == cp.layers - 1:
                        res.all_layers += 1
                res.signals.extend(sigs)
            if new_state is not state:  # the marks after j belong to the old state: mark again from j + 1
                state = new_state
                stop = j + 1
                window = FIRST_WINDOW
                break
        if bar_ is not None:
            bar_.update(stop - i)
        i = stop
    if bar_ is not None:
        bar_.close()
    res.state = state
    res.bars = n
    res.times, res.closes = bars.t, bars.c
    return RunResult("reference", {cp.code: res})


# --------------------------------------------------------------------------------------- realistic


def make_vault(params: dict[str, GridParams]) -> GlobalVault:
    from windows.vault import GlobalVault, VaultLimits

    first = next(iter(params.values()))
    caps = {code: Decimal(str(p.nominal_cap)) for code, p in params.items()}
    return GlobalVault(VaultLimits.from_yuan(first.physical_pool, caps, first.reserve_ratio))


def _committed(vault: GlobalVault) -> tuple[int, dict[str, int]]:
    """used + frozen in fen, over all symbols and per symbol, from the vault's running totals. Read again
    only after a call that may change the vault, so a quiet bar costs nothing."""
    used, frozen = vault.get_used_map(), vault.get_frozen_map()
    by_symbol = {code: used[code] + frozen[code] for code in used}
    return sum(by_symbol.values()), by_symbol


class _DefaultRisk:
    """Stands for ``BacktestRisk()`` (the risk machine with default settings) in the signatures, so the
    module need not import ``backtest.risk`` to build it."""


DEFAULT_RISK: Any = _DefaultRisk()


def run_realistic(
    data: dict[str, Bars],
    params: dict[str, GridParams],
    vault: GlobalVault | None = None,
    progress: bool = False,
    on_bar=None,
    incremental: bool = False,
    risk: BacktestRisk | None = DEFAULT_RISK,
    config: GridbridgeConfig | None = None,
    every_bar: bool = False,
    indicators: dict[str, dict[str, np.ndarray]] | None = None,
) -> RunResult:
    """Both (or one) symbols on one shared vault, bars interleaved by time (symbol order breaks ties).

    ``on_bar(code, bar, vault, state)`` is called after every bar (tests check vault invariants there).
    ``incremental=True`` lets ``step`` update the indicators itself (the live node's way) instead of
    using the vectorised ones; results must not change, which a test checks.

    ``risk`` runs the account risk machine on the grid's risk equity (``backtest.risk``) and applies its
    state to the grid as the live node does (``mac.grid.risk_policy``): DEGRADED widens the buy step or
    refuses layer 0, COOLDOWN/REDUCE_ONLY only sell, FUSE sells every sellable lot (``close_all``) and
    buys nothing. Entering a state without buys cancels the resting buys. ``None`` turns it off.

    A BUY asks the vault for its amount plus the commission estimate of ``config``'s fee model
    (``windows.pipeline.fee_model``; default config when ``None``), the very call the executor makes, so
    a BUY at the pool edge gets the executor's verdict.

    The loop is the per-bar path below, with two shortcuts that change no result (``every_bar=True`` turns
    both off: ``step`` on every usable bar, the risk tick on every timestamp; a property test holds the two
    equal): a bar's verdict comes from ``backtest.kernel.QuietScan`` (quiet, or one known event with the
    state unchanged, or ``step``), and where no order rests, no FUSE close is pending and no symbol wakes
    ``step``, the loop jumps over the stretch at once (``_jump``): the risk tracker folds its ticks over it
    (``RiskTracker.fold``, up to the first timestamp that would evaluate), the events, penalty bars,
    utilisation and T+1 day are booked for the stretch as the per-bar path would book them bar by bar.
    """
    from backtest.risk import BacktestRisk, RiskTracker
    from windows.pipeline import fee_model
    from windows.vault import VaultDecision

    if risk is DEFAULT_RISK:
        risk = BacktestRisk()
    codes = list(data)
    cps = {c: compile_params(params[c].model_copy(update={"mode": "realistic"})) for c in codes}
    vault = vault or make_vault({c: params[c] for c in codes})
    committed, by_symbol = _committed(vault)
    fees = fee_model(config or GridbridgeConfig())
    pool_fen = vault.limits.physical_pool
    caps = vault.limits.nominal_caps
    ind = indicators or {}
    columns = {c: BarColumns.of(data[c], ind.get(c) or compute_indicators(data[c].h, data[c].l, data[c].c,
                                                                          _periods(cps[c].source)), cps[c])
               for c in codes}  # fmt: skip
    results = {c: SymbolResult(c, initial_state(cps[c])) for c in codes}
    states = {c: results[c].state for c in codes}
    placed: dict[str, tuple[int, int]] = {}  # client_order_id -> (bar index placed, trading day)
    penalty = {c: np.zeros(len(data[c]), dtype=bool) for c in codes}

    t_all = np.concatenate([data[c].t for c in codes])
    sym_all = np.concatenate([np.full(len(data[c]), k) for k, c in enumerate(codes)])
    idx_all = np.concatenate([np.arange(len(data[c])) for c in codes])
    order = np.lexsort((sym_all, t_all))
    total = len(order)
    pbar = _progress(total, progress, "+".join(codes))
    jumps = not (every_bar or incremental or on_bar is not None)
    timeline = _Timeline(t_all[order], [data[c] for c in codes]) if jumps else None
    # The per-bar path reads these columns item by item: Python lists when it visits every bar, the arrays
    # themselves when the jumps leave it a few thousand bars (converting would cost more than it saves).
    column = np.asarray if jumps else np.ndarray.tolist
    seq_k, seq_i = column(sym_all[order]), column(idx_all[order])

    per_symbol = [
        (c, cps[c], columns[c], column(data[c].t), column(trading_day(data[c].t)), column(data[c].c),
         column(columns[c].usable_index >= 0),
         results[c], caps[c], penalty[c])
        for c in codes
    ]  # fmt: skip
    usable_arr = [columns[c].usable_index >= 0 for c in codes]
    # per symbol: the bar verdicts of (state, buy-step multiplier, pool view) up to a bar
    scans = [QuietScan() for _ in codes]
    base = [cps[c].base_position_shares for c in codes]
    venue = [[-1, 0, 0] for _ in codes]  # per symbol: trading day, held at its start, sold since
    vcache: list[list] = [[None, -1, -1, 0, 0] for _ in codes]  # state, sold, day -> can_use, volume
    state_list = [states[c] for c in codes]
    util_list: list[float] = []
    pv_cache: list[PoolView | None] = [None] * len(codes)
    tracker = RiskTracker(risk, codes, Decimal(pool_fen) / 100) if risk is not None else None
    mult = 1.0  # the risk mode's buy-step multiplier (1.0 keeps step's fast path)
    closing_all = False
    marks = tracker.closes if tracker is not None else None
    last_t = None
    reported = 0
    n = 0
    j_next = 0  # the index in the timeline of the next new timestamp
    while n < total:
        k = int(seq_k[n])
        i = int(seq_i[n])
        code, cp, cols, times, days, closes, usable, res, cap, pen = per_symbol[k]
        t = int(times[i])
        bar = None  # built only when something reads it
        if t != last_t:
            j = j_next
            j_next = j + 1
            if timeline is not None and not (closing_all and any(s.lots for s in state_list)):
                stop = _jump(timeline, j, state_list, per_symbol, scans, pv_cache, committed, by_symbol,
                             pool_fen, mult, tracker)  # fmt: skip
                if stop > j:
                    _book(timeline, j, stop, state_list, per_symbol, scans, usable_arr, venue, base, marks)
                    n_stop = int(timeline.first_pos[stop])
                    util_list += [committed] * (n_stop - n)
                    n = n_stop
                    j_next = stop
                    last_t = int(timeline.t[stop - 1])
                    if pbar is not None and n - reported >= 20000:
                        pbar.update(n - reported)
                        reported = n
                    continue
            last_t = t
            if tracker is not None and tracker.tick(t):
                mult = tracker.mode.buy_step_multiplier
                closing_all = tracker.mode.close_all
                if not tracker.mode.buys_allowed:
                    for kk, entry in enumerate(per_symbol):
                        cancelled = cancel_buys(state_list[kk], t, entry[0], vault, tracker)
                        if cancelled is not state_list[kk]:
                            state_list[kk] = cancelled
                            tracker.sync(kk, cancelled)
                    committed, by_symbol = _committed(vault)
        state = before = state_list[k]
        v = venue[k]
        day = int(days[i])
        if day != v[0]:
            # the venue's T+1 view: what was held at the start of the day is sellable today
            v[0], v[1], v[2] = day, base[k] + state.open_shares, 0
        if state.orders:
            bar = cols.bar(i)
            state = work_orders(state, bar, i, code, cp, vault, placed, res, tracker, v)
            committed, by_symbol = _committed(vault)
        if usable[i] or incremental:
            pv = pv_cache[k]
            if (
                pv is None
                or pv.committed_fen != committed
                or pv.symbol_committed_fen != by_symbol[code]
            ):
                pv = PoolView(committed, pool_fen, committed / pool_fen, by_symbol[code], cap)
                pv_cache[k] = pv
            # the bar's verdict (backtest.kernel.QuietScan): quiet, one known event, or step
            sc = scans[k]
            if every_bar or incremental:
                verdict = WAKE
            elif i < sc.next and state is sc.state and pv is sc.pool and mult == sc.mult:
                verdict = QUIET
            else:
                verdict = sc.verdict(state, cp, cols, i, mult, pv)
            if verdict == WAKE:
                vc = vcache[k]
                if vc[0] is not state or vc[1] != v[2] or vc[2] != v[0]:  # the state or the day's sales moved
                    vc[0], vc[1], vc[2] = state, v[2], v[0]
                    vc[3], vc[4] = venue_volumes(state, v, base[k])
                iv = None if incremental else cols.indicators(i)
                ctx = StepContext(iv, not incremental, vc[3], mult, vc[4], 0)
                bar = bar or cols.bar(i)
                state, sigs, evs = step(state, bar, pv, cp, ctx)
                if evs:
                    for e in evs:
                        res.events[e.kind.value] += 1
                if sigs:
                    res.signals.extend(sigs)
                    for s in sigs:
                        if s.side == BUY:
                            refusal = tracker.mode.buy_refusal(s.layer_index) if tracker is not None else ""
                            if refusal:
                                # the node refuses it locally: the executor never sees it
                                tracker.blocked[refusal] += 1
                                state = apply_reject(state, s.client_order_id)
                                continue
                            placed[s.client_order_id] = (i, day)
                            decision = vault.request_allocation(
                                code, s.amount_fen, s.layer_index, s.client_order_id, s.shares,
                                fees.estimate_fen(s.amount_fen),
                            )  # fmt: skip
                            committed, by_symbol = _committed(vault)
                            if decision is not VaultDecision.APPROVED:
                                res.refusals[decision.value] += 1
                                state = apply_reject(state, s.client_order_id)
                                if tracker is not None:
                                    tracker.signal_refused(s, decision.value)
                                continue
                        else:
                            placed[s.client_order_id] = (i, day)
                        if tracker is not None:
                            tracker.signal_sent(s)
            elif verdict >= 0:
                res.events[EVENT_NAMES[verdict]] += 1  # what step would emit, the state unchanged
            if state.penalty_on:
                pen[i] = True
        if marks is not None:
            if closing_all and state.lots:
                state = close_all_now(state, bar or cols.bar(i), cp, v, base[k], i, res, placed, tracker)
            marks[k] = float(closes[i])
            if state is not before:
                tracker.sync(k, state)
        state_list[k] = state
        util_list.append(committed)
        if on_bar is not None:
            on_bar(code, bar or cols.bar(i), vault, state)
        n += 1
        if pbar is not None and n - reported >= 20000:
            pbar.update(n - reported)
            reported = n
    states = dict(zip(codes, state_list, strict=True))
    util = np.array(util_list, dtype=float) / pool_fen
    if tracker is not None and last_t is not None:
        tracker.finish(last_t)
    if pbar is not None:
        pbar.update(total - reported)
        pbar.close()
    for code in codes:
        res = results[code]
        res.state = states[code]
        res.bars = len(data[code])
        res.times, res.closes, res.penalty = data[code].t, data[code].c, penalty[code]
        res.penalty_bars = int(penalty[code].sum())
    return RunResult("realistic", results, vault, t_all[order], util, tracker)


WAKE, QUIET = QuietScan.WAKE, QuietScan.QUIET


class _Timeline:
    """The merged timeline of a realistic run, for the jumps: its distinct timestamps, where each starts in
    the bar sequence, where each trading day ends, and per symbol where its bars fall and the close the
    risk tracker holds for it at each timestamp (its last close before it)."""

    def __init__(self, t_sorted: np.ndarray, bars: list[Bars]) -> None:
        new = np.empty(t_sorted.shape[0], dtype=bool)
        new[:1] = True
        new[1:] = t_sorted[1:] != t_sorted[:-1]
        first = np.flatnonzero(new)
        self.t = t_sorted[first]
        self.first_pos = np.append(first, t_sorted.shape[0])
        day = trading_day(self.t)
        self.day_end = np.searchsorted(day, day, side="right")  # type: ignore[arg-type]
        self.count: list[np.ndarray] = []  # per symbol: its bars before each timestamp (and at the end)
        self.ts_of: list[np.ndarray] = []  # per symbol: the timestamp index of each bar (and the end)
        self.mark: list[np.ndarray] = []
        for b in bars:
            count = np.searchsorted(b.t, self.t, side="left")
            self.count.append(np.append(count, len(b)))
            self.ts_of.append(np.append(np.searchsorted(self.t, b.t), len(self.t)))
            mark = np.zeros(len(self.t))
            seen = count > 0
            mark[seen] = b.c[count[seen] - 1]
            self.mark.append(mark)


def _jump(tl, j, state_list, per_symbol, scans, pv_cache, committed, by_symbol, pool_fen, mult, tracker) -> int:
    """How far the loop may jump from timestamp ``j`` at once: the end of the stretch where no order rests and
    no symbol's bar wakes ``step``, within the trading day, and as far as the risk tracker folds its ticks
    without evaluating (it folds them). ``j`` when no jump is possible."""
    stop = int(tl.day_end[j])
    for k, entry in enumerate(per_symbol):
        state = state_list[k]
        if state.orders:
            return j
        count = tl.count[k]
        lo = int(count[j])
        if lo >= count[stop]:
            continue  # no bar of this symbol in the stretch
        code, cp, cols, cap = entry[0], entry[1], entry[2], entry[8]
        pv = pv_cache[k]
        if pv is None or pv.committed_fen != committed or pv.symbol_committed_fen != by_symbol[code]:
            pv = PoolView(committed, pool_fen, committed / pool_fen, by_symbol[code], cap)
            pv_cache[k] = pv
        wake = scans[k].first_wake(state, cp, cols, lo, mult, pv)
        stop = min(stop, int(tl.ts_of[k][wake]))
        if stop <= j:
            return j
    if tracker is not None:
        stop = j + tracker.fold(tl.t[j:stop], [m[j:stop] for m in tl.mark])
    return stop


def _book(tl, j, stop, state_list, per_symbol, scans, usable_arr, venue, base, marks) -> None:
    """What the per-bar path books on the bars of timestamps ``[j, stop)`` when none of them wakes ``step``:
    the event-only bars' events, the penalty bars, the T+1 day and the risk tracker's last closes."""
    for k, entry in enumerate(per_symbol):
        lo, hi = int(tl.count[k][j]), int(tl.count[k][stop])
        if lo >= hi:
            continue
        state = state_list[k]
        res = entry[7]
        counts = scans[k].events_between(lo, hi)
        if counts.any():
            for kind, c in enumerate(counts.tolist()):
                if c:
                    res.events[EVENT_NAMES[kind]] += c
        if state.penalty_on:
            entry[9][lo:hi] |= usable_arr[k][lo:hi]
        v = venue[k]
        day = int(entry[4][lo])  # one trading day: the stretch ends with it
        if day != v[0]:
            v[0], v[1], v[2] = day, base[k] + state.open_shares, 0
        if marks is not None:
            marks[k] = float(entry[5][hi - 1])


def run(
    data: dict[str, Bars],
    params: dict[str, GridParams],
    mode: str = "realistic",
    progress: bool = False,
    risk: BacktestRisk | None = DEFAULT_RISK,
    config: GridbridgeConfig | None = None,
    indicators: dict[str, dict[str, np.ndarray]] | None = None,
):
    """Dispatch: reference runs each symbol on its own; realistic shares one vault (and the risk machine).
    ``indicators``: per code, ``compute_indicators`` of its bars with its parameters' periods, if known."""
    ind = indicators or {}
    if mode == "reference":
        results: dict[str, SymbolResult] = {}
        for code, bars in data.items():
            results.update(run_reference(bars, params[code], progress, ind.get(code)).symbols)
        return RunResult("reference", results)
    return run_realistic(data, params, progress=progress, risk=risk, config=config, indicators=indicators)


__all__ = [
    "EventKind",
    "RunResult",
    "SymbolResult",
    "Trade",
    "make_vault",
    "run",
    "run_realistic",
    "run_reference",
]
