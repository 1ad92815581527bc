"""The strategy node: the Mac-side process that turns quotes and the pool view into signals.

A thin loop around the pure grid core (``mac.grid.core.step``, the same function the backtest calls). Each
turn it reads ``shared_quote.json``, ``shared_pool.json`` and ``order_result.json``; folds results into the
grid (fills, partial fills, rejections roll lots back); feeds every new 1-minute bar to ``step``; saves its
state (``dashboard_state_<code>.json``) *before* it writes the new signals, so a restart resumes lots,
pending signals and the penalty state; then appends the signals to ``order_signal.json`` under the writers'
lock and prunes the ones whose results are final.

Windows is the truth: the grid's lots plus the configured base position must match the position in the
quote file, or the node reports the mismatch and opens no new layer for that symbol until it clears. No new
buys either when quotes or the pool view are stale or unreadable.

The executor's risk state (``risk_state``/``halted`` in ``shared_pool.json``) becomes a ``GridRiskMode``
(``mac.grid.risk_policy``, the same mapping the backtest uses): DEGRADED widens the buy step or refuses
layer-0 buys (``settings.risk_policy``); COOLDOWN and REDUCE_ONLY only sell; FUSE refuses buys and, on every
new bar, sends a ``FUSE_CLOSE`` sell for each lot that may be sold today (T+1, base position kept) until
the state leaves FUSE, which only a manual Reset FUSE at the executor does. Halted: no buys, no close-all.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from mac.grid.core import (
    BUY,
    SELL,
    GridEvent,
    GridState,
    PoolView,
    StepContext,
    apply_fill,
    apply_reject,
    close_all,
    commission,
    initial_state,
    price_decimal,
    step,
    take_sold_shares,
    unplaced_sell_shares,
)
from mac.grid.core import (
    Signal as GridSignal,
)
from mac.grid.params import CompiledParams, GridParams, compile_params
from mac.grid.risk_policy import NORMAL_MODE, GridRiskMode, GridRiskPolicy, grid_risk_mode
from mac.state_codec import decode, encode
from shared_schema.atomic_io import ModelFileReader, ReadStatus, WriteFailed, atomic_write_json
from shared_schema.clock import Clock, SystemClock
from shared_schema.heartbeat import executor_down_message, executor_silence_s
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    PoolFile,
    QuoteFile,
    ResultFile,
    ResultStatus,
    Signal,
    symbol_key,
)
from shared_schema.safe_json import safe_loads
from shared_schema.signal_io import SignalFileCorrupt, entry_signal_id, read_raw_entries, update_signal_file
from shared_schema.types import ms_to_datetime, to_fen
from shared_schema.watch import ChangeWatcher, WatchMode, run_turns

log = logging.getLogger("gridbridge.node")

STATE_VERSION = 1


def state_file(shared_dir: Path, code: str) -> Path:
    return Path(shared_dir) / f"dashboard_state_{symbol_key(code)}.json"


@dataclass
class NodeSettings:
    signal_ttl_s: float = 300.0  # market seconds a signal stays valid
    stale_after_s: float = 120.0  # wall seconds after which an unchanged quote/pool file is stale
    history: int = 60000  # utilisation points kept for the dashboard: a year of 1-minute bars
    events_kept: int = 500
    risk_policy: GridRiskPolicy = field(default_factory=GridRiskPolicy)  # what DEGRADED means for the grid
    max_quote_ahead_s: float | None = 300.0  # quotes/bars stamped further ahead of the wall clock are refused
    reject_backoff_s: float = 60.0  # market seconds an order the executor rejected is held before it is re-sent
    reject_backoff_max_s: float = 1800.0  # the wait doubles with each rejection in a row, up to this


@dataclass
class SymbolRuntime:
    code: str
    params: CompiledParams
    grid: GridState
    last_bar_t: int = 0
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)  # coid -> signal payload, until final
    mismatch: str = ""
    mismatch_seen: int = 0
    events: deque = field(default_factory=lambda: deque(maxlen=500))
    history: deque = field(default_factory=lambda: deque(maxlen=60000))  # [t, utilization, penalty_on]
    counters: Counter = field(default_factory=Counter)
    last_indicators: dict[str, float] = field(default_factory=dict)
    external_done: list[str] = field(default_factory=list)  # sells by others already folded into the grid
    backoff: dict[str, list[int]] = field(default_factory=dict)  # order key -> [rejections in a row, until (ms)]


class StrategyNode:
    def __init__(
        self,
        shared_dir: Path,
        params: dict[str, GridParams],
        settings: NodeSettings | None = None,
        wall_clock: Clock | None = None,
        watch_mode: WatchMode = "auto",
        poll_interval: float = 0.05,
    ) -> None:
        self.shared_dir = Path(shared_dir)
        self.settings = settings or NodeSettings()
        self.wall_clock = wall_clock or SystemClock()
        self.quotes = ModelFileReader(self.shared_dir / QUOTE_FILE, QuoteFile)
        self.pool = ModelFileReader(self.shared_dir / POOL_FILE, PoolFile)
        self.results = ModelFileReader(self.shared_dir / RESULT_FILE, ResultFile)
        self.runtimes = {code: self._load(code, p) for code, p in params.items()}
        self.watch_mode = watch_mode
        self.poll_interval = poll_interval
        self.watcher: ChangeWatcher | None = None
        self.data_problems: list[str] = []
        self._refused_stamps: set[str] = set()  # future-dated quotes/bars already alerted
        self._signal_write_problem = ""  # the last failure to write order_signal.json, alerted once
        self.executor_owner = ""  # who holds the shared folder's executor lease, as last logged
        self._lease_checked: datetime | None = None
        self.executor_down = False
        self._last_quote_seq = -1

    # ------------------------------------------------------------------------------------ persistence

    def _load(self, code: str, params: GridParams) -> SymbolRuntime:
        compiled = compile_params(params)
        path = state_file(self.shared_dir, code)
        runtime = SymbolRuntime(code, compiled, initial_state(compiled))
        runtime.events = deque(maxlen=self.settings.events_kept)
        runtime.history = deque(maxlen=self.settings.history)
        try:
            raw = safe_loads(path.read_bytes())
        except FileNotFoundError:
            return runtime
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"node state {path} is unreadable ({exc}); move it away to start flat") from exc
        runtime.grid = decode(raw["grid"])
        runtime.last_bar_t = raw["last_bar_t"]
        runtime.outbox = raw.get("outbox", {})
        runtime.events.extend(raw.get("events", []))
        runtime.history.extend(raw.get("history", []))
        runtime.counters.update(raw.get("counters", {}))
        runtime.last_indicators = raw.get("indicators", {})
        runtime.external_done = list(raw.get("external_done", []))
        runtime.backoff = {str(k): [int(v[0]), int(v[1])] for k, v in raw.get("backoff", {}).items()}
        return runtime

    def _save(self, rt: SymbolRuntime) -> None:
        atomic_write_json(state_file(self.shared_dir, rt.code), self.dashboard_view(rt))

    def dashboard_view(self, rt: SymbolRuntime) -> dict[str, Any]:
        """The persisted state, written so the dashboard can read it as is."""
        grid = rt.grid
        return {
            "state_version": STATE_VERSION,
            "code": rt.code,
            "updated_at": self.wall_clock.now().isoformat(),
            "last_bar_t": rt.last_bar_t,
            "penalty_on": grid.penalty_on,
            "anchor": grid.anchor,
            "lots": [
                {"client_order_id": lot.client_order_id, "shares": lot.shares, "cost": str(lot.cost),
                 "buy_price": lot.buy_price, "status": lot.status, "layer_index": lot.layer_index,
                 "take_profit_price": self.take_profit_price(rt, lot.buy_price)}
                for lot in grid.lots
            ],
            "pending": sorted(rt.outbox),
            "mismatch": rt.mismatch,
            "executor_down": self.executor_down,
            "data_problems": list(self.data_problems),
            "indicators": rt.last_indicators,
            "counters": dict(rt.counters),
            "events": list(rt.events),
            "history": list(rt.history),
            "outbox": rt.outbox,
            "external_done": rt.external_done,
            "backoff": rt.backoff,
            "grid": encode(grid),
        }

    def take_profit_price(self, rt: SymbolRuntime, buy_price: float) -> float:
        """The price at which a lot bought at ``buy_price`` is sold, in the flat-trend case."""
        cp = rt.params
        return round(buy_price * (1 + cp.sell_profit_threshold * cp.sell_threshold_factor), 4)

    # ----------------------------------------------------------------------------------------- loop

    def start(self) -> None:
        self.watcher = ChangeWatcher(
            [self.shared_dir / QUOTE_FILE, self.shared_dir / RESULT_FILE, self.shared_dir / POOL_FILE],
            self.watch_mode, self.poll_interval,
        )

    def run(self, max_seconds: float | None = None, stop_flag: Any = None) -> None:
        if self.watcher is None:
            self.start()
        assert self.watcher is not None
        run_turns(self.run_once, self.watcher, self.poll_interval * 4, max_seconds, stop_flag)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.close()

    def run_once(self) -> list[Signal]:
        self._note_lease_owner()
        quotes_read = self.quotes.read()
        pool_read = self.pool.read()
        results_read = self.results.read()
        problems = [r.error for r in (quotes_read, pool_read, results_read) if r.error]
        quotes, pool, results = quotes_read.model, pool_read.model, results_read.model
        now_wall = self.wall_clock.now()
        if quotes is not None:
            quotes = self._refuse_future_stamps(quotes, now_wall, problems)
        if quotes is not None and self._is_stale(quotes.updated_at, now_wall):
            problems.append(f"{QUOTE_FILE} stale since {quotes.updated_at.isoformat()}")
        silent = None if pool is None else executor_silence_s(
            pool.updated_at, pool.heartbeat_s, now_wall, self.settings.stale_after_s)
        if pool is None:
            problems.append(f"{POOL_FILE} unavailable: no new buys")
        elif silent is not None and (pool.heartbeat_s is not None or quotes_read.status is ReadStatus.FRESH):
            # The executor rewrites the pool file on a heartbeat, quiet market or not: silence means it is down.
            problems.append(executor_down_message(silent))
        previous, self.data_problems = self.data_problems, problems
        self._note_problems(previous, problems)
        self._note_executor(silent is not None and pool is not None and pool.heartbeat_s is not None, problems)
        new_quote = quotes is not None and quotes.seq != self._last_quote_seq
        if quotes is not None:
            self._last_quote_seq = quotes.seq
        outgoing: list[Signal] = []
        for rt in self.runtimes.values():
            changed = self._fold_results(rt, results)
            changed = self._fold_external_sells(rt, results) or changed
            if quotes is not None and new_quote:
                self._reconcile(rt, quotes)
            block = self._buy_block(rt, pool, problems)
            signals, stepped = self._step_new_bars(rt, quotes, pool, block)
            if changed or stepped or signals:
                try:
                    self._save(rt)  # before the signals leave: a restart must know they were sent
                except WriteFailed as exc:
                    # Without a saved state we may not send: roll the new signals back and retry next turn.
                    log.error("cannot save node state (%s); holding %d signals", exc, len(signals))
                    for sig in signals:
                        rt.grid = apply_reject(rt.grid, sig.client_order_id)
                        rt.outbox.pop(sig.client_order_id, None)
                    continue
            outgoing.extend(signals)
        self._write_signals(outgoing, results)
        return outgoing

    def _note_problems(self, previous: list[str], problems: list[str]) -> None:
        """Log a data problem once when it appears and once when it clears (not on every turn), and save
        the state so the dashboard shows the node's current view of its inputs."""
        kinds = {p.split()[0]: p for p in problems if p}
        before = {p.split()[0] for p in previous if p}
        for kind, problem in kinds.items():
            if kind not in before:
                log.warning("data problem: %s", problem)
        for kind in before - set(kinds):
            log.warning("data problem cleared: %s", kind)
        if set(kinds) != before:
            for rt in self.runtimes.values():
                try:
                    self._save(rt)
                except WriteFailed as exc:
                    log.error("cannot save node state (%s)", exc)

    def _note_executor(self, down: bool, problems: list[str]) -> None:
        """Say it once when the executor goes down or comes back: a log line, an event and the saved state."""
        if down == self.executor_down:
            return
        self.executor_down = down
        now = self.wall_clock.now().isoformat()
        detail = next((p for p in problems if p.startswith("executor down")), "") if down else ""
        if down:
            log.error("%s; no new buys until it is back", detail)
        else:
            log.warning("executor back: shared_pool.json is being rewritten again")
        for rt in self.runtimes.values():
            rt.events.append({"t": now, "kind": "EXECUTOR_DOWN" if down else "EXECUTOR_UP", "detail": detail})
            try:
                self._save(rt)
            except WriteFailed as exc:
                log.error("cannot save node state (%s)", exc)

    def _refuse_future_stamps(self, quotes: QuoteFile, now_wall: datetime, problems: list[str]) -> QuoteFile:
        """The quote file without what is stamped further ahead of the wall clock than ``max_quote_ahead_s``.

        The node's market clock is its last stepped bar (``last_bar_t``), which only moves forward: one bar
        from 2099 would end every later bar and expire every later signal. So such a bar is dropped, a quote
        whose own time is that far ahead is dropped whole, and each refusal is alerted once (log + event).
        A file stamped that far ahead cannot be judged stale, so it is a data problem (no new buys).
        """
        limit = self.settings.max_quote_ahead_s
        if limit is None:
            return quotes
        latest = now_wall + timedelta(seconds=limit)
        if quotes.updated_at > latest:
            problems.append(f"{QUOTE_FILE} stamped {quotes.updated_at.isoformat()}, ahead of the wall clock")
        latest_ms = int(latest.timestamp() * 1000)
        kept: dict[str, Any] = {}
        for code, quote in quotes.quotes.items():
            rt = self.runtimes.get(code)
            if quote.quote_time > latest:
                self._note_refused(rt, code, f"quote time {quote.quote_time.isoformat()}", now_wall)
                continue
            bars = [b for b in quote.bars if b.t <= latest_ms]
            if len(bars) != len(quote.bars):
                for bad in (b for b in quote.bars if b.t > latest_ms):
                    self._note_refused(rt, code, f"bar {ms_to_datetime(bad.t).isoformat()}", now_wall)
                quote = quote.model_copy(update={"bars": bars})
            kept[code] = quote
        if len(kept) == len(quotes.quotes) and all(kept[c] is quotes.quotes[c] for c in kept):
            return quotes
        return quotes.model_copy(update={"quotes": kept})

    def _note_refused(self, rt: SymbolRuntime | None, code: str, what: str, now_wall: datetime) -> None:
        key = f"{code}:{what}"
        if key in self._refused_stamps:
            return
        self._refused_stamps.add(key)
        if len(self._refused_stamps) > 1000:
            self._refused_stamps = {key}
        log.warning("%s: %s is ahead of the wall clock %s by more than %s s; refused", code, what,
                    now_wall.isoformat(), self.settings.max_quote_ahead_s)
        if rt is not None:
            rt.events.append({"t": now_wall.isoformat(), "kind": "QUOTE_REFUSED",
                              "detail": f"{what} ahead of the wall clock"})
            rt.counters["quote_refused"] += 1

    def _is_stale(self, updated_at: datetime, now_wall: datetime) -> bool:
        return (now_wall - updated_at).total_seconds() > self.settings.stale_after_s

    # --------------------------------------------------------------------------------- results

    def _fold_results(self, rt: SymbolRuntime, results: ResultFile | None) -> bool:
        if results is None or not rt.outbox:
            return False
        changed = False
        for coid in list(rt.outbox):
            result = results.results.get(coid)
            if result is None:
                continue
            order = rt.grid.order(coid)
            final = result.status.is_final
            if order is not None:
                if final and result.filled_shares == 0:
                    rt.grid = apply_reject(rt.grid, coid)
                elif result.filled_shares > order.filled_shares or final:
                    rt.grid = apply_fill(rt.grid, coid, result.filled_shares, Decimal(str(result.avg_price or 0)) if
                                         result.filled_shares else Decimal(0), final, rt.params)
                changed = True
            if final or result.filled_shares > 0:
                self._note_outcome(rt, coid, result)
            if final:
                rt.outbox.pop(coid)
                rt.counters[f"result_{result.status.value}"] += 1
                if result.reason is not None:
                    rt.counters[f"reason_{result.reason.value}"] += 1
                rt.events.append({"t": result.updated_at.isoformat() if result.updated_at else "", "kind": "RESULT",
                                  "coid": coid, "status": result.status.value,
                                  "reason": result.reason.value if result.reason else "", "filled": result.filled_shares})
                changed = True
        return changed

    def _note_outcome(self, rt: SymbolRuntime, coid: str, result: Any) -> None:
        """Back off after a rejection, so the same order is not re-sent and re-rejected every minute.

        A REJECTED result holds its order key (the lots a SELL names, the layer a BUY opens) for
        ``reject_backoff_s`` of market time, doubling with each rejection in a row up to
        ``reject_backoff_max_s``, and records a REJECT_BACKOFF alert (node events, the log). A fill clears it.
        """
        payload = rt.outbox.get(coid)
        if payload is None:
            return
        key = backoff_key(payload["direction"], payload.get("release_client_order_ids", ()), payload["layer_index"])
        if result.filled_shares > 0:
            rt.backoff.pop(key, None)
            return
        if result.status is not ResultStatus.REJECTED:
            return
        count = rt.backoff.get(key, [0, 0])[0] + 1
        wait_s = min(self.settings.reject_backoff_s * 2 ** (count - 1), self.settings.reject_backoff_max_s)
        now_ms = rt.last_bar_t  # the node's market clock: the bars it has stepped
        rt.backoff[key] = [count, now_ms + int(wait_s * 1000)]
        why = f"{result.reason.value if result.reason else 'REJECTED'} {result.detail or ''}".strip()
        detail = f"{why}: {key} rejected {count}x in a row; not re-sent for {wait_s:.0f} s"
        rt.events.append({"t": ms_to_datetime(now_ms).isoformat() if now_ms else "", "kind": "REJECT_BACKOFF",
                          "detail": detail, "coid": coid})
        rt.counters["reject_backoff"] += 1
        log.warning("%s: %s", rt.code, detail)

    def _fold_external_sells(self, rt: SymbolRuntime, results: ResultFile | None) -> bool:
        """Final SELLs this node did not send (the executor's forced reductions, manual sells) that name its
        open lots: the sold shares leave the grid and the proceeds join its cash, once per sell (the ids
        folded are saved with the state), so the grid keeps matching the vault and the venue."""
        if results is None:
            return False
        done = set(rt.external_done)
        changed = False
        for sid, result in results.results.items():
            if (sid in done or sid in rt.outbox or not result.status.is_final or result.code != rt.code
                    or result.direction is None or result.direction.value != "SELL"
                    or not result.release_client_order_ids or rt.grid.order(sid) is not None):
                continue
            ours = {lot.client_order_id for lot in rt.grid.lots}
            if not ours & set(result.release_client_order_ids):
                continue
            rt.grid = sold_elsewhere(rt.grid, result.release_client_order_ids, result.requested_shares,
                                     result.filled_shares, result.avg_price, rt.params)
            rt.external_done = [*rt.external_done, sid][-1000:]
            done.add(sid)
            rt.events.append({"t": result.updated_at.isoformat() if result.updated_at else "",
                              "kind": "LOT_SOLD_BY_EXECUTOR", "coid": sid, "filled": result.filled_shares,
                              "detail": f"released {','.join(result.release_client_order_ids)}"})
            rt.counters["external_sells"] += 1
            changed = True
        return changed

    # ---------------------------------------------------------------------------- reconciliation

    def _reconcile(self, rt: SymbolRuntime, quotes: QuoteFile) -> None:
        if any(p.get("code") == rt.code for p in rt.outbox.values()) or not quotes.positions_ok:
            return  # orders in flight: the position and the results may not agree yet
        position = quotes.positions.get(rt.code)
        actual = position.volume if position else 0
        expected = rt.params.base_position_shares + sum(lot.shares for lot in rt.grid.lots)
        if actual == expected:
            if rt.mismatch:
                rt.events.append({"t": quotes.updated_at.isoformat(), "kind": "RECONCILED", "detail": ""})
            rt.mismatch, rt.mismatch_seen = "", 0
            return
        rt.mismatch_seen += 1
        # Two quote files in a row: one can trail a fill that the results already show.
        if rt.mismatch_seen >= 2 and not rt.mismatch:
            rt.mismatch = (f"position {actual} != base {rt.params.base_position_shares} + grid lots "
                           f"{expected - rt.params.base_position_shares}")
            rt.events.append({"t": quotes.updated_at.isoformat(), "kind": "POSITION_MISMATCH", "detail": rt.mismatch})
            log.warning("%s: %s; no new layers until it is resolved", rt.code, rt.mismatch)

    def _buy_block(self, rt: SymbolRuntime, pool: PoolFile | None, problems: list[str]) -> str:
        if rt.mismatch:
            return "POSITION_MISMATCH"
        if self.executor_down:
            return "EXECUTOR_DOWN"
        if problems:
            return "DATA_NOT_OK"
        mode = self._risk_mode(pool)
        return "" if mode.buys_allowed else mode.block_reason  # HALTED, RISK_COOLDOWN/REDUCE_ONLY/FUSE

    # ------------------------------------------------------------------------------------- step

    def _step_new_bars(
        self, rt: SymbolRuntime, quotes: QuoteFile | None, pool: PoolFile | None, block: str
    ) -> tuple[list[Signal], bool]:
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
        at_venue = self._sells_at_venue(rt)
        newest = quote.bars[-1].t
        mode = self._risk_mode(pool)
        out: list[Signal] = []
        for bar in bars:
            view = self._pool_view(rt, pool)
            unplaced = unplaced_sell_shares(rt.grid, at_venue)  # sells decided on earlier bars count too
            ctx = StepContext(sellable_volume=sellable, buy_step_multiplier=mode.buy_step_multiplier,
                              position_volume=held, unplaced_sell_shares=unplaced)
            rt.grid, signals, events = step(rt.grid, bar, view, rt.params, ctx)
            if mode.close_all and (newest - bar.t) / 1000 <= self.settings.signal_ttl_s:
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
                if not refusal and (newest - bar.t) / 1000 > self.settings.signal_ttl_s:
                    refusal = "CATCH_UP_EXPIRED"  # decided on a bar too old to trade on now
                hold = rt.backoff.get(backoff_key(sig.side, sig.release_client_order_ids, sig.layer_index))
                if not refusal and hold is not None and bar.t < hold[1]:
                    refusal = "REJECT_BACKOFF"  # the executor rejected this order: wait (alerted once, when it came)
                if refusal:
                    rt.grid = apply_reject(rt.grid, sig.client_order_id)
                    if refusal != "REJECT_BACKOFF":
                        rt.events.append({"t": ms_to_datetime(bar.t).isoformat(), "kind": "BUY_BLOCKED"
                                          if sig.side == BUY else "SELL_BLOCKED", "detail": refusal,
                                          "coid": sig.client_order_id})
                    rt.counters[f"blocked_{refusal}"] += 1
                    continue
                signal = self._to_signal(sig)
                rt.outbox[sig.client_order_id] = signal.model_dump(mode="json")
                rt.counters[f"signal_{sig.side}"] += 1
                out.append(signal)
        rt.last_indicators = _indicator_view(rt.grid)
        return out, True

    def _sells_at_venue(self, rt: SymbolRuntime) -> frozenset[str]:
        """Our pending sells the executor reports as placed (SENT/PARTIAL): the venue's can_use_volume
        already leaves their shares out. A sell without such a result may not have reached it yet."""
        results = self.results.last_good
        if results is None:
            return frozenset()
        placed = (ResultStatus.SENT, ResultStatus.PARTIAL)
        return frozenset(coid for coid in rt.outbox
                         if (r := results.results.get(coid)) is not None and r.status in placed)

    def _risk_mode(self, pool: PoolFile | None) -> GridRiskMode:
        """The grid's risk mode from the executor's published state (no pool file: buys are blocked anyway)."""
        if pool is None:
            return NORMAL_MODE
        return grid_risk_mode(pool.risk_state, pool.halted, self.settings.risk_policy)

    def _pool_view(self, rt: SymbolRuntime, pool: PoolFile | None) -> PoolView | None:
        if pool is None:
            return None
        key_used = {c: getattr(pool, f"used_{symbol_key(c)}") + getattr(pool, f"frozen_{symbol_key(c)}")
                    for c in ("159201.SZ", "512890.SH")}
        # Our own buys that the vault has not frozen yet count as committed, so two quick layer-0 buys
        # cannot together break the reserve the vault will enforce anyway.
        pending = sum(Decimal(str(p["amount"])) for coid, p in rt.outbox.items()
                      if p["direction"] == BUY and not self._known_to_vault(pool, coid, p["code"]))
        committed = to_fen(sum(key_used.values(), Decimal(0)) + pending)
        symbol_committed = to_fen(key_used.get(rt.code, Decimal(0)) + pending)
        cap = to_fen(getattr(pool, f"nominal_cap_{symbol_key(rt.code)}"))
        return PoolView.of(committed, to_fen(pool.physical_pool), symbol_committed, cap)

    @staticmethod
    def _known_to_vault(pool: PoolFile, coid: str, code: str) -> bool:
        allocations = getattr(pool, f"allocations_{symbol_key(code)}")
        return any(a.client_order_id == coid for a in allocations)

    def _to_signal(self, sig: GridSignal) -> Signal:
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
            expires_at=created + timedelta(seconds=self.settings.signal_ttl_s),
            source=f"node:{sig.reason}",
        )

    # --------------------------------------------------------------------------------- writing

    def _write_signals(self, outgoing: list[Signal], results: ResultFile | None) -> None:
        final = {sid for sid, r in results.results.items() if r.status.is_final} if results else set()
        # Re-offer what we sent but the executor has not answered and the file no longer holds (a crash
        # between our state save and the write): same id and payload, so the executor dedupes it.
        present = self._signal_ids_in_file()
        resend = [Signal.model_validate(p) for rt in self.runtimes.values() for coid, p in rt.outbox.items()
                  if coid not in present and coid not in final and (results is None or coid not in results.results)
                  and coid not in {s.signal_id for s in outgoing}]
        if not outgoing and not resend and not (present & final):
            return
        try:
            update_signal_file(self.shared_dir, self.wall_clock.now(), add=outgoing + resend,
                               keep=lambda e: entry_signal_id(e) not in final)
        except (SignalFileCorrupt, OSError) as exc:  # SignalWriteRefused, WriteFailed, the lock's Timeout
            # Alert (once per condition, and on the dashboard through data_problems) and carry on.
            problem = f"{SIGNAL_FILE} not written: {exc}; the signals stay in the outbox and are re-offered"
            if problem != self._signal_write_problem:
                log.error(problem)
            self._signal_write_problem = problem
            self.data_problems.append(problem)
            return
        if self._signal_write_problem:
            log.info("%s written again", SIGNAL_FILE)
            self._signal_write_problem = ""

    def _note_lease_owner(self) -> None:
        """Log which executor owns the shared folder (``executor_lease.json``) when that changes; checked
        every few wall seconds."""
        from shared_schema.lease import lease_view

        now = self.wall_clock.now()
        if self._lease_checked is not None and (now - self._lease_checked).total_seconds() < 5:
            return
        self._lease_checked = now
        view = lease_view(self.shared_dir, now)
        key = f"{view.state} {view.owner}"
        if key == self.executor_owner:
            return
        self.executor_owner = key
        if view.state == "LIVE":
            log.info("executor lease: %s", view.text)
        else:
            log.warning("executor lease: %s", view.text)

    def _signal_ids_in_file(self) -> set[str]:
        try:
            entries, _seq = read_raw_entries((self.shared_dir / SIGNAL_FILE).read_bytes())
        except (OSError, ValueError):
            return set()
        return {sid for sid in (entry_signal_id(e) for e in entries) if sid}


