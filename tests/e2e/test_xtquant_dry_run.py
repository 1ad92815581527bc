"""The whole system on ``--broker xtquant`` against the fake MiniQMT terminal: producer, executor and both
strategy nodes as real processes. Mid-run the terminal drops every session (reconnect with new session ids,
reconcile) and the executor is killed with SIGKILL and restarted mid-day. At the end every signal the nodes
sent has a final result, the vault equals the terminal's trades, and no client_order_id reached the
terminal twice.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, PoolFile, QuoteFile, ResultFile
from tests.e2e.test_xtquant_processes import CODES, Exchange
from tests.kit import procs
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.venues import ACCOUNT

pytestmark = pytest.mark.slow

BASE = 200_000


def test_nodes_trade_through_the_fake_terminal_across_a_disconnect_and_an_executor_restart(tmp_path, monkeypatch):
    qmt = tmp_path / "qmt"
    terminal = FakeTerminal.create(qmt, cash="1000000", positions={c: BASE for c in CODES}, account_id=ACCOUNT,
                                   synth={"codes": CODES, "days": 2, "seed": 4, "start": "2026-01-05"})
    terminal.replay_step()
    config = {
        "xtquant": {"userdata_path": str(qmt), "account_id": ACCOUNT, "callback_deadline_s": 2.0,
                    "reconnect_backoff_s": [0.2, 0.5], "producer_interval_s": 0.05},
        # heartbeat_s: every executor turn rewrites the pool file the Exchange paces on. The Exchange also waits
        # for both nodes, so a node signal reaches the executor within two steps (four bars); the signal age leaves room.
        "executor": {"poll_interval_s": 0.02, "heartbeat_s": 0.02, "max_signal_age_s": 600},
        "grid": {code: {"base_position_shares": BASE} for code in CODES},
    }
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    monkeypatch.setenv("GRIDBRIDGE_XTQUANT_MODULE", "tests.kit.fake_xtquant")
    monkeypatch.setenv("FAKE_XTQUANT_DIR", str(qmt))
    shared, state = tmp_path / "shared", tmp_path / "state"
    running = {}

    def start(name: str, *args: str) -> None:
        running[name] = procs.start(*args, "--config", str(cfg), log=tmp_path / f"{name}.log")

    def start_executor() -> None:
        start("executor", "executor", "--broker", "xtquant", "--shared-dir", str(shared), "--state-dir", str(state),
              "--watch", "poll")

    def quotes() -> QuoteFile:
        return QuoteFile.model_validate_json((shared / QUOTE_FILE).read_bytes())

    try:
        start("producer", "producer", "--broker", "xtquant", "--shared-dir", str(shared))
        assert procs.wait_for(lambda: len(quotes().quotes) == 2, 60), (tmp_path / "producer.log").read_text()
        start_executor()
        assert procs.wait_for(lambda: (shared / POOL_FILE).exists(), 60)
        for code in CODES:
            start(f"node-{code}", "node", "--shared-dir", str(shared), "--symbol", code, "--watch", "poll")
        with Exchange(terminal, shared, nodes=tuple(CODES), step_s=0.02, bars_per_step=2) as exchange:
            # Progress, not wall time, marks the points: the drop on day 1, the kill in the morning of day 2.
            assert procs.wait_for(lambda: exchange.steps >= 160, 60, progress=terminal.market_time), _tail(tmp_path)
            terminal.drop_connections()
            assert procs.wait_for(lambda: exchange.steps >= 320, 60, progress=terminal.market_time), _tail(tmp_path)
            procs.kill9(running["executor"])
            start_executor()
            # The market runs to the end of its days; only a market that stops moving for a minute fails.
            assert procs.wait_for(lambda: not exchange.thread.is_alive(), 60, progress=terminal.market_time), \
                _tail(tmp_path)

        def settled() -> bool:
            res = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())
            states = [json.loads((shared / f"dashboard_state_{c.split('.')[0]}.json").read_text()) for c in CODES]
            return res.open_orders == 0 and all(not s["pending"] for s in states)

        assert procs.wait_for(settled, 60), (tmp_path / "executor.log").read_text()[-3000:]
    finally:
        for proc in running.values():
            procs.stop(proc)

    results = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes()).results
    node_signals = {k: r for k, r in results.items() if k.startswith("G")}
    assert len(node_signals) >= 4, results.keys()
    assert all(r.status.is_final for r in node_signals.values())
    assert any(r.status.value == "FILLED" for r in node_signals.values())
    placed = Counter(o["remark"] for o in terminal.orders())
    assert all(n == 1 for n in placed.values()), placed
    pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    for alloc in pool.allocations_159201 + pool.allocations_512890:
        assert alloc.frozen == 0
        if alloc.released_shares == 0:
            assert int(alloc.used * 100) == terminal.cash_out_fen(alloc.client_order_id), alloc
    log = (tmp_path / "executor.log").read_text()
    assert "DISCONNECTED" in log and log.count("executor started") >= 2


def _tail(root) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text()[-1500:] for p in sorted(root.glob("*.log")))
