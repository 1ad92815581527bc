"""Crash storm: a multi-day dry run whose processes are killed with -9 at random and at chosen points.

At least 50 kills land across the run: random SIGKILLs of the executor, both nodes and the producer, plus
failpoints that end a process between the journal write and the send, between the send and its record,
and in the middle of an atomic file write. Every killed process is restarted. A reader polls the shared
files the whole time. At the end: every signal has exactly one final result, no client_order_id reached
the venue twice, the vault held its invariants in every published ``shared_pool.json`` and at every
approval (reserve included), the vault equals the venue's books, and no reader ever saw a corrupt file.
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

from gridbridge.dryrun import DryRunOptions, _settle, audit_run, prepare
from shared_schema.models import DESIGN_SYMBOLS, POOL_FILE, QUOTE_FILE, RESULT_FILE, SIGNAL_FILE, symbol_key
from tests.kit import procs

pytestmark = pytest.mark.slow

FAILPOINTS = "executor.before_send:0.04,executor.after_send:0.04,atomic.before_replace:0.002"
MIN_KILLS = 50


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
    for name in commands:
        launch(name)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
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
            if producer_done and sum(kills.values()) + sum(crashes.values()) >= MIN_KILLS:
                break
            if rng.random() < 0.6:
                candidates = [n for n, p in running.items() if p.poll() is None]
                if candidates:
                    victim = rng.choice(candidates)
                    os.kill(running[victim].pid, signal.SIGKILL)
                    running[victim].wait()
                    kills[victim] += 1
                    if not (victim == "producer" and producer_done):
                        launch(victim)
        assert producer_done, "the replay did not finish"
        total = sum(kills.values()) + sum(crashes.values())
        assert total >= MIN_KILLS, (kills, crashes)
        # Calm after the storm: no more failpoints, let everything settle with the processes alive.
        env.pop("GRIDBRIDGE_FAILPOINTS")
        for name in ("executor", "node-159201", "node-512890"):
            if running[name].poll() is None:
                os.kill(running[name].pid, signal.SIGKILL)
                running[name].wait()
            launch(name)
        _settle(shared, 90)
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
    assert all(r["status"] in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED") for r in results.values())
    for code in DESIGN_SYMBOLS:
        node = json.loads((shared / f"dashboard_state_{symbol_key(code)}.json").read_text())
        assert node["pending"] == [], f"{code} still waits for {node['pending']}"
    print(f"kills {dict(kills)} failpoint crashes {dict(crashes)} signals {summary['signals']} "
          f"fills {summary['fills']} reads {watcher.reads}")