def sold_elsewhere(
    grid: GridState, release_ids: list[str], requested: int, filled: int, avg_price: float, params: CompiledParams
) -> GridState:
    """The grid after a sell it did not send: the shares sold are split over the named OPEN lots as the
    vault splits them (``split_shares`` over their holdings, in the order named), each keeps its unsold
    part, and the proceeds less the modelled commission join the cash."""
    if filled <= 0:
        return grid
    lots = take_sold_shares(grid.lots, release_ids, filled, open_only=True)
    value = price_decimal(avg_price) * filled
    return replace(grid, lots=tuple(lots), cash=grid.cash + value - commission(params, value))


def backoff_key(side: str, release_ids: Any, layer_index: int) -> str:
    """What a rejection holds back: a SELL by the lots it names, a BUY by the layer it would open."""
    if side == SELL:
        return "SELL:" + ",".join(sorted(release_ids))
    return f"BUY:{layer_index}"


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



def node_settings_from_config(config: Any) -> NodeSettings:
    """NodeSettings from a validated ``GridbridgeConfig`` (its ``node`` section)."""
    node = config.node
    policy = GridRiskPolicy(degraded_action=node.degraded_action,
                            degraded_step_multiplier=node.degraded_step_multiplier)
    return NodeSettings(signal_ttl_s=node.signal_ttl_s, stale_after_s=node.stale_after_s, risk_policy=policy,
                        max_quote_ahead_s=node.max_quote_ahead_s)


def grid_params_from_config(config: Any, codes: list[str]) -> dict[str, GridParams]:
    """Per-symbol GridParams: the tuned defaults, then the config's ``grid`` overrides (common, then per code)."""
    from mac.grid.params import default_params
    from settings.config import ConfigError

    raw = dict(config.grid)
    common = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    out = {}
    for code in codes:
        own = raw.get(code, raw.get(symbol_key(code), {}))
        overrides = {"physical_pool": config.vault.physical_pool, "reserve_ratio": config.vault.reserve_ratio,
                     "nominal_cap": float(config.vault.nominal_caps.get(code, 200000)), **common, **own}
        try:
            out[code] = default_params(code, "realistic", **overrides)
        except ValueError as exc:
            raise ConfigError(f"grid settings for {code} are invalid: {exc}") from exc
    return out
