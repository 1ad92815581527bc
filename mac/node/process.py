"""The strategy node process: one turn reads the shared files, folds results, steps new bars, saves the
durable state and only then writes the signals (see the package docstring for the whole story)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from mac.grid.core import apply_reject
from mac.grid.risk_policy import GridRiskMode
from mac.node.inputs import FutureStampGuard
from mac.node.results import fold_external_sells, fold_results
from mac.node.signals import SignalWriter
from mac.node.state import NodeSettings, SymbolRuntime, dashboard_view, load_runtime, state_file
from mac.node.stepping import risk_mode, sells_at_venue, step_new_bars
from settings.grid import GridParams
from shared_schema.atomic_io import ModelFileReader, ReadStatus, WriteFailed, atomic_write_json
from shared_schema.clock import Clock, SystemClock
from shared_schema.heartbeat import executor_down_message, executor_silence_s
from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, PoolFile, QuoteFile, ResultFile, Signal
from shared_schema.watch import ChangeWatcher, WatchMode, run_turns

log = logging.getLogger("gridbridge.node")


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
        self.runtimes = {code: load_runtime(self.shared_dir, code, p, self.settings) for code, p in params.items()}
        self.watch_mode = watch_mode
        self.poll_interval = poll_interval
        self.watcher: ChangeWatcher | None = None
        self.data_problems: list[str] = []
        self._stamp_guard = FutureStampGuard()
        self._signal_writer = SignalWriter(self.shared_dir, self.wall_clock)
        self.executor_owner = ""  # who holds the shared folder's executor lease, as last logged
        self._lease_checked: datetime | None = None
        self.executor_down = False
        self._last_quote_seq = -1

    # ------------------------------------------------------------------------------------ persistence

    def _save(self, rt: SymbolRuntime) -> None:
        atomic_write_json(state_file(self.shared_dir, rt.code), self.dashboard_view(rt))

    def dashboard_view(self, rt: SymbolRuntime) -> dict[str, Any]:
        """The persisted state, written so the dashboard can read it as is."""
        return dashboard_view(rt, self.wall_clock.now(), self.executor_down, self.data_problems)

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
            quotes = self._stamp_guard.refuse(quotes, now_wall, self.settings.max_quote_ahead_s, self.runtimes,
                                              problems)
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
            changed = fold_results(rt, results, self.settings)
            changed = fold_external_sells(rt, results) or changed
            if quotes is not None and new_quote:
                self._reconcile(rt, quotes)
            block = self._buy_block(rt, pool, problems)
            signals, stepped = step_new_bars(rt, quotes, pool, block, self.results.last_good, self.settings)
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
        problem = self._signal_writer.write(outgoing, self.runtimes.values(), results)
        if problem:
            self.data_problems.append(problem)
        return outgoing

    def _is_stale(self, updated_at: datetime, now_wall: datetime) -> bool:
        return (now_wall - updated_at).total_seconds() > self.settings.stale_after_s

    # ------------------------------------------------------------------------------ what it reports

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

    def _risk_mode(self, pool: PoolFile | None) -> GridRiskMode:
        return risk_mode(pool, self.settings.risk_policy)

    def _sells_at_venue(self, rt: SymbolRuntime) -> frozenset[str]:
        return sells_at_venue(rt, self.results.last_good)
