"""Crash storm: a multi-day dry run whose processes are killed with -9 at random and at chosen points.

At least 50 kills land across the run: random SIGKILLs of the executor, both nodes and the producer, plus
failpoints that end a process between the journal write and the send, between the send and its record,
and in the middle of an atomic file write. Every killed process is restarted. A reader polls the shared
files the whole time. At the end: every signal has exactly one final result, no client_order_id reached
the venue twice, the vault held its invariants in every published ``shared_pool.json`` and at every
approval (reserve included), the vault equals the venue's books, and no reader ever saw a corrupt file.

The test ends on progress, never on a wall-clock deadline, so a busy machine makes it slower, not red:
kills are paced by the replay (one every KILL_EVERY_BARS published bars, however long those take), the storm
ends when the replay has finished and MIN_KILLS kills are done, and the calm ends when every signal has its
final result. The only clock is a safety net against a hang: STALL_S without any progress at all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from gridbridge.dryrun import DryRunOptions, audit_run, prepare
from marketdata.bars import load_bars
from shared_schema.models import DESIGN_SYMBOLS, POOL_FILE, QUOTE_FILE, RESULT_FILE, SIGNAL_FILE, symbol_key
from tests.kit import procs

pytestmark = pytest.mark.slow

FAILPOINTS = "executor.before_send:0.04,executor.after_send:0.04,atomic.before_replace:0.002"
MIN_KILLS = 50
STALL_S = 600.0  # no progress at all for this long is a hang, not a slow machine


class FileWatcher(threading.Thread):
    """Reads every shared file in a loop; counts reads, corrupt reads and pool invariant breaks."""

    def __init__(self, shared: Path) -> None:
        super().__init__(daemon=True)
        self.shared = shared
        self.stop = threading.Event()
        self.reads = 0
        self.corrupt: list[str] = []
        self.pool_problems: list[str] = []
        self.pools_checked = 0

    def run(self) -> None:
        names = [QUOTE_FILE, POOL_FILE, RESULT_FILE, SIGNAL_FILE] + [
            f"dashboard_state_{symbol_key(c)}.json" for c in DESIGN_SYMBOLS]
        while not self.stop.is_set():
            for name in names:
                try:
                    data = (self.shared / name).read_bytes()
                except OSError:
                    continue
                self.reads += 1
                try:
                    obj = json.loads(data)
                except ValueError:
                    self.corrupt.append(name)
                    continue
                if name == POOL_FILE:
                    self._check_pool(obj)
            time.sleep(0.01)

    def _check_pool(self, pool: dict) -> None:
        self.pools_checked += 1
        for key in ("159201", "512890"):
            allocations = pool[f"allocations_{key}"]
            used = round(sum(a["used"] for a in allocations), 2)
            frozen = round(sum(a["frozen"] for a in allocations), 2)
            if abs(used - pool[f"used_{key}"]) > 0.001 or abs(frozen - pool[f"frozen_{key}"]) > 0.001:
                self.pool_problems.append(f"seq {pool['seq']}: {key} totals differ from allocations")
            if any(a["used"] < 0 or a["frozen"] < 0 for a in allocations) or pool[f"used_{key}"] < 0:
                self.pool_problems.append(f"seq {pool['seq']}: negative money on {key}")
        if pool["utilization"] > 1.0:
            self.pool_problems.append(f"seq {pool['seq']}: utilisation above the pool")


class Progress:
    """Fails only when nothing at all moved for STALL_S: the replay, the kills and restarts, the results."""

    def __init__(self) -> None:
        self.marks: tuple = ()
        self.last_move = time.monotonic()
        self.moved = False
        self.published = 0

    def observe(self, *marks: object) -> int:
        self.moved = marks != self.marks
        if self.moved:
            self.marks, self.last_move = marks, time.monotonic()
        seq = marks[0]
        if isinstance(seq, int):
            self.published = max(self.published, seq)
        return self.published

    def check(self, phase: str) -> None:
        stalled = time.monotonic() - self.last_move
        assert stalled < STALL_S, f"{phase}: no progress for {stalled:.0f} s (last marks {self.marks})"


def _quote_seq(shared: Path) -> int:
    try:
        return int(json.loads((shared / QUOTE_FILE).read_bytes())["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def settle_on_progress(shared: Path) -> None:
    """Wait until every signal in the file has a final result and no order is open, for as long as the
    executor keeps making progress (results and their seq moving)."""
    progress = Progress()
    while True:
        try:
            results = json.loads((shared / RESULT_FILE).read_bytes())
            entries = json.loads((shared / SIGNAL_FILE).read_bytes()).get("signals", []) \
                if (shared / SIGNAL_FILE).exists() else []
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        final = {k for k, r in results["results"].items() if r["status"] in FINAL}
        pending = [e for e in entries if isinstance(e, dict) and e.get("signal_id") not in final]
        waiting = [_node_pending(shared, code) for code in DESIGN_SYMBOLS]
        if not pending and results["open_orders"] == 0 and not any(waiting):
            return
        progress.observe(results["seq"], len(final), len(pending), results["open_orders"], *waiting)
        progress.check("settling")
        time.sleep(0.2)


def _node_pending(shared: Path, code: str) -> int:
    try:
        return len(json.loads((shared / f"dashboard_state_{symbol_key(code)}.json").read_bytes())["pending"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1  # not readable yet: keep waiting


FINAL = ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")


def test_crash_storm_loses_nothing_and_sends_nothing_twice(tmp_path):
    rng = random.Random(20261123)
    shared, state, config, bars = prepare(DryRunOptions(shared_dir=tmp_path / "shared", days=3, seed=23))
    logs = tmp_path / "logs"
    logs.mkdir()
    env = procs.env()
    env["GRIDBRIDGE_FAILPOINTS"] = FAILPOINTS
    cfg = ["--config", str(config)]
    bar_args = [a for code, path in bars.items() for a in ("--bars", f"{code}={path}")]
    commands = {
        "executor": ["executor", "--shared-dir", str(shared), "--state-dir", str(state), *cfg],
        "node-159201": ["node", "--shared-dir", str(shared), "--symbol", "159201.SZ", *cfg],
        "node-512890": ["node", "--shared-dir", str(shared), "--symbol", "512890.SH", *cfg],
        "producer": ["producer", "--shared-dir", str(shared), *bar_args, "--speed", "1000", *cfg],
    }
    running: dict[str, subprocess.Popen] = {}

    def launch(name: str) -> None:
        log = open(logs / f"{name}.log", "ab")
        running[name] = subprocess.Popen(procs.gridbridge_cmd(*commands[name]), stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=procs.ROOT)

    watcher = FileWatcher(shared)
    watcher.start()
    kills = Counter()
    crashes = Counter()
    producer_done = False
    total_bars = sum(len(load_bars(p)) for p in bars.values())
    kill_every = max(1, total_bars // (3 * MIN_KILLS))  # about 3 x MIN_KILLS kill chances over the replay
    progress = Progress()
    last_kill_at = 0
    for name in commands:
        launch(name)
    try:
        while not (producer_done and sum(kills.values()) + sum(crashes.values()) >= MIN_KILLS):
            time.sleep(0.25)
            for name, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                if name == "producer" and code == 0:
                    producer_done = True
                    continue
                if code == 137:
                    crashes[name] += 1  # a failpoint fired
                launch(name)
            published = progress.observe(_quote_seq(shared), sum(kills.values()) + sum(crashes.values()))
            if published - last_kill_at >= kill_every or (producer_done and progress.moved):
                # Paced by the replay (or, once it is done, by restarts that got going again): never by
                # the wall clock, so a slow machine gets the same storm, only later.
                last_kill_at = published
                candidates = [n for n, p in running.items() if p.poll() is None
                              and not (n == "producer" and producer_done)]
                if candidates and rng.random() < 0.8:
                    victim = rng.choice(candidates)
                    os.kill(running[victim].pid, signal.SIGKILL)
                    running[victim].wait()
                    kills[victim] += 1
                    launch(victim)
            progress.check("the storm")
        total = sum(kills.values()) + sum(crashes.values())
        assert total >= MIN_KILLS, (kills, crashes)
        # Calm after the storm: no more failpoints, let everything settle with the processes alive.
        env.pop("GRIDBRIDGE_FAILPOINTS")
        for name in ("executor", "node-159201", "node-512890"):
            if running[name].poll() is None:
                os.kill(running[name].pid, signal.SIGKILL)
                running[name].wait()
            launch(name)
        settle_on_progress(shared)
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        watcher.stop.set()
        watcher.join(timeout=5)

    summary = audit_run(shared, state)
    assert summary["ok"], summary["problems"]
    assert summary["signals"] > 0 and summary["fills"] > 0
    assert watcher.corrupt == [], Counter(watcher.corrupt)
    assert watcher.pool_problems == []
    assert watcher.pools_checked > 100 and watcher.reads > 1000
    results = json.loads((shared / RESULT_FILE).read_text())["results"]
    assert all(r["status"] in FINAL for r in results.values())
    for code in DESIGN_SYMBOLS:
        node = json.loads((shared / f"dashboard_state_{symbol_key(code)}.json").read_text())
        assert node["pending"] == [], f"{code} still waits for {node['pending']}"
    print(f"kills {dict(kills)} failpoint crashes {dict(crashes)} signals {summary['signals']} "
          f"fills {summary['fills']} reads {watcher.reads}")
