"""Real time, not 600x: a quiet market at speed 1 for five minutes, then the executor is killed.

The producer replays nearly flat 1-minute bars at speed 1 (one bar a minute of wall time); the executor has
nothing to do but its heartbeat. For at least five minutes the node must never see the pool file as stale
(no "executor down", no stale-data problem, no buy blocked for data), and the pool file must never be older
than a heartbeat and a bit. Then the executor is killed with -9: the node must report it down within three
heartbeats, and the dashboard's reading of the folder must say so too. This test takes about six minutes
of wall time by design and little CPU; it is marked slow.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from gridbridge.dryrun import DryRunOptions, prepare
from mac.dashboard.live import Memory, load_live
from mac.dashboard.sources import Sources
from mac.dashboard.view_models import DOWN
from marketdata.bars import Bars, write_bars_csv
from shared_schema.models import DESIGN_SYMBOLS, POOL_FILE, QUOTE_FILE, PoolFile, symbol_key
from shared_schema.types import CST
from tests.kit import procs

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

QUIET_S = 5 * 60 + 15
HEARTBEAT_S = 10.0  # the default


def quiet_bars(first_price: float, minutes: int) -> Bars:
    """A flat market: one tick either way around the same price, every minute of one morning."""
    start = int(datetime(2026, 1, 5, 9, 31, tzinfo=CST).timestamp() * 1000)
    t = np.array([start + i * 60_000 for i in range(minutes)], dtype=np.int64)
    c = np.array([round(first_price + (0.001 if i % 2 else 0.0), 3) for i in range(minutes)])
    return Bars(t=t, o=c.copy(), h=c + 0.001, l=c - 0.001, c=c, v=np.full(minutes, 10_000.0))


def node_states(shared: Path) -> list[dict]:
    out = []
    for code in DESIGN_SYMBOLS:
        path = shared / f"dashboard_state_{symbol_key(code)}.json"
        if path.exists():
            out.append(json.loads(path.read_bytes()))
    return out


def test_quiet_market_at_speed_1_never_blocks_and_a_killed_executor_is_reported(tmp_path):
    shared, state, config, bars = prepare(DryRunOptions(shared_dir=tmp_path / "shared", days=1, seed=3))
    cfg = json.loads(config.read_text())
    assert cfg.get("executor", {}).get("heartbeat_s", HEARTBEAT_S) == HEARTBEAT_S
    for path in bars.values():
        first = float(np.loadtxt(path, delimiter=",", skiprows=1, max_rows=1)[1])
        write_bars_csv(quiet_bars(first, 30), path)
    logs = tmp_path / "logs"
    logs.mkdir()
    c = ["--config", str(config)]
    executor = procs.start("executor", "--shared-dir", str(shared), "--state-dir", str(state), *c,
                           log=logs / "executor.log")
    node = procs.start("node", "--shared-dir", str(shared), "--symbol", "all", *c, log=logs / "node.log")
    producer = procs.start("producer", "--shared-dir", str(shared), *[a for code, p in bars.items()
                           for a in ("--bars", f"{code}={p}")], "--speed", "1", *c, log=logs / "producer.log")
    running = [executor, node, producer]
    try:
        # Start-up: every process up and the node's view clean (the pool and results exist).
        assert procs.wait_for(lambda: len(node_states(shared)) == 2 and (shared / POOL_FILE).exists()
                              and not any(st.get("data_problems") for st in node_states(shared)), 300)
        began = time.monotonic()
        pool_writes: set[int] = set()
        worst_pool_age = 0.0
        quote_seqs: set[int] = set()
        # The quiet period ends on progress: five minutes and a quarter of wall time AND five new bars seen.
        while time.monotonic() - began < QUIET_S or len(quote_seqs) < 6:
            assert all(p.poll() is None for p in running), "a process died during the quiet market"
            assert time.monotonic() - began < QUIET_S * 3, "the producer stopped publishing bars"
            try:
                pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
                quote_seqs.add(json.loads((shared / QUOTE_FILE).read_bytes())["seq"])
                states = node_states(shared)
            except (OSError, ValueError):
                time.sleep(0.2)
                continue
            pool_writes.add(pool.seq)
            worst_pool_age = max(worst_pool_age, (datetime.now(CST) - pool.updated_at).total_seconds())
            for st in states:
                assert not st.get("executor_down"), st.get("data_problems")
                assert not st.get("data_problems"), st["data_problems"]
                assert not any(k.startswith("blocked_DATA_NOT_OK") or k == "blocked_EXECUTOR_DOWN"
                               for k in st["counters"]), st["counters"]
            time.sleep(1.0)
        quiet_for = time.monotonic() - began
        assert quiet_for >= 5 * 60
        assert worst_pool_age < 2 * HEARTBEAT_S, worst_pool_age  # the heartbeat kept the pool file fresh
        assert len(pool_writes) >= quiet_for / HEARTBEAT_S * 0.8  # ... by rewriting it, about every 10 s
        node_log = (logs / "node.log").read_text()
        assert "stale" not in node_log and "executor down" not in node_log

        procs.kill9(executor)
        killed = time.monotonic()
        assert procs.wait_for(lambda: all(st.get("executor_down") for st in node_states(shared)),
                              timeout=6 * HEARTBEAT_S, interval=0.1), "the node never reported the executor down"
        reported_after = time.monotonic() - killed
        assert reported_after <= 3 * HEARTBEAT_S, reported_after
        assert "executor down" in (logs / "node.log").read_text()
        snap = load_live(Sources.resolve(shared), datetime.now(CST), Memory())
        pool_health = next(h for h in snap.health if h.name == POOL_FILE)
        assert pool_health.status == DOWN and "executor down" in pool_health.error
        print(f"quiet {quiet_for:.0f} s, {len(pool_writes)} pool writes, worst pool age {worst_pool_age:.1f} s, "
              f"executor down reported {reported_after:.1f} s after the kill")
    finally:
        for proc in running:
            procs.stop(proc)
